"""OFREP v1 (the OpenFeature Remote Evaluation Protocol), server side: request parsing, single and
bulk evaluation, error bodies and ETags. Pure: bytes and a compiled ruleset in, status and body out.

Status codes (open-feature/protocol service/openapi.yaml): 200 evaluated; 400 with errorCode
PARSE_ERROR (body not JSON, or not an object) or INVALID_CONTEXT (``context`` not an object, or a
context the evaluator cannot use); 404 FLAG_NOT_FOUND; bulk answers 200 with a per-flag errorCode
for a flag that cannot be evaluated, and 304 when If-None-Match names its current ETag.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from conveyor.flags.evaluate import Evaluation, Ruleset

log = logging.getLogger("conveyor.flags.ofrep")

PARSE_ERROR, INVALID_CONTEXT, GENERAL, FLAG_NOT_FOUND = "PARSE_ERROR", "INVALID_CONTEXT", "GENERAL", "FLAG_NOT_FOUND"
FAILURE_CODES = frozenset({PARSE_ERROR, "TARGETING_KEY_MISSING", INVALID_CONTEXT, GENERAL})
# the variant OFREP reports when no variant was picked (OpenFeature providers expect a string)
PLAIN_VARIANTS = {"DISABLED": "off", "DEFAULT": "default"}


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


def _success(key: str, result: Evaluation, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": key,
        "value": result.value,
        "reason": result.reason,
        "variant": result.variant or PLAIN_VARIANTS.get(result.reason, "on"),
        "metadata": metadata,
    }


def _failure(key: str, result: Evaluation) -> dict[str, Any]:
    code = result.error_code if result.error_code in FAILURE_CODES else GENERAL
    details = result.error_message or result.error_code or "the flag cannot be evaluated"
    return {"key": key, "errorCode": code, "errorDetails": details}


def evaluate_one(ruleset: Ruleset, metadata: dict[str, Any], key: str, raw: bytes) -> Answer:
    try:
        context = parse_context(raw)
        if key not in ruleset:
            return Answer(
                404,
                {"key": key, "errorCode": FLAG_NOT_FOUND, "errorDetails": f"flag {key!r} is not in this environment"},
            )
        result = _evaluate(ruleset, key, context)
    except BadRequest as bad:
        return bad.answer(key)
    if result.error_code is not None:
        return Answer(400, _failure(key, result))
    return Answer(200, _success(key, result, metadata))


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


def evaluate_bulk(ruleset: Ruleset, metadata: dict[str, Any], raw: bytes, if_none_match: str | None) -> Answer:
    try:
        context = parse_context(raw)
    except BadRequest as bad:
        return bad.answer()
    tag = etag(ruleset.version, context)
    if matches(if_none_match, tag):
        return Answer(304, None, {"ETag": tag})
    flags: list[dict[str, Any]] = []
    for key in sorted(ruleset.keys()):
        try:
            result = _evaluate(ruleset, key, context)
        except BadRequest as bad:
            return bad.answer()
        flags.append(_failure(key, result) if result.error_code else _success(key, result, metadata))
    return Answer(200, {"flags": flags, "metadata": metadata}, {"ETag": tag})


def configuration() -> dict[str, Any]:
    """GET /ofrep/v1/configuration: what a provider may rely on."""
    return {
        "name": "conveyor",
        "capabilities": {
            "cacheInvalidation": {"polling": {"enabled": True, "minPollingIntervalMs": 1000}},
            "flagEvaluation": {"supportedTypes": ["boolean", "string", "int", "float", "object"]},
        },
    }
