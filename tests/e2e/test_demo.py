"""The demo as the README starts it (`make demo PORT=N`, the command make runs for it) in a temp
dir: the server comes up on that port with development and staging deployed and answering, and
SIGTERM stops the server and the apps."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]


def free_block(size: int = 4) -> int:
    """Consecutive free ports below the kernel's ephemeral range (32768 and up on Linux), so the
    agent's own port, which the kernel picks, can never land in the demo's block."""
    for base in range(20000 + os.getpid() % 1200 * 10, 32760, 10):
        socks = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free block of ports")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def readme_demo_command(port: int) -> list[str]:
    """The README's own `make demo PORT=N` line (among its first lines), with a free port for N, as
    the command that make runs for it."""
    head = (REPO / "README.md").read_text().splitlines()[:12]
    line = next((text for text in head if re.match(r"make demo PORT=\d+ ", text)), None)
    assert line, "the README's first lines show no `make demo PORT=N`"
    words = [f"PORT={port}" if w.startswith("PORT=") else w for w in shlex.split(line.split("#")[0])]
    dry = subprocess.run([*words, "-n", "-s"], cwd=REPO, capture_output=True, text=True, check=True)
    recipe = shlex.split(dry.stdout.strip().splitlines()[-1])
    assert recipe[0].endswith("/conveyor") and recipe[1] == "demo", dry.stdout
    return [sys.executable, "-m", "conveyor", *recipe[1:]]


def test_demo_brings_up_the_server_with_two_environments_deployed(tmp_path: Path) -> None:
    base = free_block()
    out = tmp_path / "demo.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    command = readme_demo_command(base)
    assert command[-2:] == ["--port", str(base)], command
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [*command, "--workspace", str(tmp_path / "ws")],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "Conveyor demo is up" in out.read_text() or proc.poll() is not None,
            timeout=120,
            what="the demo to come up",
        )
        text = out.read_text()
        assert proc.poll() is None, text
        token = re.search(r"CONVEYOR_TOKEN=(\S+)", text)
        assert token, text
        status = httpx.get(
            f"http://127.0.0.1:{base}/api/v1/status", headers={"Authorization": f"Bearer {token.group(1)}"}
        ).json()
        current = {s["environment"]: s["current"] for s in status}
        assert current["development"] and current["staging"]
        assert current["production"]["version"] == "v0.1.0"
        dev = httpx.get(f"http://127.0.0.1:{base + 1}/version").json()
        staging = httpx.get(f"http://127.0.0.1:{base + 2}/version").json()
        production = httpx.get(f"http://127.0.0.1:{base + 3}/version").json()
        assert dev["env"] == "development" and staging["env"] == "staging"
        assert production["version"] == "v0.1.0"
        assert dev["sha"] == current["development"]["sha"] and staging["sha"] == current["staging"]["sha"]
        assert f"http://127.0.0.1:{base + 1}" in text and "conveyor deploy production" in text
        assert f"Dashboard:      http://127.0.0.1:{base}/" in text
        # the demo app's checkout page follows the flag through the SDK: on in development, off in production
        wait_until(
            lambda: "New checkout flow" in httpx.get(f"http://127.0.0.1:{base + 1}/checkout?user=alice").text,
            timeout=30,
            what="the flag to reach the development instance",
        )
        assert "Classic checkout" in httpx.get(f"http://127.0.0.1:{base + 3}/checkout?user=alice").text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    for port in (base + 1, base + 2, base + 3):
        wait_until(lambda p=port: not answers(f"http://127.0.0.1:{p}/healthz"), timeout=30, what="apps to stop")
    assert not answers(f"http://127.0.0.1:{base}/api/v1/health")
