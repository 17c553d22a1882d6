"""Durable step processes: a command that runs once even if the server dies while it runs.

A step's command runs under a small detached shell (its own session, so it outlives the server)
that records its pid first and its exit code last, in a run directory. When the server comes back
and runs the step again, it attaches to the process that is still running, or reads the exit code
it left, instead of starting the command a second time.

Files in the run directory: ``intent`` (written before the spawn), ``pid`` (pid and start time, by
the wrapper), ``output.log`` (stdout and stderr), ``rc`` (exit code, by the wrapper), and
``verdict`` (written by Conveyor when it stops the process itself: timeout or cancel).

The wrapper writes ``pid`` and ``rc`` with one shell ``echo`` each: one write of a few bytes, so a
reader finds such a file either empty (just opened) or whole. An empty one counts as not written
yet (``_written``); the wrapper needs no ``mv`` processes to make them appear at once.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from conveyor.agent.procs import start_time

POLL_SECONDS = 0.05
SPAWN_GRACE_SECONDS = 5.0
WAIT_SLICE_SECONDS = 0.25  # how often a waiting step looks for a cancel request
KILL_GRACE_SECONDS = 5.0

_WRAPPER = (
    'read -r stat < /proc/$$/stat; set -- $stat; echo "$$ ${{22}}" > pid; '
    "(cd {cwd} && exec sh -c {command}) >> output.log 2>&1; "
    "echo $? > rc"
)


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # None when Conveyor stopped it
    output: str  # the tail of the output
    verdict: str | None = None  # "timeout" or "cancelled" when Conveyor stopped it
    attached: bool = False  # True when it found the process from an earlier server run

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.verdict is None


class InterruptedRun(Exception):
    """The wrapper died without leaving an exit code (the host restarted under it)."""


def _written(path: Path) -> str | None:
    """The text of a file the wrapper writes in one go (``pid``, ``rc``); None while it is
    missing or still empty."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return text if text.strip() else None


def ended(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` has ended: an exit code from the wrapper, or Conveyor's verdict."""
    return _written(run_dir / "rc") is not None or (run_dir / "verdict").exists()


def read_tail(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", "replace")
    if size > limit and "\n" in text:
        text = text.split("\n", 1)[1]
    return text


def _alive(pid_file: Path) -> int | None:
    """The wrapper's pid when it is still running (and is the same process, not a reused pid)."""
    try:
        pid_text, start = (_written(pid_file) or "").split()
    except ValueError:
        return None
    pid = int(pid_text)
    return pid if start_time(pid) == start else None


def _stop(pid: int) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it after a grace period."""
    start = start_time(pid)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while time.monotonic() < deadline and start_time(pid) == start:
        time.sleep(POLL_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def run_durable(
    run_dir: Path,
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    should_cancel: Callable[[], bool] = lambda: False,
    tail_bytes: int = 16_384,
    rerun_interrupted: bool = False,
) -> ProcessResult:
    """Run ``command`` once in ``run_dir``'s name, or pick up the run already made there."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rc_file, pid_file, intent = run_dir / "rc", run_dir / "pid", run_dir / "intent"
    verdict_file, log = run_dir / "verdict", run_dir / "output.log"
    attached = intent.exists()
    if attached and not ended(run_dir):
        deadline = time.monotonic() + SPAWN_GRACE_SECONDS
        while _written(pid_file) is None and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if _alive(pid_file) is None and _written(rc_file) is None:
            if not rerun_interrupted:
                raise InterruptedRun(
                    f"the command {command!r} was interrupted before it reported an exit code; "
                    "it is not run again so that its effect cannot happen twice"
                )
            for stale in (intent, pid_file, log):
                stale.unlink(missing_ok=True)
            attached = False
    proc: subprocess.Popen[bytes] | None = None
    if not attached:
        intent.write_text(command)
        wrapper = _WRAPPER.format(cwd=shlex.quote(str(cwd)), command=shlex.quote(command))
        proc = subprocess.Popen(
            ["sh", "-c", wrapper],
            cwd=run_dir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    started = intent.stat().st_mtime  # a run picked up again keeps its original deadline
    while not ended(run_dir):
        verdict = None
        if should_cancel():
            verdict = "cancelled"
        elif time.time() - started > timeout:
            verdict = "timeout"
        elif _wrapper_gone(proc, pid_file) and _written(rc_file) is None:
            raise InterruptedRun(f"the command {command!r} ended without reporting an exit code")
        if verdict:
            verdict_file.write_text(verdict)
            pid = proc.pid if proc is not None else _alive(pid_file)
            if pid is not None:
                _stop(pid)
            break
        if proc is not None:  # our own child: wake up the moment it exits
            _wait_exit(proc, WAIT_SLICE_SECONDS)
        else:  # a run left by an earlier server: watch its files
            time.sleep(POLL_SECONDS)
    if proc is not None:
        proc.wait()
    output = read_tail(log, tail_bytes)
    if verdict_file.exists():
        return ProcessResult(None, output, verdict_file.read_text().strip(), attached)
    return ProcessResult(int((_written(rc_file) or "1").strip()), output, None, attached)


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait up to ``timeout`` for our child to exit, waking the moment it does. ``Popen.wait`` with
    a timeout sleeps in growing slices (up to 50 ms) between polls, which a step that runs a
    short command paid as delay; a pidfd (Linux 5.3 and later) becomes readable at the exit."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd here: Popen's polling wait
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    proc.poll()


def _wrapper_gone(proc: subprocess.Popen[bytes] | None, pid_file: Path) -> bool:
    """True when the wrapper shell has exited (it writes the exit code before it exits)."""
    if proc is not None:
        return proc.poll() is not None
    if _alive(pid_file) is not None:
        return False
    time.sleep(POLL_SECONDS)  # it may be between its last write and its exit
    return True
