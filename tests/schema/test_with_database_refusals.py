"""rollback --with-database needs a maintenance mode to stop traffic while the database goes back."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.engine.rollbacks import check_with_database
from conveyor.errors import InvalidInput
from conveyor.spec import parse_spec

CONFIG = """\
service: shop
environments:
  production:
    target: {kind: command, deploy: ./deploy.sh}
    migrate: {run: ./migrate.sh, down: ./down.sh}
"""


def test_a_command_target_is_refused_before_anything_is_recorded() -> None:
    spec = parse_spec(CONFIG)
    env = spec.environment("production")
    nothing: Any = None  # the refusal comes before the runtime, the service or the release are looked at
    with pytest.raises(InvalidInput) as refused:
        check_with_database(nothing, nothing, "production", env, nothing)
    assert "'command' target, which has no maintenance mode" in str(refused.value)
    assert "local target" in (refused.value.fix or "")
