"""Durable step processes (``run_durable``) with real shells and real process groups: exit codes,
output tails, timeouts and cancels that kill every process of the step, and picking up a run
made by an earlier (killed) server instead of running the command twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.conftest import wait_until

from conveyor.engine.process import KILL_GRACE_SECONDS, InterruptedRun, ProcessResult, run_durable

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GREETING": "hello from env"}


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def run(tmp_path: Path, command: str, **kwargs: object) -> ProcessResult:
    options: dict[str, object] = {"cwd": tmp_path, "env": ENV, "timeout": 30.0, **kwargs}
    return run_durable(tmp_path / "run", command, **options)  # type: ignore[arg-type]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_success_returns_exit_code_zero_and_the_output(tmp_path: Path) -> None:
    result = run(tmp_path, 'echo one; echo two >&2; pwd; echo "$GREETING"')
    assert result.exit_code == 0 and result.ok
    assert result.verdict is None and result.attached is False
    assert result.output == f"one\ntwo\n{tmp_path}\nhello from env\n"  # stderr too, cwd and env applied
    assert (tmp_path / "run" / "rc").read_text().strip() == "0"


def test_a_non_zero_exit_is_reported_not_raised(tmp_path: Path) -> None:
    result = run(tmp_path, "echo about to fail; exit 3")
    assert result.exit_code == 3
    assert not result.ok and result.verdict is None
    assert result.output == "about to fail\n"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    command = "sleep 300 & echo $! > child.pid; echo waiting; wait"
    began = time.monotonic()
    result = run(tmp_path, command, timeout=1.0)
    elapsed = time.monotonic() - began
    assert result.verdict == "timeout" and result.exit_code is None and not result.ok
    assert 1.0 <= elapsed < 1.0 + KILL_GRACE_SECONDS + 3
    assert result.output == "waiting\n"
    child = int((tmp_path / "child.pid").read_text())
    wait_until(lambda: not running(child), timeout=10, what=f"the step's child sleep {child} to be gone")
    wrapper = int((tmp_path / "run" / "pid").read_text().split()[0])
    assert not running(wrapper)
    assert not (tmp_path / "run" / "rc").exists()  # killed: it never reported an exit code


def test_should_cancel_stops_it_with_verdict_cancelled(tmp_path: Path) -> None:
    command = "sleep 300 & echo $! > child.pid; echo started > started; wait; echo never > finished"
    began = time.monotonic()
    result = run(tmp_path, command, should_cancel=lambda: (tmp_path / "started").exists())
    assert result.verdict == "cancelled" and result.exit_code is None and not result.ok
    assert time.monotonic() - began < KILL_GRACE_SECONDS + 5
    child = int((tmp_path / "child.pid").read_text())
    wait_until(lambda: not running(child), timeout=10, what="the cancelled step's child to be gone")
    assert not (tmp_path / "finished").exists()
    assert (tmp_path / "run" / "verdict").read_text().strip() == "cancelled"


def processes_marked(marker: str) -> list[int]:
    """Live processes whose environment carries ``CONVEYOR_TEST_MARK=marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"CONVEYOR_TEST_MARK={marker}".encode() in environ and running(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("stop", ["cancel", "timeout"])
def test_a_stop_decided_at_once_leaves_nothing_running(tmp_path: Path, stop: str) -> None:
    # Decided before the wrapper has even written its pid file: it must still be stopped.
    marker = uuid.uuid4().hex
    options: dict[str, object] = {"env": {**ENV, "CONVEYOR_TEST_MARK": marker}}
    options.update({"should_cancel": lambda: True} if stop == "cancel" else {"timeout": 0.0})
    result = run(tmp_path, "sleep 300 & wait; echo ran > finished", **options)
    assert result.verdict == ("cancelled" if stop == "cancel" else "timeout")
    try:
        wait_until(lambda: not processes_marked(marker), timeout=10, what="every process of the command to be gone")
    finally:  # never leave a sleep behind, whatever happened
        for pid in processes_marked(marker):
            os.kill(pid, signal.SIGKILL)
    assert not (tmp_path / "finished").exists()
    assert not (tmp_path / "run" / "rc").exists()


def test_a_finished_run_is_read_back_not_run_again(tmp_path: Path) -> None:
    command = "echo run >> counter; echo done; exit 4"
    first = run(tmp_path, command)
    assert first.exit_code == 4 and not first.attached
    again = run(tmp_path, command)
    assert again == ProcessResult(4, "done\n", None, attached=True)
    assert lines(tmp_path / "counter") == ["run"]


def test_a_timed_out_run_is_read_back_as_timed_out(tmp_path: Path) -> None:
    command = "echo run >> counter; sleep 300"
    assert run(tmp_path, command, timeout=0.5).verdict == "timeout"
    again = run(tmp_path, command, timeout=30)
    assert again.verdict == "timeout" and again.attached and again.exit_code is None
    assert lines(tmp_path / "counter") == ["run"]


CHILD = """
import sys
from pathlib import Path
from conveyor.engine.process import run_durable
run_durable(Path(sys.argv[1]), sys.argv[2], cwd=Path(sys.argv[3]), env={"PATH": sys.argv[4]}, timeout=120)
raise SystemExit("run_durable returned; the test meant to kill this process first")
"""


def test_a_new_caller_attaches_to_the_process_a_killed_caller_started(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = (
        "echo run >> counter; echo first half; echo started > started; "
        "while [ ! -f release ]; do sleep 0.05; done; echo second half"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run_dir), command, str(tmp_path), ENV["PATH"]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: (tmp_path / "started").exists() or owner.poll() is not None, what="the command to start")
        assert owner.poll() is None, owner.communicate()[0]
    finally:
        owner.kill()  # SIGKILL, like a crashed server: no cleanup runs
        owner.communicate(timeout=10)
    wrapper = int((run_dir / "pid").read_text().split()[0])
    assert running(wrapper), "the step's process should outlive the caller that started it"

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run_durable, run_dir, command, cwd=tmp_path, env=ENV, timeout=120)
        assert running(wrapper) and not future.done()
        (tmp_path / "release").touch()
        result = future.result(timeout=30)
    assert result.attached is True
    assert result.exit_code == 0 and result.ok
    assert result.output == "first half\nsecond half\n"
    assert lines(tmp_path / "counter") == ["run"]  # it ran exactly once


@pytest.mark.parametrize("pid_owner", ["dead process", "reused pid"])
def test_an_interrupted_run_is_not_run_again_unless_asked(tmp_path: Path, pid_owner: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    command = "echo run >> counter; echo fresh"
    if pid_owner == "dead process":
        gone = subprocess.Popen(["true"])
        gone.wait()
        pid_line = f"{gone.pid} 12345"
    else:  # a live process now holds the pid, but it started at another time: not ours
        pid_line = f"{os.getpid()} 1"
    (run_dir / "intent").write_text(command)
    (run_dir / "pid").write_text(pid_line)
    (run_dir / "output.log").write_text("stale output of the interrupted run\n")

    with pytest.raises(InterruptedRun, match="interrupted"):
        run(tmp_path, command)
    assert not (tmp_path / "counter").exists()

    result = run(tmp_path, command, rerun_interrupted=True)
    assert result.exit_code == 0 and not result.attached
    assert result.output == "fresh\n"
    assert lines(tmp_path / "counter") == ["run"]


def test_output_keeps_only_the_tail_from_a_line_start(tmp_path: Path) -> None:
    result = run(tmp_path, "seq -w 0 999 | sed 's/^/line /'", tail_bytes=100)
    assert result.exit_code == 0
    assert len(result.output.encode()) <= 100
    kept = result.output.splitlines()
    assert kept[-1] == "line 999"
    assert kept == [f"line {n:03d}" for n in range(1000 - len(kept), 1000)]  # whole lines only
    assert len(kept) >= 100 // len("line 000\n") - 1
    full = (tmp_path / "run" / "output.log").read_text().splitlines()
    assert len(full) == 1000  # the log itself keeps everything
