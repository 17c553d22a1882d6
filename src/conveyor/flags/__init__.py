"""Feature flags: definitions and per-environment state (model, store), SDK keys, the ruleset each
environment serves, OFREP evaluation and the SSE stream of ruleset changes (docs/flags.md)."""
