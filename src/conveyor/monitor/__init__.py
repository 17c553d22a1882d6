"""Signals a deployment is watched with after it serves: the agent's own per-release counters
(builtin.py) and outside ones; the judgement itself is pure (domain/monitoring.py)."""
