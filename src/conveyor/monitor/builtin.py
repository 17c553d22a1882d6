"""The built-in signal of the local target: the agent's router counts every request per release
(answered, 5xx, not answered, latency histogram) per second, and answers any interval of it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from conveyor.agent.client import release_window
from conveyor.agent.protocol import ReleaseWindow
from conveyor.domain.monitoring import Window


def read_window(
    home: Path, service: str, environment: str, release_version: str, since: datetime, until: datetime
) -> Window | None:
    """The release's traffic through the environment's router over [since, until) (to the
    second: the seconds that start in it); None when the agent of ``home`` is unreachable or does
    not know the environment. Read an interval once it is past (``until`` at least a second ago):
    then reading it again gives the same Window, so a resumed loop counts nothing twice."""
    answer = read_window_answer(home, service, environment, release_version, since, until)
    return None if answer is None else answer.window()


def read_window_answer(
    home: Path, service: str, environment: str, release_version: str, since: datetime, until: datetime
) -> ReleaseWindow | None:
    """The agent's whole answer: also whether the interval is complete (past, final) and from
    when the agent has counts (``recorded_from``: after an agent restart, earlier is unknown)."""
    return release_window(home, service, environment, release_version, _epoch(since), _epoch(until))


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone: pass an aware datetime (UTC)")
    return moment.timestamp()
