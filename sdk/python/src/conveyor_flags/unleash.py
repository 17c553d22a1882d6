"""Unleash client state (``/api/client/features`` or delta events) as a Conveyor ruleset.

Pure: standard library only. ``ruleset_from_unleash(state)`` translates every feature, strategy,
constraint, segment, variant and dependency into the ruleset format (docs/flags-ruleset.md) with
Unleash's meaning; ``context_from_unleash`` maps an Unleash context (``userId``, ``properties``...)
onto Conveyor's attribute names. ``is_enabled`` and ``get_variant`` answer the way an Unleash SDK's
``isEnabled`` / ``getVariant`` do. The Unleash client specification runs through this module
(sdk/python/tests/test_unleash_spec.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor_flags.evaluate import ON_REASONS, Ruleset

__all__ = ["attribute_name", "context_from_unleash", "get_variant", "is_enabled", "ruleset_from_unleash"]

# Unleash's well-known context fields and their Conveyor names; any other name (a property) is kept.
_FIELDS = {
    "userId": "user_id",
    "sessionId": "session_id",
    "remoteAddress": "remote_address",
    "currentTime": "current_time",
    "appName": "app_name",
    "environment": "environment",
}


def attribute_name(context_name: str) -> str:
    """The Conveyor attribute for an Unleash ``contextName`` or stickiness name."""
    return _FIELDS.get(context_name, context_name)


def context_from_unleash(context: Mapping[str, Any]) -> dict[str, Any]:
    """A flat Conveyor context: well-known fields renamed, ``properties`` merged in."""
    flat: dict[str, Any] = {}
    for name, value in context.items():
        if name == "properties" and isinstance(value, Mapping):
            continue
        flat[attribute_name(name)] = value
    properties = context.get("properties")
    if isinstance(properties, Mapping):
        for name, value in properties.items():
            flat.setdefault(str(name), value)
    return flat


def _constraint(raw: Mapping[str, Any]) -> dict[str, Any]:
    values = raw.get("values")
    if not values and raw.get("value") is not None:
        values = [raw["value"]]
    return {
        "attribute": attribute_name(str(raw.get("contextName", ""))),
        "operator": raw.get("operator"),
        "values": list(values or []),
        "inverted": bool(raw.get("inverted", False)),
        "case_insensitive": bool(raw.get("caseInsensitive", False)),
    }


def _stickiness(name: Any) -> str:
    if not name or name == "default":
        return "default"
    if name == "random":
        return "random"
    return attribute_name(str(name))


def _variants(raw: Any) -> list[dict[str, Any]] | None:
    if not raw:
        return None
    variants = []
    for variant in raw:
        payload = variant.get("payload")
        converted: dict[str, Any] = {
            "name": variant["name"],
            "weight": int(variant.get("weight", 0)),
            "value": dict(payload) if isinstance(payload, Mapping) else {},
        }
        overrides = [
            {"attribute": attribute_name(str(o["contextName"])), "values": list(o.get("values") or [])}
            for o in variant.get("overrides") or []
        ]
        if overrides:
            converted["overrides"] = overrides
        variants.append(converted)
    return variants


def _percent(value: Any) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def _strategy(group: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    name = raw.get("name")
    params = raw.get("parameters") or {}
    constraints = [_constraint(c) for c in raw.get("constraints") or []]
    strategy: dict[str, Any] = {"rollout": 100, "stickiness": "default", "group_id": group}
    if name == "default":
        pass
    elif name == "flexibleRollout":
        strategy["rollout"] = _percent(params.get("rollout", 100))
        strategy["stickiness"] = _stickiness(params.get("stickiness"))
        strategy["group_id"] = str(params.get("groupId") or group)
    elif name in ("gradualRolloutUserId", "gradualRolloutSessionId"):
        strategy["rollout"] = _percent(params.get("percentage", 0))
        strategy["stickiness"] = "user_id" if name == "gradualRolloutUserId" else "session_id"
        strategy["group_id"] = str(params.get("groupId") or group)
    elif name == "gradualRolloutRandom":
        strategy["rollout"] = _percent(params.get("percentage", 0))
        strategy["stickiness"] = "random"
    elif name == "userWithId":
        ids = [part.strip() for part in str(params.get("userIds", "")).split(",") if part.strip()]
        constraints.append({"attribute": "user_id", "operator": "IN", "values": ids})
    elif name == "remoteAddress":
        ips = [part.strip() for part in str(params.get("IPs", "")).split(",") if part.strip()]
        constraints.append({"attribute": "remote_address", "operator": "IN_CIDR", "values": ips})
    else:  # a strategy this client does not know is off, as in Unleash
        strategy["rollout"] = 0
        strategy["stickiness"] = "random"
    strategy["constraints"] = constraints
    if raw.get("segments"):
        strategy["segments"] = [str(s) for s in raw["segments"]]
    variants = _variants(raw.get("variants"))
    if variants is not None:
        strategy["variants"] = variants
    return strategy


def _feature(raw: Mapping[str, Any]) -> dict[str, Any]:
    key = str(raw["name"])
    flag: dict[str, Any] = {
        "key": key,
        "type": "json",
        "enabled": bool(raw.get("enabled", False)),
        "default": {},
        "on_value": {},
        "strategies": [_strategy(key, s) for s in raw.get("strategies") or []],
    }
    if not flag["strategies"]:  # Unleash: an enabled feature with no strategy is on for everyone
        flag["strategies"] = [{"rollout": 100, "stickiness": "default", "group_id": key, "constraints": []}]
    variants = _variants(raw.get("variants"))
    if variants is not None:
        flag["variants"] = variants
        flag["variant_stickiness"] = _stickiness((raw.get("variants") or [{}])[0].get("stickiness"))
    if raw.get("dependencies"):
        flag["dependencies"] = [
            {
                "flag": str(d["feature"]),
                "enabled": bool(d.get("enabled", True)),
                **({"variants": list(d["variants"])} if d.get("variants") else {}),
            }
            for d in raw["dependencies"]
        ]
    return flag


def _segment(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": str(raw.get("name", raw["id"])),
        "constraints": [_constraint(c) for c in raw.get("constraints") or []],
    }


def ruleset_from_unleash(state: Mapping[str, Any], environment: str = "") -> dict[str, Any]:
    """A ruleset document from Unleash client state: ``{features, segments}`` or ``{events: [...]}``
    (the delta API: hydration, feature-updated/removed, segment-updated/removed, applied in order)."""
    features: dict[str, dict[str, Any]] = {}
    segments: dict[str, dict[str, Any]] = {}
    for feature in state.get("features") or []:
        features[str(feature["name"])] = _feature(feature)
    for segment in state.get("segments") or []:
        segments[str(segment["id"])] = _segment(segment)
    for event in state.get("events") or []:
        kind = event.get("type")
        if kind == "hydration":
            features = {str(f["name"]): _feature(f) for f in event.get("features") or []}
            segments = {str(s["id"]): _segment(s) for s in event.get("segments") or []}
        elif kind == "feature-updated":
            features[str(event["feature"]["name"])] = _feature(event["feature"])
        elif kind == "feature-removed":
            features.pop(str(event["featureName"]), None)
        elif kind == "segment-updated":
            segments[str(event["segment"]["id"])] = _segment(event["segment"])
        elif kind == "segment-removed":
            segments.pop(str(event.get("segmentId")), None)
    return {
        "environment": environment,
        "version": int(state.get("version", 0) or 0),
        "flags": features,
        "segments": segments,
    }


def is_enabled(ruleset: Ruleset, name: str, context: Mapping[str, Any]) -> bool:
    """Unleash's ``isEnabled`` for a ruleset made by ``ruleset_from_unleash``."""
    return ruleset.evaluate(name, context_from_unleash(context)).reason in ON_REASONS


def get_variant(ruleset: Ruleset, name: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Unleash's ``getVariant``: ``{name, payload?, enabled, feature_enabled}``."""
    result = ruleset.evaluate(name, context_from_unleash(context))
    enabled = result.reason in ON_REASONS
    if not enabled or result.variant is None:
        return {"name": "disabled", "enabled": False, "feature_enabled": enabled}
    variant: dict[str, Any] = {"name": result.variant, "enabled": True, "feature_enabled": True}
    if result.value:
        variant["payload"] = result.value
    return variant
