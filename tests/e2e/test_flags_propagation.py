"""Propagation: 20 SDK clients (conveyor_flags.Client) in separate processes see a kill, pushed
over the SSE stream (polling is set to an hour, so it cannot be what delivers it). The benchmark
bench/flags.py reports p50/p99 of the same measurement over many flips."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest
from tests.e2e.gates_world import GateWorld
from tests.e2e.test_flags import new_key

pytestmark = pytest.mark.sqlite_only  # see SQLITE_ONLY_DOC in tests/conftest.py

LISTENER = r"""
import sys, threading, time
from conveyor_flags import Client
url, key, flag = sys.argv[1:4]
flipped = threading.Event()
client = Client(url, key, poll_interval=3600)  # a change must come by the stream, not by polling
client.on_change(lambda *_: None if client.evaluate(flag, {}, True).value else flipped.set())
assert client.wait_until_ready(30), "no ruleset"
assert client.evaluate(flag, {}, False).value is True
print("ready", flush=True)
flipped.wait(30)
print(f"seen {time.time()}" if flipped.is_set() else "missed", flush=True)
"""


def test_twenty_sdk_clients_see_a_kill_at_once(gw: GateWorld) -> None:
    gw.ok_as("eve", "POST", "/flags", json={"key": "checkout"})
    gw.ok_as("rita", "POST", "/flags/checkout/environments/production/on")
    key = new_key(gw, "production")
    url = gw.server.url
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LISTENER, url, key, "checkout"], stdout=subprocess.PIPE, text=True, bufsize=1
        )
        for _ in range(20)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        gw.ok_as("max", "POST", "/flags/checkout/environments/production/kill", json={"reason": "bench"})
        returned = time.time()
        delays = []
        for p in procs:
            out, _ = p.communicate(timeout=10)
            assert out.startswith("seen "), out
            delays.append(max(0.0, float(out.split()[1]) - returned) * 1000)
        delays.sort()
        p50, p99 = statistics.median(delays), delays[-1]
        print(f"\nkill seen by 20 SDK clients: p50 {p50:.1f} ms, p99 {p99:.1f} ms after the API call returned")
        assert p99 < 1000, delays
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
