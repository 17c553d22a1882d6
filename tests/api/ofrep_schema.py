"""Validate real OFREP responses against the official document (tests/api/ofrep/openapi.yaml).

The document has one defect, fixed here in memory (the file stays as vendored): the value of
``evaluationSuccess`` is a ``oneOf`` of booleanFlag, stringFlag, integerFlag, floatFlag, objectFlag
and codeDefaultFlag, but codeDefaultFlag (``type: object, properties: {}``) matches every response
and an integer matches both integerFlag and floatFlag, so no response with a value can match
exactly one; even the document's own example fails (``test_the_document_as_vendored_rejects_its_own
example``). The fix reads it as intended: ``anyOf``, and codeDefaultFlag is the response *without*
a value ("This schema has no `value` property").
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

DOCUMENT = Path(__file__).parent / "ofrep" / "openapi.yaml"
SINGLE, BULK = "/ofrep/v1/evaluate/flags/{key}", "/ofrep/v1/evaluate/flags"


@cache
def document(fixed: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
    if fixed:
        doc = copy.deepcopy(doc)
        schemas = doc["components"]["schemas"]
        value_part = schemas["evaluationSuccess"]["allOf"][1]
        value_part["anyOf"] = value_part.pop("oneOf")
        schemas["codeDefaultFlag"]["not"] = {"required": ["value"]}
    return doc


def response_schema(path: str, status: int, fixed: bool = True) -> dict[str, Any] | None:
    """The JSON schema of that response's body, or None when the document declares no body."""
    doc = document(fixed)
    response = doc["paths"][path]["post"]["responses"][str(status)]  # KeyError: an undeclared status
    content = response.get("content", {}).get("application/json")
    if content is None:
        return None
    return {**content["schema"], "components": doc["components"]}


def errors(path: str, status: int, body: Any, fixed: bool = True) -> list[str]:
    """Why ``body`` does not fit the document's response ``status`` of ``path`` (empty: it fits)."""
    schema = response_schema(path, status, fixed)
    if schema is None:
        return [] if body in (None, b"", "") else [f"{status} declares no body, got {body!r}"]
    validator = jsonschema_rs.validator_for(schema)
    return [e.message for e in validator.iter_errors(body)]
