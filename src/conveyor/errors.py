"""Conveyor's errors: one base class and a few kinds.

Expected outcomes (a gate that does not pass, a step that fails) are values, not exceptions.
Exceptions are for bad input and broken invariants. Every message names the bad value and,
where there is one, the fix. They are mapped to HTTP statuses in ``api/errors.py`` and to CLI
exit codes in ``cli/output.py``, and nowhere else.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class. ``message`` says what is wrong; ``fix`` says what to do about it."""

    kind = "error"

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.text)

    @property
    def text(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class InvalidInput(ConveyorError):
    """The caller sent something malformed: bad config, bad ref, bad argument."""

    kind = "invalid"


class NotFound(ConveyorError):
    """A named thing (service, environment, deployment, user) does not exist."""

    kind = "not_found"


class Unauthorized(ConveyorError):
    """No credentials, or credentials that do not check out."""

    kind = "unauthorized"


class Forbidden(ConveyorError):
    """The caller is known but not allowed to do this."""

    kind = "forbidden"


class Conflict(ConveyorError):
    """The request clashes with the current state (already finished, already exists)."""

    kind = "conflict"
