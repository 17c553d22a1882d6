"""The typed ``conveyor.yml``: models, and a loader whose every error is ``FILE:LINE:COL: message``."""

from conveyor.spec.durations import format_duration, parse_duration
from conveyor.spec.loader import load_spec, parse_spec
from conveyor.spec.models import CommandSpec, CommandTarget, EnvironmentSpec, LocalTarget, ServiceSpec
from conveyor.spec.problems import Problem, SpecError, format_problems

__all__ = [
    "CommandSpec",
    "CommandTarget",
    "EnvironmentSpec",
    "LocalTarget",
    "Problem",
    "ServiceSpec",
    "SpecError",
    "format_duration",
    "format_problems",
    "load_spec",
    "parse_duration",
    "parse_spec",
]
