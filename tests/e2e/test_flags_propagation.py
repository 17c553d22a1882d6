"""Propagation over the SSE stream: 20 listeners in separate processes see a kill at once.
(The SDK's own client and the benchmark with p50/p99 build on the same stream.)"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from tests.e2e.gates_world import GateWorld
from tests.e2e.test_flags import new_key

LISTENER = r"""
import json, sys, time, httpx
url, key, flag = sys.argv[1:4]
with httpx.stream("GET", url, headers={"X-API-Key": key}, timeout=httpx.Timeout(60, read=60)) as response:
    event = data = None
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line == "" and event == "ruleset" and data:
            if json.loads(data)["flags"][flag]["enabled"]:
                print("ready", flush=True)
            else:
                print(f"seen {time.time()}", flush=True)
                break
            event = data = None
"""


def test_twenty_listeners_see_a_kill_at_once(gw: GateWorld) -> None:
    gw.ok_as("eve", "POST", "/flags", json={"key": "checkout"})
    gw.ok_as("rita", "POST", "/flags/checkout/environments/production/on")
    key = new_key(gw, "production")
    url = gw.server.url + "/api/v1/flags/stream"
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
        print(f"\nkill seen by 20 listeners: p50 {p50:.1f} ms, p99 {p99:.1f} ms after the API call returned")
        assert p99 < 1000, delays
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
