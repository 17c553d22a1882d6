"""The outside signals of ``monitor:``: named Prometheus queries and Alertmanager alerts.

These models sit inside ``MonitorSpec`` (``queries: dict[str, QuerySpec]``, ``alerts: AlertsSpec``).
They import nothing from ``spec.models`` so that module can import them.

A query's threshold is a comparison and a number: ``"> 0.05"``, ``">= 800"``, ``"< 0.99"``. A number
written with ``%`` is a fraction (``"> 5%"`` is ``> 0.05``), so a ratio query can read like the
built-in ``error_rate``. The comparison gives the direction: ``>`` means higher is bad, ``<`` lower.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_STRICT = ConfigDict(extra="forbid", frozen=True)
_COMPARISON = re.compile(r"(?P<op>>=|<=|>|<)\s*(?P<number>-?\d+(?:\.\d+)?)\s*(?P<percent>%?)")
PLACEHOLDERS = ("service", "environment", "version", "previous_version", "interval")
# `{name}` where name is a word: PromQL's own braces hold matchers (`{job="x"}`), never a bare word.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FIXED_LABELS = ("service", "environment")

BadWhen = Literal["higher", "lower"]


def _comparison(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f'{value!r} has no comparison (write e.g. "> {value}" or "< {value}")')
    if isinstance(value, str) and _COMPARISON.fullmatch(value.strip()):
        return value.strip()
    raise ValueError(f'{value!r} is not a threshold (use e.g. "> 0.05", "> 5%", ">= 800" or "< 0.99")')


def placeholders(query: str) -> list[tuple[re.Match[str], str | None]]:
    """Each ``{name}`` in ``query`` with the quote of the PromQL string literal it stands in
    (``"``, ``'`` or a backtick), or None outside any string."""
    found: list[tuple[re.Match[str], str | None]] = []
    quote: str | None = None
    escaped, at = False, 0
    matches = list(_PLACEHOLDER.finditer(query))
    for i, ch in enumerate(query):
        while at < len(matches) and matches[at].start() == i:
            found.append((matches[at], quote))
            at += 1
        if escaped:
            escaped = False
        elif quote in ('"', "'") and ch == "\\":
            escaped = True
        elif quote is None and ch in "\"'`":
            quote = ch
        elif ch == quote:
            quote = None
    return found


def _query(value: str) -> str:
    unknown = sorted({name for name in _PLACEHOLDER.findall(value) if name not in PLACEHOLDERS})
    if unknown:
        raise ValueError(
            f"unknown placeholder {', '.join('{' + name + '}' for name in unknown)} in the query "
            f"(use {', '.join('{' + name + '}' for name in PLACEHOLDERS)})"
        )
    for match, quote in placeholders(value):
        name = match.group(1)
        if name == "interval" and quote is not None:
            raise ValueError("{interval} is a duration: write it outside quotes, e.g. rate(x[{interval}])")
        if name != "interval" and quote not in ('"', "'"):
            raise ValueError(
                f"{{{name}}} is a label value: write it inside a quoted string, e.g. "
                f'{{service="{{service}}"}}, so that Conveyor can escape it'
            )
    return value


QueryThreshold = Annotated[str, BeforeValidator(_comparison)]
PromQL = Annotated[str, Field(min_length=1), AfterValidator(_query)]


class QuerySpec(BaseModel):
    """One named PromQL instant query, run every ``interval`` against the configured Prometheus.

    The query must return one number (a scalar, or a vector with one series); ``threshold`` decides
    when that number is a breach. ``bad_when`` may be written to make the direction explicit; it must
    agree with the comparison.
    """

    model_config = _STRICT
    query: PromQL
    threshold: QueryThreshold
    unit: str = ""
    bad_when: BadWhen | None = None

    @model_validator(mode="after")
    def _direction_agrees(self) -> QuerySpec:
        if self.bad_when is not None and self.bad_when != self.direction:
            raise ValueError(
                f"bad_when: {self.bad_when} contradicts threshold {self.threshold!r} "
                f"(a value {self.operator} {self.limit:g} is a breach, so bad_when is {self.direction}); "
                "change one of them"
            )
        return self

    @property
    def operator(self) -> str:
        return self._parts()[0]

    @property
    def limit(self) -> float:
        """The threshold as a number (a ``%`` threshold divided by 100)."""
        return self._parts()[1]

    @property
    def direction(self) -> BadWhen:
        return "higher" if self.operator.startswith(">") else "lower"

    def breached(self, value: float) -> bool:
        op, limit = self._parts()
        return {">": value > limit, ">=": value >= limit, "<": value < limit, "<=": value <= limit}[op]

    def _parts(self) -> tuple[str, float]:
        match = _COMPARISON.fullmatch(self.threshold)
        assert match is not None  # the validator let only comparisons through
        number = float(match["number"])
        return match["op"], number / 100 if match["percent"] else number


def _matchers(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not _LABEL_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a Prometheus label name (letters, digits and _, not first a digit)")
        if name in FIXED_LABELS:
            raise ValueError(
                f"match: {name!r} is always the deployment's own {name}; remove it "
                "(an alert counts only when its labels service and environment name this deployment)"
            )
    return value


class AlertsSpec(BaseModel):
    """Alertmanager alerts received at ``POST /api/v1/alerts/alertmanager`` that count as a breach.

    An alert counts when it began firing during the window, its labels ``service`` and
    ``environment`` name the deployment's service and environment, and every label in ``match`` has
    that value.
    """

    model_config = _STRICT
    alertmanager: bool = True
    match: Annotated[dict[str, str], AfterValidator(_matchers)] = {}
