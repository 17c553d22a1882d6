"""Failure summaries: the one line of a failed command's output that says what went wrong.

A failed step is summarised by one line in its message (``exited with code 1: <line>``). The last
line of the output is often useless (a caret under a SQL statement, ``Node.js v20``, a link to the
docs), so the line is found by the shapes errors take, tried in order of how sure they are:

1. a Python traceback: the exception line that ends the last traceback (chained exceptions end
   with the one that propagated);
2. a Node error with its stack: ``Error: ...`` followed by ``    at ...`` lines;
3. a tool's own error line: pytest's ``FAILED tests/...``, Django's and Alembic's ``CommandError:``
   and ``FAILED:``, ``npm error``/``npm ERR!``, ``curl: (22) ...``, the shell's ``sh: 1: cd: ...``,
   ``command not found``, ``No such file or directory``, ``Permission denied``;
4. summary lines: pytest's ``E   assert ...`` and ``= 1 failed ... =``, make's
   ``make: *** [...] Error 1``, and lines that start with ``error``, ``fatal`` or ``SomeError:``;
5. else the last meaningful line (one with a letter or digit: never a bare ``^``, ``~~~`` or ``}``).

Within a shape, the first matching line wins. Pure: text in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

MAX_LINE = 300  # a summary line longer than this is cut, with an ellipsis

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TRACEBACK = re.compile(r"Traceback \(most recent call last\):\s*$")
_FRAME = re.compile(r'^  File "')
_NODE_ERROR = re.compile(r"^(?:Uncaught )?[A-Z]\w*(?:Error|Exception)(?: \[\w+\])?: \S")
_NODE_FRAME = re.compile(r"^\s+at \S")
_MEANINGFUL = re.compile(r"[A-Za-z0-9]")

_TOOL_LINES = (
    re.compile(r"^(?:FAILED|ERROR) \S+\.py(?:::\S+)?"),  # pytest's short summary
    re.compile(r"^(?:[\w.]+\.)?CommandError: \S"),  # Django, Alembic
    re.compile(r"^FAILED: \S"),  # Alembic's command line
    re.compile(r"^npm (?:ERR!|error) +(?!code \S+$)\S"),  # npm 6-11 (the bare exit code says nothing)
    re.compile(r"^curl: \(\d+\) "),
    re.compile(r"^(?:/bin/|/usr/bin/)?(?:sh|bash|dash|zsh|ksh)(?:: line \d+|: \d+)?: \S"),  # the shell itself
    re.compile(r": (?:command )?not found$"),
    re.compile(r"No such file or directory|Permission denied"),
)
_SUMMARY_LINES = (
    re.compile(r"^E {2,}\S"),  # pytest's assertion detail
    re.compile(r"^=+ .*\b\d+ (?:failed|errors?)\b"),  # pytest's last line
    re.compile(r"^make(?:\[\d+\])?: \*\*\* "),
    re.compile(r"^(?:error|fatal|Error|Fatal)(?:\[[\w-]+\])?\s*[:!]"),  # git, rustc, many CLIs
    re.compile(r"^(?:ERROR|FATAL)\b"),
    re.compile(r"^(?:[\w.]+\.)?[A-Z]\w*(?:Error|Exception): \S"),
)


def clean_lines(output: str) -> list[str]:
    """The output's lines without colour codes, each as the terminal last showed it (after a ``\\r``)."""
    lines = []
    for raw in _ANSI.sub("", output).split("\n"):
        lines.append(raw.rstrip("\r").rsplit("\r", 1)[-1].rstrip())
    return lines


def _python_exception(lines: Sequence[str]) -> int | None:
    """The exception line that ends the last Python traceback (or the last frame, when the
    traceback's head was cut off the tail)."""
    start = None
    for i, line in enumerate(lines):
        if _TRACEBACK.search(line) or _FRAME.match(line):
            start = i
    if start is None:
        return None
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line.strip() and not line[0].isspace():
            return i
    return None


def _node_error(lines: Sequence[str]) -> int | None:
    for i, line in enumerate(lines[:-1]):
        if _NODE_ERROR.match(line) and _NODE_FRAME.match(lines[i + 1]):
            return i
    return None


def _first_of(patterns: Sequence[re.Pattern[str]]) -> Callable[[Sequence[str]], int | None]:
    def find(lines: Sequence[str]) -> int | None:
        for i, line in enumerate(lines):
            stripped = line.strip()
            if any(p.search(stripped) for p in patterns):
                return i
        return None

    return find


def _last_meaningful(lines: Sequence[str]) -> int | None:
    for i in range(len(lines) - 1, -1, -1):
        if _MEANINGFUL.search(lines[i]):
            return i
    return None


_FINDERS: tuple[Callable[[Sequence[str]], int | None], ...] = (
    _python_exception,
    _node_error,
    _first_of(_TOOL_LINES),
    _first_of(_SUMMARY_LINES),
    _last_meaningful,
)


def error_line(output: str) -> str:
    """The line of ``output`` that says what went wrong; ``(no output)`` when there is none."""
    lines = clean_lines(output)
    for find in _FINDERS:
        index = find(lines)
        if index is not None:
            line = lines[index].strip()
            return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"
    return "(no output)"


def failure_summary(what: str, exit_code: int | None, output: str, logs_hint: str = "") -> str:
    """``<what> exited with code N: <error line>``, and where to read the rest when ``logs_hint`` says."""
    summary = f"{what} exited with code {exit_code}: {error_line(output)}"
    return f"{summary} ({logs_hint})" if logs_hint else summary
