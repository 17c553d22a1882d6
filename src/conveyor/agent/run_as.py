"""The user app instances run as (setting ``agent_run_as``): an unprivileged account, so that an
app cannot read the agent's token, the database or anything else of the user Conveyor runs as."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from conveyor.errors import InvalidInput


@dataclass(frozen=True)
class RunAs:
    user: str
    uid: int
    gid: int
    home: str

    def popen_args(self) -> dict[str, object]:
        """Arguments for ``subprocess.Popen``: switch user, group and supplementary groups."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def resolve_run_as(user: str | None, euid: int | None = None) -> RunAs | None:
    """The account to run instances as, or None to run them as the agent's own user.

    Refuses a user that does not exist, root itself, and a user the agent cannot switch to
    (switching needs the agent to run as root)."""
    if not user:
        return None
    euid = os.geteuid() if euid is None else euid
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise InvalidInput(
            f"agent_run_as names the user {user!r}, which does not exist on this host",
            fix="create it (useradd --system conveyor-app) or unset CONVEYOR_AGENT_RUN_AS",
        ) from None
    if entry.pw_uid == 0:
        raise InvalidInput(f"agent_run_as {user!r} is root", fix="name an unprivileged user")
    if euid == entry.pw_uid:
        return None  # the agent already runs as that user
    if euid != 0:
        raise InvalidInput(
            f"agent_run_as {user!r} needs the agent to run as root to switch users; it runs as uid {euid}",
            fix="start the agent as root, or unset CONVEYOR_AGENT_RUN_AS",
        )
    return RunAs(user, entry.pw_uid, entry.pw_gid, entry.pw_dir)
