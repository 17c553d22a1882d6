"""The client against a real HTTP server: fetch, SSE, polling fallback, ETag, bootstrap, errors, fork."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import conveyor_flags
from conveyor_flags import Client
from conveyor_flags.transport import Event, parse_sse
from flags_fakes import SDK_KEY, ClosingServer, FlagsServer, bool_flag, free_port_url, make_ruleset, wait_until

FLAG = "new_checkout_flow"


@pytest.fixture
def clients() -> Any:
    made: list[Client] = []

    def make(*args: Any, **kwargs: Any) -> Client:
        client = Client(*args, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "conveyor_flags" and r.levelno >= logging.WARNING and text in r.getMessage()
    ]


def test_initial_fetch_with_the_sdk_key(flags_server: FlagsServer, clients: Any) -> None:
    client = clients(flags_server.url, SDK_KEY, stream=False)
    assert client.ruleset is not None and client.ruleset.version == 1  # fetched before __init__ returned
    assert client.source == "fetch"
    assert client.feature_flag(FLAG) is False
    assert client.evaluate(FLAG, {}, False).reason == "DISABLED"
    assert flags_server.keys_seen == {SDK_KEY}


def test_a_change_on_the_stream_is_seen(flags_server: FlagsServer, clients: Any) -> None:
    client = clients(flags_server.url, SDK_KEY)
    wait_until(lambda: flags_server.stream_connects >= 1, what="the stream to connect")
    fetches_before = len(flags_server.if_none_match)
    flags_server.set_ruleset(new_checkout_flow=bool_flag(True))
    wait_until(lambda: client.feature_flag(FLAG) is True, timeout=5, what="the change to arrive by SSE")
    assert client.source == "stream"
    assert len(flags_server.if_none_match) == fetches_before  # it came by the stream, not a poll
    # keepalive comments do not disturb anything; a second change arrives too
    flags_server.set_ruleset(new_checkout_flow=bool_flag(False), other=bool_flag(True))
    wait_until(lambda: client.feature_flag("other") is True, timeout=5, what="the second change")


def test_when_the_stream_drops_polling_picks_up_changes(flags_server: FlagsServer, clients: Any) -> None:
    client = clients(flags_server.url, SDK_KEY, poll_interval=0.1, backoff=(30.0, 30.0))
    wait_until(lambda: flags_server.stream_connects >= 1, what="the stream to connect")
    flags_server.stream_enabled = False
    flags_server.drop_streams()
    flags_server.set_ruleset(new_checkout_flow=bool_flag(True))
    wait_until(lambda: client.feature_flag(FLAG) is True, timeout=5, what="a poll to pick up the change")
    assert client.source == "fetch"
    assert flags_server.stream_connects == 1  # no reconnect yet (backoff 30 s): it was the polling


def test_the_stream_reconnects_after_a_drop(flags_server: FlagsServer, clients: Any) -> None:
    client = clients(flags_server.url, SDK_KEY, poll_interval=60, backoff=(0.05, 0.2))
    wait_until(lambda: flags_server.stream_connects >= 1, what="the stream to connect")
    flags_server.drop_streams()
    wait_until(lambda: flags_server.stream_connects >= 2, timeout=5, what="a reconnect")
    flags_server.set_ruleset(new_checkout_flow=bool_flag(True))
    wait_until(lambda: client.feature_flag(FLAG) is True, timeout=5, what="the change on the new stream")


def test_etag_and_304(flags_server: FlagsServer, clients: Any) -> None:
    client = clients(flags_server.url, SDK_KEY, stream=False, poll_interval=0.05)
    wait_until(lambda: flags_server.statuses.count(304) >= 3, what="conditional polls answered 304")
    assert flags_server.if_none_match[0] is None
    assert set(flags_server.if_none_match[1:]) == {'"1"'}
    assert flags_server.statuses.count(200) == 1
    flags_server.set_ruleset(new_checkout_flow=bool_flag(True))
    wait_until(lambda: client.feature_flag(FLAG) is True, what="the poll after a change")
    wait_until(lambda: flags_server.if_none_match[-1] == '"2"', what="the new ETag to be sent")


def test_bootstrap_serves_while_the_server_is_down(tmp_path: Path, clients: Any) -> None:
    bootstrap = tmp_path / "flags.json"
    bootstrap.write_text(json.dumps(make_ruleset(9, new_checkout_flow=bool_flag(True))))
    client = clients(free_port_url(), SDK_KEY, bootstrap=bootstrap, ready_timeout=1)
    assert client.source == "bootstrap"
    assert client.feature_flag(FLAG) is True
    assert conveyor_flags.Client(None, bootstrap=bootstrap).feature_flag(FLAG) is True  # fully offline


def test_persist_writes_the_bootstrap_file_after_each_update(
    flags_server: FlagsServer, tmp_path: Path, clients: Any
) -> None:
    bootstrap = tmp_path / "state" / "flags.json"
    client = clients(flags_server.url, SDK_KEY, bootstrap=bootstrap, persist=True)
    assert json.loads(bootstrap.read_text())["version"] == 1
    flags_server.set_ruleset(new_checkout_flow=bool_flag(True))
    wait_until(lambda: json.loads(bootstrap.read_text())["version"] == 2, what="the file to be rewritten")
    client.close()
    flags_server.stop()
    restarted = clients(flags_server.url, SDK_KEY, bootstrap=bootstrap, ready_timeout=1)
    assert (restarted.source, restarted.feature_flag(FLAG)) == ("bootstrap", True)


def test_unreachable_server_never_raises_and_logs_once(
    closing_server: ClosingServer, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor_flags")
    client = clients(closing_server.url, SDK_KEY, poll_interval=0.02, backoff=(0.02, 0.05))
    wait_until(lambda: closing_server.accepted >= 6, what="several failed attempts")
    for _ in range(3):
        assert client.feature_flag(FLAG, user_id="1", default="fallback") == "fallback"
        assert client.evaluate(FLAG, {}, True).error_code == "PROVIDER_NOT_READY"
    assert len(warnings_about(caplog, "cannot reach")) == 1
    assert len(warnings_about(caplog, "PROVIDER_NOT_READY")) == 1


def test_malformed_json_keeps_the_last_ruleset_and_logs_once(
    flags_server: FlagsServer, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor_flags")
    client = clients(flags_server.url, SDK_KEY, stream=False, poll_interval=0.02)
    flags_server.body_override = '{"flags": {"new_checkout_flow": '
    polls = len(flags_server.if_none_match)
    wait_until(lambda: len(flags_server.if_none_match) >= polls + 5, what="several polls of a broken body")
    assert client.ruleset is not None and client.ruleset.version == 1
    assert client.feature_flag(FLAG, default=True) is False  # the last good ruleset still answers
    assert len(warnings_about(caplog, "malformed JSON")) == 1
    flags_server.body_override = '{"flags": []}'  # valid JSON, wrong shape
    wait_until(lambda: warnings_about(caplog, "invalid ruleset"), what="the invalid ruleset warning")
    flags_server.body_override = None
    flags_server.set_ruleset(new_checkout_flow=bool_flag(True))
    wait_until(lambda: client.feature_flag(FLAG) is True, what="recovery")
    assert len(warnings_about(caplog, "malformed JSON")) == 1
    assert len(warnings_about(caplog, "invalid ruleset")) == 1


def test_malformed_event_on_the_stream_is_skipped(
    flags_server: FlagsServer, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor_flags")
    client = clients(flags_server.url, SDK_KEY, poll_interval=60)
    wait_until(lambda: flags_server.stream_connects >= 1, what="the stream")
    flags_server.body_override = "not json"
    flags_server.set_ruleset(new_checkout_flow=bool_flag(True))
    wait_until(lambda: warnings_about(caplog, "malformed JSON from stream"), what="the warning")
    assert client.feature_flag(FLAG) is False
    flags_server.body_override = None
    flags_server.set_ruleset(new_checkout_flow=bool_flag(True))
    wait_until(lambda: client.feature_flag(FLAG) is True, what="the next good event")
    assert flags_server.stream_connects == 1


def test_sse_parsing() -> None:
    lines = [
        b": keepalive\r\n",
        b"\r\n",
        b"event: ruleset\r\n",
        b'data: {"a":\r\n',
        b"data:1}\r\n",
        b"\r\n",
        b"retry: 100\n",
        b"data: plain\n",
        b"\n",
        b"event: ruleset\n",
        b"data: cut off before the blank line",
    ]
    events = list(parse_sse(iter([*lines, b""]).__next__))
    assert events == [Event("ruleset", '{"a":\n1}'), Event("message", "plain")]
    assert json.loads(events[0].data) == {"a": 1}


def test_errors_in_evaluation_return_the_default_and_log_once_per_kind(
    caplog: pytest.LogCaptureFixture, clients: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor_flags")
    document = make_ruleset(
        1,
        color={"type": "string", "enabled": True, "default": "blue", "on_value": "green", "strategies": []},
        broken={"type": "boolean", "enabled": True, "default": False, "on_value": "yes", "strategies": []},
    )
    client = clients(ruleset=document)
    for _ in range(5):
        assert client.feature_flag("missing", default="fallback") == "fallback"
        assert client.feature_flag("color") is False  # a bool default for a string flag
        assert client.feature_flag("color", default="red") == "green"
        assert client.feature_flag("broken", default=True) is True  # the flag serves a wrong type
    assert len(warnings_about(caplog, "'missing': FLAG_NOT_FOUND")) == 1
    assert len(warnings_about(caplog, "'color': TYPE_MISMATCH")) == 1
    assert len(warnings_about(caplog, "'broken': TYPE_MISMATCH")) == 1
    assert len(caplog.records) == 3


def test_wrong_key_is_logged_once_with_a_hint(
    flags_server: FlagsServer, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor_flags")
    client = clients(flags_server.url, "wrong-key", poll_interval=0.02, backoff=(0.02, 0.05))
    wait_until(lambda: flags_server.statuses.count(401) >= 5, what="several refused requests")
    assert client.feature_flag(FLAG, default="d") == "d"
    assert len(warnings_about(caplog, "answered 401 (check the SDK key")) == 1


def test_module_level_feature_flag_configured_from_the_environment(
    flags_server: FlagsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_FLAGS_URL", flags_server.url)
    monkeypatch.setenv("CONVEYOR_FLAGS_KEY", SDK_KEY)
    monkeypatch.setattr(conveyor_flags.default, "_client", None)
    try:
        assert conveyor_flags.feature_flag(FLAG, user_id="42", default=True) is False  # configured lazily
        client = conveyor_flags.default_client()
        assert client.ruleset is not None
        flags_server.set_ruleset(new_checkout_flow=bool_flag(True))
        wait_until(lambda: conveyor_flags.feature_flag(FLAG) is True, what="the module-level client to update")
        details = conveyor_flags.feature_flag_details(FLAG, user_id="42")
        assert (details.value, details.reason) == (True, "STATIC")
        monkeypatch.delenv("CONVEYOR_FLAGS_URL")  # configure() takes what it is not given from the environment
        replaced = conveyor_flags.configure(ruleset=make_ruleset(5, new_checkout_flow=bool_flag(False)))
        assert conveyor_flags.default_client() is replaced
        assert conveyor_flags.feature_flag(FLAG) is False
    finally:
        current = conveyor_flags.default._client
        if current is not None:
            current.close()


# ---- fork safety ----------------------------------------------------------------------------------


def _child_sees_change(client: Client, ready: Any, results: Any) -> None:
    """In the child: evaluate (restarting the sync thread), tell the parent, wait for the change."""
    try:
        before = client.feature_flag(FLAG)
        thread = client._thread
        own_thread = thread is not None and thread.is_alive() and thread.ident != threading.main_thread().ident
        ready.send(("ready", before, own_thread))
        wait_until(lambda: client.feature_flag(FLAG) is True, timeout=10, what="the change in the child")
        results.send(("ok", client.source, os.getpid()))
    except BaseException as exc:  # report everything to the parent
        results.send(("error", repr(exc), os.getpid()))


def _run_in_child(flags_server: FlagsServer, client: Client, start: Any) -> None:
    ready_recv, ready_send = multiprocessing.Pipe(duplex=False)
    results_recv, results_send = multiprocessing.Pipe(duplex=False)
    wait_until(lambda: flags_server.stream_connects >= 1, what="the parent's stream")
    join = start(client, ready_send, results_send)
    assert ready_recv.poll(10), "the child did not start"
    state, before, own_thread = ready_recv.recv()
    assert (state, before, own_thread) == ("ready", False, True)
    wait_until(lambda: flags_server.stream_connects >= 2, what="the child's own stream")
    flags_server.set_ruleset(new_checkout_flow=bool_flag(True))
    assert results_recv.poll(15), "the child never answered"
    outcome, source, child_pid = results_recv.recv()
    join()
    assert outcome == "ok", source
    assert source == "stream" and child_pid != os.getpid()
    wait_until(lambda: client.feature_flag(FLAG) is True, what="the parent to see it too")


def test_forked_child_restarts_its_own_sync_thread(flags_server: FlagsServer, clients: Any) -> None:
    client = clients(flags_server.url, SDK_KEY)

    def start(client: Client, ready: Any, results: Any) -> Any:
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                _child_sees_change(client, ready, results)
                code = 0
            finally:
                os._exit(code)

        def join() -> None:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0

        return join

    _run_in_child(flags_server, client, start)


def test_multiprocessing_fork_worker_keeps_the_ruleset_and_syncs(flags_server: FlagsServer, clients: Any) -> None:
    client = clients(flags_server.url, SDK_KEY)

    def start(client: Client, ready: Any, results: Any) -> Any:
        process = multiprocessing.get_context("fork").Process(target=_child_sees_change, args=(client, ready, results))
        process.start()

        def join() -> None:
            process.join(10)
            assert process.exitcode == 0

        return join

    _run_in_child(flags_server, client, start)
