"""Gates: rules a deployment must pass before it may start. Pure: plain values in, GateResult out."""
