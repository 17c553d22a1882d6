"""OFREP v1 (the OpenFeature Remote Evaluation Protocol), server side: request parsing, single and
bulk evaluation, error bodies and ETags. Pure: bytes and a compiled ruleset in, status and body out.

Status codes (open-feature/protocol service/openapi.yaml): 200 evaluated; 400 with errorCode
PARSE_ERROR (body not JSON, or not an object), INVALID_CONTEXT (``context`` not an object, or a
context the evaluator cannot use), TARGETING_KEY_MISSING (a flag whose answer depends on a
percentage or a variant split, and a context with no ``targetingKey``, ``user_id`` or
``session_id``) or GENERAL (a flag that cannot be evaluated, or whose value OFREP cannot carry: a
JSON array); 404 FLAG_NOT_FOUND; bulk answers 200 with a per-flag errorCode for a flag that cannot
be evaluated, and 304 when If-None-Match names its current ETag.

Reasons are the schema's enum (STATIC, TARGETING_MATCH, SPLIT, DISABLED, UNKNOWN): the evaluator's
DEFAULT (strategies ran and none matched, so the flag's default is served) is TARGETING_MATCH, the
outcome of a dynamic evaluation, with variant ``default`` telling it apart.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from conveyor.flags.evaluate import Evaluation, Ruleset

log = logging.getLogger("conveyor.flags.ofrep")
_decode = json.JSONDecoder().decode

PARSE_ERROR, INVALID_CONTEXT, GENERAL, FLAG_NOT_FOUND = "PARSE_ERROR", "INVALID_CONTEXT", "GENERAL", "FLAG_NOT_FOUND"
TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
FAILURE_CODES = frozenset({PARSE_ERROR, TARGETING_KEY_MISSING, INVALID_CONTEXT, GENERAL})
# the schema's reasons; the evaluator's others map onto them
REASONS = frozenset({"STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"})
REASON_OF = {"DEFAULT": "TARGETING_MATCH"}
# the variant OFREP reports when no variant was picked (OpenFeature providers expect a string)
PLAIN_VARIANTS = {"DISABLED": "off", "DEFAULT": "default"}


@dataclass(frozen=True)
class Served:
    """What OFREP answers from: the compiled ruleset, the metadata of every answer, and the flags
    whose answer would be a random draw without a targeting key. Build it once per ruleset version
    with ``served``."""

    ruleset: Ruleset
    metadata: dict[str, Any]
    needs_key: frozenset[str] = frozenset()
    # flags whose answer may change from one request to the next with the same body: a date
    # constraint (the clock), a "random" stickiness, a variant split on a custom stickiness (random
    # when the attribute is missing), or a parent that has one
    volatile: frozenset[str] = frozenset()
    # flags that draw at random without a targeting key (needs_key and the children of such parents)
    random_unkeyed: frozenset[str] = frozenset()
    answers: dict[tuple[str, bytes], Any] = field(default_factory=dict, compare=False, repr=False)


def _splits(entry: Any) -> bool:
    """Whether a flag entry of the ruleset document draws at random without a stickiness value:
    on, with a percentage rollout or a variant split on the default stickiness (user_id, then
    session_id). Constraints are not looked at: the answer to "which key?" must not depend on them."""
    if not isinstance(entry, dict) or not entry.get("enabled"):
        return False

    def split(variants: Any) -> bool:
        if not isinstance(variants, list):
            return False
        return sum(1 for v in variants if isinstance(v, dict) and v.get("weight", 1) != 0) > 1

    flag_split = split(entry.get("variants"))
    strategies = entry.get("strategies") or []
    if not isinstance(strategies, list) or not strategies:
        return flag_split
    for strategy in strategies:
        if not isinstance(strategy, dict) or (strategy.get("stickiness") or "default") != "default":
            continue
        rollout = strategy.get("rollout", 100)
        if isinstance(rollout, int | float) and 0 < rollout < 100:
            return True
        if strategy.get("value") is None and (split(strategy.get("variants")) or flag_split):
            return True
    return False


def _constraints(entry: dict[str, Any], segments: Any) -> Iterator[Any]:
    for strategy in entry.get("strategies") or []:
        if not isinstance(strategy, dict):
            yield None
            continue
        yield from strategy.get("constraints") or []
        for segment_id in strategy.get("segments") or []:
            segment = segments.get(str(segment_id)) if isinstance(segments, dict) else None
            yield from (segment.get("constraints") or []) if isinstance(segment, dict) else [None]


def _volatile(entry: Any, segments: Any) -> bool:
    """Whether a flag entry's answer can differ between two evaluations of the same context: it
    reads the clock (DATE_AFTER / DATE_BEFORE) or draws at random with a targeting key too ("random"
    stickiness; a variant split on a custom stickiness whose attribute is missing). Anything it
    cannot read counts as volatile."""
    if not isinstance(entry, dict):
        return True
    if not entry.get("enabled"):
        return False
    for constraint in _constraints(entry, segments):
        if not isinstance(constraint, dict) or str(constraint.get("operator", "")).startswith("DATE_"):
            return True
    sticky = entry.get("variant_stickiness") or "default"
    if entry.get("variants") and sticky != "default":
        return True
    for strategy in entry.get("strategies") or []:
        stickiness = strategy.get("stickiness") or "default"
        if stickiness == "random" or (strategy.get("variants") and stickiness != "default"):
            return True
    return False


def _with_parents(flags: dict[str, Any], found: set[str]) -> frozenset[str]:
    """``found`` and the flags that depend on one of them (parents are one level deep)."""
    children = {
        key
        for key, entry in flags.items()
        if isinstance(entry, dict)
        and any(isinstance(d, dict) and d.get("flag") in found for d in entry.get("dependencies") or [])
    }
    return frozenset(found | children)


def served(ruleset: Ruleset, document: dict[str, Any], metadata: dict[str, Any]) -> Served:
    flags = document.get("flags") or {}
    segments = document.get("segments") or {}
    needs_key = frozenset(k for k, entry in flags.items() if _splits(entry))
    volatile = _with_parents(flags, {k for k, entry in flags.items() if _volatile(entry, segments)})
    return Served(ruleset, metadata, needs_key, volatile, _with_parents(flags, set(needs_key)))


def has_targeting_key(context: dict[str, Any]) -> bool:
    return context.get("user_id") not in (None, "") or context.get("session_id") not in (None, "")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


class BadRequest(Exception):
    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details

    def answer(self, key: str | None = None) -> Answer:
        body: dict[str, Any] = {"errorCode": self.code, "errorDetails": self.details}
        return Answer(400, {"key": key, **body} if key is not None else body)


def parse_context(raw: bytes) -> dict[str, Any]:
    """The evaluation context of an OFREP request body; an empty body is an empty context.
    OpenFeature's ``targetingKey`` is the ``user_id`` (the default stickiness) unless one is given."""
    if not raw.strip():
        return {}
    try:
        try:  # UTF-8 (nearly every body): half the time of json.loads on bytes, which detects the encoding
            body = _decode(raw.decode())
        except ValueError:  # anything else, errors included, exactly as json.loads answers it
            body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(PARSE_ERROR, f"the request body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(body, dict):
        raise BadRequest(PARSE_ERROR, f"the request body must be a JSON object, got {type(body).__name__}")
    context = body.get("context")
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise BadRequest(INVALID_CONTEXT, f"'context' must be a JSON object, got {type(context).__name__}")
    targeting_key = context.get("targetingKey")
    if targeting_key is not None and not isinstance(targeting_key, str):
        raise BadRequest(INVALID_CONTEXT, f"'targetingKey' must be a string, got {type(targeting_key).__name__}")
    if targeting_key and context.get("user_id") in (None, ""):
        context = {**context, "user_id": targeting_key}
    return context


def _evaluate(ruleset: Ruleset, key: str, context: dict[str, Any]) -> Evaluation:
    try:
        return ruleset.evaluate(key, context, None)
    except Exception as exc:  # the evaluator promises not to raise; a context it chokes on is bad input
        log.warning("evaluating %s failed on its context: %r", key, exc)
        raise BadRequest(INVALID_CONTEXT, f"the context cannot be evaluated: {str(exc)[:200]}") from None


def _failure(key: str, code: str, details: str) -> dict[str, Any]:
    return {"key": key, "errorCode": code if code in FAILURE_CODES else GENERAL, "errorDetails": details}


def _answer(serving: Served, key: str, context: dict[str, Any], keyed: bool) -> tuple[bool, dict[str, Any]]:
    """(success, body) of one flag that exists. Raises BadRequest for a context it chokes on."""
    if not keyed and key in serving.needs_key:
        details = (
            f"flag {key!r} serves a percentage or a variant split: send a targetingKey in the context "
            "(or user_id / session_id) so that each user gets the same answer every time"
        )
        return False, _failure(key, TARGETING_KEY_MISSING, details)
    result = _evaluate(serving.ruleset, key, context)
    if result.error_code is not None:
        details = result.error_message or result.error_code or "the flag cannot be evaluated"
        return False, _failure(key, result.error_code, details)
    value = result.value
    if value is None or isinstance(value, list):
        what = "no value" if value is None else "a JSON array"
        details = (
            f"flag {key!r} evaluated to {what}; OFREP carries booleans, strings, numbers and JSON "
            'objects only: make its values objects (e.g. wrap the array as {"items": [...]})'
        )
        return False, _failure(key, GENERAL, details)
    reason = REASON_OF.get(result.reason, result.reason)
    body = {
        "key": key,
        "value": value,
        "reason": reason if reason in REASONS else "UNKNOWN",
        "variant": result.variant or PLAIN_VARIANTS.get(result.reason, "on"),
        "metadata": serving.metadata,
    }
    return True, body


def not_found(key: str) -> Answer:
    details = f"flag {key!r} is not in this environment"
    return Answer(404, {"key": key, "errorCode": FLAG_NOT_FOUND, "errorDetails": details})


def evaluate_one(serving: Served, key: str, raw: bytes) -> Answer:
    return answer_one(serving, key, raw)[0]


def answer_one(serving: Served, key: str, raw: bytes) -> tuple[Answer, bool]:
    """The answer to a single evaluation, and whether it is a pure function of the ruleset, the
    key and the raw body (then the same request may be answered from a cache of this Served)."""
    try:
        context = parse_context(raw)
        if key not in serving.ruleset:
            return not_found(key), True
        keyed = has_targeting_key(context)
        ok, body = _answer(serving, key, context, keyed)
    except BadRequest as bad:
        return bad.answer(key), True
    # without a targeting key, a flag of needs_key answers TARGETING_KEY_MISSING before any draw
    pure = key not in serving.volatile and (keyed or key not in serving.random_unkeyed or key in serving.needs_key)
    return Answer(200 if ok else 400, body), pure


def etag(version: int, context: dict[str, Any]) -> str:
    """A bulk answer depends on the ruleset version and on the context."""
    digest = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f'"{version}-{digest}"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether If-None-Match names ``tag`` (weak or strong, quoted or not) or is ``*``."""
    if not if_none_match:
        return False
    candidates = [c.strip().removeprefix("W/").strip('"') for c in if_none_match.split(",")]
    return "*" in candidates or tag.strip('"') in candidates


def evaluate_bulk(serving: Served, raw: bytes, if_none_match: str | None) -> Answer:
    try:
        context = parse_context(raw)
    except BadRequest as bad:
        return bad.answer()
    tag = etag(serving.ruleset.version, context)
    if matches(if_none_match, tag):
        return Answer(304, None, {"ETag": tag})
    keyed = has_targeting_key(context)
    try:
        names = serving.ruleset.keys()  # sorted
        flags = [_answer(serving, key, context, keyed)[1] for key in names]
    except BadRequest as bad:
        return bad.answer()
    return Answer(200, {"flags": flags, "metadata": serving.metadata}, {"ETag": tag})


def configuration() -> dict[str, Any]:
    """GET /ofrep/v1/configuration: what a provider may rely on."""
    return {
        "name": "conveyor",
        "capabilities": {
            "cacheInvalidation": {"polling": {"enabled": True, "minPollingIntervalMs": 1000}},
            "flagEvaluation": {"supportedTypes": ["boolean", "string", "int", "float", "object"]},
        },
    }
