"""Prometheus text exposition of the routers' per-release counters."""

from __future__ import annotations

from conveyor.agent.host import Agent
from conveyor.agent.routing import LATENCY_BUCKETS


def _labels(env: str, release: str) -> str:
    esc = [v.replace("\\", "\\\\").replace('"', '\\"') for v in (env, release)]
    return f'environment="{esc[0]}",release="{esc[1]}"'


def render_metrics(agent: Agent) -> str:
    out = [
        "# HELP conveyor_router_requests_total Requests the router answered, per release.",
        "# TYPE conveyor_router_requests_total counter",
    ]
    rows = [(key, rel, c) for key, env in agent.environments.items() for rel, c in env.router.counters.items()]
    out += [f"conveyor_router_requests_total{{{_labels(k, r)}}} {c.requests}" for k, r, c in rows]
    out += ["# HELP conveyor_router_5xx_total Responses with a 5xx status.", "# TYPE conveyor_router_5xx_total counter"]
    out += [f"conveyor_router_5xx_total{{{_labels(k, r)}}} {c.errors_5xx}" for k, r, c in rows]
    out += [
        "# HELP conveyor_router_failed_total Requests no instance answered.",
        "# TYPE conveyor_router_failed_total counter",
    ]
    out += [f"conveyor_router_failed_total{{{_labels(k, r)}}} {c.failed}" for k, r, c in rows]
    out += [
        "# HELP conveyor_router_request_duration_seconds Time to answer, per release.",
        "# TYPE conveyor_router_request_duration_seconds histogram",
    ]
    for key, rel, c in rows:
        cumulative = 0
        for bound, count in zip([*map(str, LATENCY_BUCKETS), "+Inf"], c.buckets, strict=True):
            cumulative += count
            out.append(
                f'conveyor_router_request_duration_seconds_bucket{{{_labels(key, rel)},le="{bound}"}} {cumulative}'
            )
        out.append(f"conveyor_router_request_duration_seconds_sum{{{_labels(key, rel)}}} {c.latency_sum}")
        out.append(f"conveyor_router_request_duration_seconds_count{{{_labels(key, rel)}}} {c.requests}")
    return "\n".join(out) + "\n"
