"""What a command costs before it does anything: the modules it imports and the TLS contexts made.

A `conveyor deploy` imports the deploy commands and the API client, not the server, the config
loader or the flags model (cli/main.py loads a command's module only when that command runs), and
no client Conveyor makes loads a CA bundle again (conveyor.httpclient)."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys

import pytest

from conveyor import httpclient
from conveyor.cli.main import COMMANDS, build, command_name

PROBE = """
import json, sys
sys.argv = ["conveyor", *json.loads(sys.argv[1])]
from conveyor.cli.main import main
try:
    main()
except SystemExit:
    pass
print("MODULES " + json.dumps(sorted(m for m in sys.modules if m.startswith("conveyor"))), file=sys.stderr)
others = sorted(m for m in sys.modules if m.split(".")[0] == "click" or m == "httpx._main")
print("OTHERS " + json.dumps(others), file=sys.stderr)
models = sys.modules.get("conveyor.api.models")
built = [n for n, v in vars(models).items() if getattr(v, "__pydantic_complete__", False)] if models else []
print("BUILT " + json.dumps(built), file=sys.stderr)
"""
HEAVY = ("conveyor.cli.server", "conveyor.spec.loader", "conveyor.flags.model", "conveyor.store.db", "conveyor.app")


def probe(*argv: str) -> dict[str, list[str]]:
    """What ``conveyor ARGV`` left in sys.modules, and which API response models it built."""
    run = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=60, check=False
    )
    found = {}
    for key in ("MODULES", "OTHERS", "BUILT"):
        line = next(line for line in run.stderr.splitlines() if line.startswith(key + " "))
        found[key] = json.loads(line.removeprefix(key + " "))
    return found


def imported(*argv: str) -> set[str]:
    return set(probe(*argv)["MODULES"])


@pytest.mark.parametrize("argv", [("deploy", "--help"), ("status", "--help"), ("why", "--help")])
def test_a_client_command_imports_neither_the_server_nor_the_config_loader(argv: tuple[str, ...]) -> None:
    modules = imported(*argv)
    assert "conveyor.cli.client" in modules  # the probe ran the command
    assert not modules & set(HEAVY), f"`conveyor {' '.join(argv)}` imported {sorted(modules & set(HEAVY))}"


def test_a_command_skips_httpx_s_own_cli_and_builds_only_the_models_it_reads() -> None:
    """httpx imports its command line client (click, rich, pygments) unless conveyor/__init__.py
    puts an empty module in its place; the response models build their schemas on first use
    (``defer_build``). Typer has its own copy of click."""
    found = probe("status", "--help")
    assert "conveyor.api.models" in found["MODULES"]
    assert found["OTHERS"] == ["httpx._main"], found["OTHERS"]  # the empty one
    assert found["BUILT"] == [], f"built at import: {found['BUILT']}"


def test_help_and_an_unknown_command_build_the_whole_cli() -> None:
    assert command_name(["--help"]) is None and command_name(["nosuch"]) is None and command_name([]) is None
    assert command_name(["deploy", "production"]) == "deploy"
    assert "conveyor.cli.server" in imported("--help")


def test_one_command_alone_is_the_same_command_as_in_the_whole_cli() -> None:
    import typer.main

    whole = typer.main.get_command(build())
    names = [name for name, *_ in COMMANDS]
    assert sorted(whole.commands) == sorted(names)  # type: ignore[attr-defined]
    for name in names:
        alone = typer.main.get_command(build(name))
        assert list(alone.commands) == [name]  # type: ignore[attr-defined]
        assert len(alone.commands[name].params) == len(whole.commands[name].params)  # type: ignore[attr-defined]


def test_clients_share_one_tls_context_and_plain_http_loads_no_ca() -> None:
    assert httpclient.verify_for("https://example.com") is httpclient.tls()
    assert httpclient.tls().cert_store_stats()["x509_ca"] > 0  # httpx's default trust is in it
    plain = httpclient.verify_for("http://127.0.0.1:8000")
    assert plain.cert_store_stats()["x509_ca"] == 0
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname  # an https redirect fails closed
    with httpclient.client("https://example.com") as one, httpclient.client("https://example.org") as two:
        assert one._transport._pool._ssl_context is two._transport._pool._ssl_context is httpclient.tls()  # type: ignore[attr-defined]
