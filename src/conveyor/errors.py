"""Conveyor's errors: one base class and a few kinds.

Expected outcomes (a gate that does not pass, a step that fails) are values, not exceptions.
Exceptions are for bad input and broken invariants. Every message names the bad value and,
where there is one, the fix. Each class carries its HTTP status (``http_status``, answered by
``api/errors.py`` and the dashboard) and its CLI exit code (``exit_code``, used by ``cli/output.py``),
so a new kind of error is mapped in one place: its class. The CLI contract: 0 success, 1 refused or
failed, 2 usage errors (found by the argument parser, never raised as a ConveyorError).
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class. ``message`` says what is wrong; ``fix`` says what to do about it."""

    kind = "error"
    http_status = 500
    exit_code = 1

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
    http_status = 400


class NotFound(ConveyorError):
    """A named thing (service, environment, deployment, user) does not exist."""

    kind = "not_found"
    http_status = 404


class Unauthorized(ConveyorError):
    """No credentials, or credentials that do not check out."""

    kind = "unauthorized"
    http_status = 401


class Forbidden(ConveyorError):
    """The caller is known but not allowed to do this."""

    kind = "forbidden"
    http_status = 403


class Conflict(ConveyorError):
    """The request clashes with the current state (already finished, already exists)."""

    kind = "conflict"
    http_status = 409
