"""One flag's page: its state, rollout and targeting rules in every environment, its variants,
and its timeline (the flag's audited changes and its service's deployments, newest first).

Every change goes through the flag service functions the API uses (``flags.service``): the same
policy check (a refusal is a 403 page and a ``forbidden`` audit entry), the same validation, the
same audit entry with before/after, the same ruleset version bump and push to SDKs. The page shows
a control only to those the policy allows; a forged form is refused by the service all the same."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from conveyor.errors import Conflict, InvalidInput, NotFound
from conveyor.flags import policy, store
from conveyor.flags import service as ops
from conveyor.flags.live import live_of
from conveyor.flags.model import OPERATORS, EnvState, dump, parse
from conveyor.web.flag_timeline import timeline
from conveyor.web.flags import rollout_of
from conveyor.web.pages import PageRoute, page, runtime
from conveyor.web.session import PostDep, SessionDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)

DONE = {
    "rollout": "rollout set",
    "rule-added": "targeting rule added",
    "rule-removed": "targeting rule removed",
    "constraint-added": "constraint added",
    "constraint-removed": "constraint removed",
    "variant-added": "variant added",
    "variant-removed": "variant removed",
    "variant-updated": "variant changed",
}
VARIANT_OPS = {"add": "variant-added", "remove": "variant-removed", "update": "variant-updated"}
TARGETING = {
    "add-rule": "rule-added",
    "remove-rule": "rule-removed",
    "add-constraint": "constraint-added",
    "remove-constraint": "constraint-removed",
}
Text = Annotated[str, Form(max_length=2000)]
Values = Annotated[str, Form(max_length=20_000)]


def flag_url(service: str, key: str) -> str:
    return f"/flags/{quote(service, safe='')}/{quote(key, safe='')}"


def fingerprint(value: Any) -> str:
    """What a remove form expects to remove: a change made meanwhile is a conflict, not a surprise."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _notify(request: Request) -> ops.Notify:
    return live_of(request.app.state, runtime(request)).notify


@router.get("/flags/{service}/{key}")
def flag_page(
    service: str,
    key: str,
    request: Request,
    session: SessionDep,
    done: str = Query("", max_length=32),
    env: str = Query("", max_length=32),
) -> Response:
    rt, user = runtime(request), session.user
    with rt.db.read() as conn:
        flag, svc = ops.find(conn, key, service)
        envs = ops.environments(rt, svc)
        states = store.get_states(conn, [flag.id])
        entries = timeline(conn, svc.id, f"{svc.name}/{flag.key}")
    rows = []
    for name, spec in envs.items():
        state = states.get((flag.id, name), store.StateRecord(name, EnvState())).state
        may = policy.may_change(user.name, user.roles, name, spec).allowed
        strategies = [
            {
                **dump(s),
                "index": i,
                "fingerprint": fingerprint(dump(s)),
                "constraint_fingerprints": [fingerprint(dump(c)) for c in s.constraints],
            }
            for i, s in enumerate(state.strategies)
        ]
        rollout = rollout_of(state)
        row = {"environment": name, "enabled": state.enabled, "rollout": rollout, "may_change": may}
        rows.append({**row, "rules": strategies})
    enabled_in = [r for r in rows if r["enabled"]]
    may_variants = policy.may_define(user.name, user.roles).allowed and all(r["may_change"] for r in enabled_in)
    message = f"{DONE[done]}{f' in {env}' if env else ''}." if done in DONE else None
    context = {
        "flag": flag,
        "service": svc.name,
        "url": flag_url(svc.name, flag.key),
        "rows": rows,
        "variants": [dump(v) for v in flag.definition.variants],
        "variants_fingerprint": fingerprint([dump(v) for v in flag.definition.variants]),
        "may_variants": may_variants,
        "operators": OPERATORS,
        "timeline": entries,
        "message": message,
    }
    return page(request, "flag.html", context)


@router.post("/flags/{service}/{key}/environments/{environment}/rollout")
def set_rollout(
    service: str,
    key: str,
    environment: str,
    request: Request,
    session: PostDep,
    percent: Annotated[int, Form(ge=0, le=100)],
    back: Annotated[str, Form(max_length=8)] = "flag",
) -> Response:
    result = ops.rollout(runtime(request), session.user, _notify(request), (key, service, environment), percent)
    if back == "list":
        query = {"done": "rollout", "flag": result["key"], "service": result["service"], "env": environment}
        return RedirectResponse(f"/flags?{urlencode({**query, 'percent': percent})}", status_code=303)
    return _back(result["service"], result["key"], "rollout", environment)


def _back(service: str, key: str, done: str, environment: str | None = None) -> Response:
    query = urlencode({"done": done, **({"env": environment} if environment else {})})
    return RedirectResponse(f"{flag_url(service, key)}?{query}", status_code=303)


def constraint_of(attribute: str, operator: str, values: str, inverted: bool, case_insensitive: bool) -> dict[str, Any]:
    """A constraint from the form: values are separated by commas, except for operators that
    compare with one value (REGEX, NUM_*, SEMVER_*, DATE_*), whose value is taken as typed."""
    if operator not in OPERATORS:
        raise InvalidInput(f"unknown operator {operator!r}", fix=f"use one of: {', '.join(OPERATORS)}")
    single = operator == "REGEX" or operator.startswith(("NUM_", "SEMVER_", "DATE_"))
    parts = [values.strip()] if single else [v.strip() for v in values.split(",")]
    found = {
        "attribute": attribute.strip(),
        "operator": operator,
        "values": [v for v in parts if v],
        "inverted": inverted,
        "case_insensitive": case_insensitive,
    }
    return found


def _pick(items: list[Any], index: int, expect: str, what: str) -> None:
    if not 0 <= index < len(items) or fingerprint(items[index]) != expect:
        raise Conflict(f"the {what} changed since the page was loaded; nothing was changed", fix="reload the page")


def edit_strategies(strategies: list[dict[str, Any]], op: str, form: dict[str, Any]) -> list[dict[str, Any]]:
    """Apply one targeting edit to the environment's strategies (as the API writes them). A new
    rule goes before the rollout strategy (the first one without constraints); removing a rule's
    last constraint removes the rule, so it never silently turns into a rule for everyone."""
    out = [dict(s) for s in strategies]
    if op == "add-rule":
        rule = {"constraints": [form["constraint"]], "rollout": form["rollout"]}
        at = next((i for i, s in enumerate(out) if not s.get("constraints") and not s.get("segments")), len(out))
        return [*out[:at], rule, *out[at:]]
    index = form["rule"]
    if op == "remove-rule":
        _pick(out, index, form["expect"], "rule")
        return out[:index] + out[index + 1 :]
    if not 0 <= index < len(out) or not (out[index].get("constraints") or out[index].get("segments")):
        raise Conflict("the rule changed since the page was loaded; nothing was changed", fix="reload the page")
    constraints = list(out[index]["constraints"])
    if op == "add-constraint":
        out[index]["constraints"] = [*constraints, form["constraint"]]
        return out
    at = form["constraint_index"]
    _pick(constraints, at, form["expect"], "constraint")
    out[index]["constraints"] = constraints[:at] + constraints[at + 1 :]
    kept = out[index]["constraints"] or out[index].get("segments")  # a rule with segments stays a rule
    return out if kept else out[:index] + out[index + 1 :]


@router.post("/flags/{service}/{key}/environments/{environment}/targeting")
def change_targeting(
    service: str,
    key: str,
    environment: str,
    request: Request,
    session: PostDep,
    op: Annotated[str, Form(max_length=32)],
    rule: Annotated[int, Form(ge=0, le=1000)] = 0,
    constraint: Annotated[int, Form(ge=0, le=1000)] = 0,
    expect: Values = "",
    attribute: Annotated[str, Form(max_length=128)] = "",
    operator: Annotated[str, Form(max_length=32)] = "IN",
    values: Values = "",
    inverted: Annotated[bool, Form()] = False,
    case_insensitive: Annotated[bool, Form()] = False,
    rollout: Annotated[int, Form(ge=0, le=100)] = 100,
) -> Response:
    if op not in TARGETING:
        raise NotFound(f"no targeting operation {op!r}", fix=f"use one of: {', '.join(TARGETING)}")
    form: dict[str, Any] = {"rule": rule, "constraint_index": constraint, "expect": expect, "rollout": rollout}
    if op in ("add-rule", "add-constraint"):
        form["constraint"] = constraint_of(attribute, operator, values, inverted, case_insensitive)

    def change(state: EnvState) -> EnvState:
        current = dump(state)
        current["strategies"] = edit_strategies(current["strategies"], op, form)
        return parse(EnvState, current, f"the targeting of {key} in {environment}")

    rt = runtime(request)
    result = ops.change_state(rt, session.user, _notify(request), (key, service, environment), "flag.state_set", change)
    return _back(result["service"], result["key"], TARGETING[op], environment)


def variant_value(flag_type: str, text: str) -> Any:
    """A variant's value from the form: as typed for a string flag, else read as JSON
    (true, 42, {"a": 1}); the flag service checks it fits the flag's type."""
    if flag_type == "string":
        return text
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidInput(
            f"variant value {text!r} is not valid JSON", fix=f"give a {flag_type} value, e.g. true, 42 or {{}}"
        ) from None


@router.post("/flags/{service}/{key}/variants/{op}")
def change_variants(
    service: str,
    key: str,
    op: str,
    request: Request,
    session: PostDep,
    name: Annotated[str, Form(max_length=64)] = "",
    value: Values = "",
    weight: Annotated[int, Form(ge=0, le=100_000)] = 1,
    index: Annotated[int, Form(ge=0, le=1000)] = 0,
    expect: Values = "",
) -> Response:
    """Add, change (value and weight) or remove one of the flag's variants:
    ``flags.service.update_flag``, as PATCH in the API, so with its permissions and audit."""
    if op not in VARIANT_OPS:
        raise NotFound(f"no variant operation {op!r}", fix="use add, update or remove")
    rt = runtime(request)
    flag = ops.detail(rt, key, service)
    variants = list(flag["variants"])
    if fingerprint(variants) != expect:  # the list the page showed
        raise Conflict("the variants changed since the page was loaded; nothing was changed", fix="reload the page")
    if op == "add":
        variants.append({"name": name.strip(), "value": variant_value(flag["type"], value), "weight": weight})
    elif op == "update" and 0 <= index < len(variants):
        variants[index] = {**variants[index], "value": variant_value(flag["type"], value), "weight": weight}
    elif 0 <= index < len(variants):
        del variants[index]
    result = ops.update_flag(rt, session.user, _notify(request), key, service, {"variants": variants})
    return _back(result["service"], result["key"], VARIANT_OPS[op])
