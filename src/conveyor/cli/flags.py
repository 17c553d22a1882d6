"""conveyor flags ...: feature flags from the command line, a client of /api/v1/flags."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import typer

from conveyor.api.models_flags import FlagDeleted, FlagDetail, FlagState, FlagSummary, NewSdkKey, SdkKey
from conveyor.cli.client import Client, wire
from conveyor.cli.deploy import Json, Service
from conveyor.cli.flag_segments import import_app, segment_app
from conveyor.cli.output import Table, console, err, handles_errors, print_json
from conveyor.flags.model import Strategy
from conveyor.flags.text import describe_strategies, read_json, read_value

app = typer.Typer(
    help="Feature flags: definitions, state per environment, kill switch, SDK keys.", no_args_is_help=True
)
key_app = typer.Typer(help="SDK keys: one per service environment, for SDKs and OFREP.", no_args_is_help=True)
app.add_typer(key_app, name="key")
app.add_typer(segment_app, name="segment")
app.add_typer(import_app, name="import")

Flag = Annotated[str, typer.Argument(help="flag key")]
Env = Annotated[str, typer.Option("--env", "-e", help="environment, e.g. production")]
TypeOpt = Annotated[str | None, typer.Option("--type", "-t", help="boolean, string, number or json")]
Default = Annotated[str | None, typer.Option("--default", help="value served when off or when no rule matches")]
OnValue = Annotated[str | None, typer.Option("--on-value", help="value served when on (default: true for booleans)")]
Variants = Annotated[
    str | None, typer.Option("--variants", help='JSON list, or @FILE: [{"name": "a", "value": ..., "weight": 50}]')
]
Description = Annotated[str | None, typer.Option("--description", "-d", help="what the flag is for")]
T = TypeVar("T")


def _path(flag: str, *rest: str) -> str:
    return "/flags/" + "/".join(quote(part, safe="") for part in (flag, *rest))


def _json_arg(text: str, what: str) -> Any:
    try:
        return read_json(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=what) from None


def _value(text: str, flag_type: str, what: str) -> Any:
    try:
        return read_value(text, flag_type)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=what) from None


def _out(result: T, json_out: bool, human: Callable[[T], None]) -> None:
    if json_out:
        print_json(wire(result))
    else:
        human(result)


def _strategies(strategies: list[Strategy]) -> str:
    return describe_strategies([s.model_dump(mode="json") for s in strategies])


def _show(flag: FlagDetail) -> None:
    console.print(
        f"[bold]{flag.key}[/bold] ({flag.service}, {flag.type}): default {json.dumps(flag.default)}, "
        f"on {json.dumps(flag.on_value)}" + (f", {len(flag.variants)} variants" if flag.variants else ""),
        highlight=False,
    )
    if flag.description:
        console.print(f"  {flag.description}", highlight=False)
    table = Table("environment", "state", "strategies", "version", "changed by")
    for env in flag.environments:
        table.add_row(
            env.environment,
            "[green]on[/green]" if env.enabled else "off",
            _strategies(env.strategies),
            str(env.version),
            env.updated_by or "-",
        )
    console.print(table)


def _state_line(result: FlagState) -> None:
    state = "[green]on[/green]" if result.enabled else "[bold]off[/bold]"
    console.print(
        f"{result.key} is {state} in {result.environment} ({result.service}; "
        f"serves {_strategies(result.strategies)} when on; ruleset version {result.version})",
        highlight=False,
    )


@app.command("create")
@handles_errors
def create(
    flag: Flag,
    service: Service = None,
    flag_type: TypeOpt = None,
    default: Default = None,
    on_value: OnValue = None,
    variants: Variants = None,
    description: Description = None,
    json_out: Json = False,
) -> None:
    """Create a flag. It is off in every environment until `conveyor flags on`."""
    kind = flag_type or "boolean"
    body: dict[str, Any] = {"key": flag, "service": service, "type": kind, "description": description}
    if default is not None:
        body["default"] = _value(default, kind, "--default")
    if on_value is not None:
        body["on_value"] = _value(on_value, kind, "--on-value")
    if variants is not None:
        body["variants"] = _json_arg(variants, "--variants")
    result = Client().send_as(FlagDetail, "POST", "/flags", body)
    _out(result, json_out, _show)


@app.command("list")
@handles_errors
def list_flags(service: Service = None, json_out: Json = False) -> None:
    """Every flag, and where it is on."""
    rows = Client().get_as(list[FlagSummary], "/flags", service=service)
    if json_out:
        print_json(wire(rows))
        return
    table = Table("flag", "service", "type", "default", "on in")
    for f in rows:
        table.add_row(f.key, f.service, f.type, json.dumps(f.default), ", ".join(f.enabled_in) or "-")
    console.print(table)


@app.command("show")
@handles_errors
def show(flag: Flag, service: Service = None, json_out: Json = False) -> None:
    """A flag and its state in every environment."""
    result = Client().get_as(FlagDetail, _path(flag), service=service)
    _out(result, json_out, _show)


@app.command("update")
@handles_errors
def update(
    flag: Flag,
    service: Service = None,
    flag_type: TypeOpt = None,
    default: Default = None,
    on_value: OnValue = None,
    variants: Variants = None,
    description: Description = None,
    json_out: Json = False,
) -> None:
    """Change a flag's type, default, on value, variants or description."""
    client = Client()
    body: dict[str, Any] = {}
    kind = flag_type
    if kind is None and (default is not None or on_value is not None):
        kind = client.get_as(FlagDetail, _path(flag), service=service).type
    if flag_type is not None:
        body["type"] = flag_type
    if default is not None:
        body["default"] = _value(default, kind or "string", "--default")
    if on_value is not None:
        body["on_value"] = _value(on_value, kind or "string", "--on-value")
    if variants is not None:
        body["variants"] = _json_arg(variants, "--variants")
    if description is not None:
        body["description"] = description
    result = client.send_as(FlagDetail, "PATCH", _path(flag), body, service=service)
    _out(result, json_out, _show)


@app.command("delete")
@handles_errors
def delete(flag: Flag, service: Service = None, json_out: Json = False) -> None:
    """Delete a flag that is off everywhere."""
    result = Client().send_as(FlagDeleted, "DELETE", _path(flag), service=service)
    if json_out:
        print_json(wire(result))
    else:
        console.print(f"flag {result.key} deleted", highlight=False)


def _env_action(flag: str, env: str, action: str, service: str | None, body: dict[str, Any], json_out: bool) -> None:
    result = Client().send_as(FlagState, "POST", _path(flag, "environments", env, action), body, service=service)
    _out(result, json_out, _state_line)


@app.command("on")
@handles_errors
def turn_on(flag: Flag, env: Env, service: Service = None, json_out: Json = False) -> None:
    """Serve the flag in ENV: to everyone, unless a rollout or rules narrow it."""
    _env_action(flag, env, "on", service, {}, json_out)


@app.command("off")
@handles_errors
def turn_off(flag: Flag, env: Env, service: Service = None, json_out: Json = False) -> None:
    """Serve the flag's default in ENV."""
    _env_action(flag, env, "off", service, {}, json_out)


@app.command("kill")
@handles_errors
def kill(
    flag: Flag,
    env: Env,
    service: Service = None,
    reason: Annotated[str | None, typer.Option("--reason", help="why, for the audit log")] = None,
    json_out: Json = False,
) -> None:
    """The kill switch: turn the flag off in ENV now (managers may too)."""
    _env_action(flag, env, "kill", service, {"reason": reason}, json_out)


@app.command("rollout")
@handles_errors
def rollout(
    flag: Flag,
    percent: Annotated[int, typer.Argument(help="0 to 100", min=0, max=100)],
    env: Env,
    service: Service = None,
    json_out: Json = False,
) -> None:
    """Serve the flag to PERCENT of users in ENV (sticky by user_id). Does not turn it on."""
    _env_action(flag, env, "rollout", service, {"percent": percent}, json_out)


@app.command("set")
@handles_errors
def set_state(
    flag: Flag,
    env: Env,
    strategies: Annotated[
        str | None, typer.Option("--strategies", help="JSON list of strategies, or @FILE (docs/flags.md)")
    ] = None,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled", help="turn on or off as well")] = None,
    service: Service = None,
    json_out: Json = False,
) -> None:
    """Set the flag's targeting rules and rollout in ENV (what you leave out stays)."""
    body: dict[str, Any] = {"enabled": enabled}
    if strategies is not None:
        body["strategies"] = _json_arg(strategies, "--strategies")
    result = Client().send_as(FlagState, "PUT", _path(flag, "environments", env), body, service=service)
    _out(result, json_out, _state_line)


@key_app.command("create")
@handles_errors
def key_create(
    env: Env,
    service: Service = None,
    name: Annotated[str | None, typer.Option("--name", help="a label, e.g. the app using it")] = None,
    json_out: Json = False,
) -> None:
    """Create an SDK key for ENV; it is printed once and stored only as a hash."""
    body = {"environment": env, "service": service, "name": name}
    result = Client().send_as(NewSdkKey, "POST", "/flags/sdk-keys", body)
    if json_out:
        print_json(wire(result))
        return
    print(result.key)
    err.print(f"SDK key for {result.service}/{result.environment} (shown once)", highlight=False)


@key_app.command("list")
@handles_errors
def key_list(
    service: Service = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="only this environment")] = None,
    json_out: Json = False,
) -> None:
    """SDK keys (their prefixes; the keys themselves are not kept)."""
    rows = Client().get_as(list[SdkKey], "/flags/sdk-keys", service=service, environment=env)
    if json_out:
        print_json(wire(rows))
        return
    table = Table("id", "prefix", "service", "environment", "name", "created by", "revoked")
    for k in rows:
        table.add_row(
            str(k.id), k.prefix, k.service, k.environment, k.name or "-", k.created_by, "yes" if k.revoked else "-"
        )
    console.print(table)


@key_app.command("revoke")
@handles_errors
def key_revoke(
    key_id: Annotated[int, typer.Argument(help="the key's id (`conveyor flags key list`)")], json_out: Json = False
) -> None:
    """Revoke an SDK key: it stops working at once (open streams end within 15 s)."""
    result = Client().send_as(SdkKey, "DELETE", f"/flags/sdk-keys/{key_id}")
    if json_out:
        print_json(wire(result))
    else:
        console.print(f"SDK key {result.prefix}... revoked", highlight=False)
