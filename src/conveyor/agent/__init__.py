"""The agent: the data plane on a host. Supervises app instances, health-checks them, and routes
each environment's traffic (built-in router or HAProxy)."""
