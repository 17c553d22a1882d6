"""Schemathesis hooks for tests/api/test_fuzz.py (loaded with SCHEMATHESIS_HOOKS=tests.api.fuzz_hooks).

- Known names and ids (the service, its environments, a real deployment, a flag, a freeze) are mixed
  into generated path parameters, queries and bodies, so the fuzzer gets past "no such service" into
  the code behind it.
- The fuzzing user, its token and the OFREP run's SDK key are never disabled, demoted or revoked: the
  rest of the run would only see 401s.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

USER = os.environ.get("FUZZ_USER", "alice")
PROTECTED_IDS = {"token_id": os.environ.get("FUZZ_TOKEN_ID", ""), "key_id": os.environ.get("FUZZ_SDK_KEY_ID", "")}
DEPLOYMENT = os.environ.get("FUZZ_DEPLOYMENT_ID", "")
KNOWN: dict[str, list[Any]] = {
    "service": ["shop"],
    "environment": ["staging", "production"],
    "ref": ["main"],
    "deployment_id": [DEPLOYMENT, DEPLOYMENT[:8]] if DEPLOYMENT else [],
    "key": ["discount-banner"],
    "freeze_id": [int(os.environ.get("FUZZ_FREEZE_ID", "1"))],
}


def _mixed(values: Any) -> st.SearchStrategy[Any]:
    if not isinstance(values, dict) or not values:
        return st.just(values)
    return st.fixed_dictionaries(
        {name: st.sampled_from([value, *KNOWN.get(name, [])]) for name, value in values.items()}
    )


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[Any]:
    return _mixed(path_parameters)


@schemathesis.hook
def flatmap_query(context: Any, query: dict[str, Any]) -> st.SearchStrategy[Any]:
    return _mixed(query)


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    return _mixed(body)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    params = case.path_parameters
    if not params:
        return
    if str(params.get("name")) == USER:
        params["name"] = f"{USER}-not"
    for name, protected in PROTECTED_IDS.items():
        if protected and str(params.get(name)) == protected:
            params[name] = 10**9
