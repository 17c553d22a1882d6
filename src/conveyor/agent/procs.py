"""What /proc says of a process: whether it still runs, and when it started. A process that has exited but is not reaped
yet (a zombie) counts as gone: its parent may reap it late, and the app an instance's shell started
is reaped by PID 1 once the shell has died, which in a container may be late or never (an init that
reaps lazily, or the agent itself as PID 1)."""

from __future__ import annotations

import os


def _stat(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...), or None when
    the process is gone. The command name may hold spaces and parentheses: fields after the last
    ')' are fixed."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def exited(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie waiting for its parent to reap it counts as exited)."""
    fields = _stat(pid)
    return fields is None or fields[0] == b"Z"


def start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks after boot, as /proc gives it), to tell it from a later
    process given the same pid; None when it has exited (a zombie too)."""
    fields = _stat(pid)
    return fields[19].decode() if fields is not None and len(fields) > 19 and fields[0] != b"Z" else None


def group_running(pgid: int) -> bool:
    """Whether a process of the group ``pgid`` still runs (its zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # no /proc: the signal's answer is all there is
        return True
    return any((f := _stat(pid)) is not None and int(f[2]) == pgid and f[0] != b"Z" for pid in pids)
