"""The OpenFeature provider through ``openfeature.api.get_client()`` (skipped without openfeature-sdk)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip(
    "openfeature", reason="openfeature-sdk is not installed (pip install 'conveyor-flags[openfeature]')"
)

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from conveyor_flags import Client, normalized_hash
from conveyor_flags.evaluate import VARIANT_SEED
from conveyor_flags.openfeature import ConveyorProvider
from flags_fakes import SDK_KEY, FlagsServer, bool_flag, make_ruleset, wait_until

VARIANTS = [{"name": "blue", "value": "blue", "weight": 500}, {"name": "green", "value": "green", "weight": 500}]
RULESET = make_ruleset(
    4,
    new_checkout_flow=bool_flag(True),
    checkout_color={"type": "string", "enabled": True, "default": "grey", "variants": VARIANTS, "strategies": []},
    nordic_banner={
        "type": "string",
        "enabled": True,
        "default": "none",
        "on_value": "nordic",
        "strategies": [{"constraints": [{"attribute": "country", "operator": "IN", "values": ["SE", "NO"]}]}],
    },
    max_items={"type": "number", "enabled": True, "default": 10, "on_value": 25, "strategies": []},
    discount={"type": "number", "enabled": True, "default": 0, "on_value": 0.15, "strategies": []},
    limits={"type": "json", "enabled": True, "default": {}, "on_value": {"cart": 50}, "strategies": []},
)


@pytest.fixture
def of_client() -> Iterator[Any]:
    provider = ConveyorProvider(Client(ruleset=RULESET))
    api.set_provider(provider)
    yield api.get_client()
    api.shutdown()


def test_boolean(of_client: Any) -> None:
    details = of_client.get_boolean_details("new_checkout_flow", False)
    assert (details.value, details.reason, details.error_code) == (True, Reason.STATIC, None)
    assert of_client.get_boolean_value("new_checkout_flow", False) is True


def test_string_split_follows_the_targeting_key(of_client: Any) -> None:
    for user in ("u1", "u2", "u3", "u4", "u5"):
        expected = "blue" if normalized_hash(f"checkout_color:{user}", VARIANT_SEED, 1000) <= 500 else "green"
        details = of_client.get_string_details("checkout_color", "grey", EvaluationContext(targeting_key=user))
        assert (details.value, details.variant, details.reason) == (expected, expected, Reason.SPLIT)


def test_targeting_match_on_attributes(of_client: Any) -> None:
    sweden = of_client.get_string_details("nordic_banner", "x", EvaluationContext("u1", {"country": "SE"}))
    assert (sweden.value, sweden.reason) == ("nordic", Reason.TARGETING_MATCH)
    denmark = of_client.get_string_details("nordic_banner", "x", EvaluationContext("u1", {"country": "DK"}))
    assert (denmark.value, denmark.reason) == ("none", Reason.DEFAULT)


def test_flag_not_found(of_client: Any) -> None:
    details = of_client.get_boolean_details("no_such_flag", True)
    assert (details.value, details.reason, details.error_code) == (True, Reason.ERROR, ErrorCode.FLAG_NOT_FOUND)


def test_type_mismatch(of_client: Any) -> None:
    details = of_client.get_boolean_details("checkout_color", False, EvaluationContext("u1"))
    assert (details.value, details.reason, details.error_code) == (False, Reason.ERROR, ErrorCode.TYPE_MISMATCH)
    details = of_client.get_integer_details("discount", 1)
    assert (details.value, details.error_code) == (1, ErrorCode.TYPE_MISMATCH)


def test_numbers_and_objects(of_client: Any) -> None:
    assert of_client.get_integer_value("max_items", 1) == 25
    assert of_client.get_float_value("max_items", 1.0) == 25.0
    assert isinstance(of_client.get_float_value("max_items", 1.0), float)
    assert of_client.get_float_value("discount", 0.0) == 0.15
    assert of_client.get_object_value("limits", {}) == {"cart": 50}


def test_provider_not_ready_without_a_ruleset() -> None:
    provider = ConveyorProvider(Client(None))
    details = provider.resolve_boolean_details("new_checkout_flow", False)
    assert (details.value, details.error_code) == (False, ErrorCode.PROVIDER_NOT_READY)
    assert provider.get_metadata().name == "conveyor"


def test_provider_syncs_from_a_server_and_emits_configuration_changed(flags_server: FlagsServer) -> None:
    seen: list[EventDetails] = []
    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, seen.append)
    try:
        api.set_provider(ConveyorProvider(url=flags_server.url, sdk_key=SDK_KEY))
        client = api.get_client()
        assert client.get_boolean_value("new_checkout_flow", True) is False
        wait_until(lambda: flags_server.stream_connects >= 1, what="the stream")
        flags_server.set_ruleset(new_checkout_flow=bool_flag(True))
        wait_until(lambda: client.get_boolean_value("new_checkout_flow", False) is True, what="the change")
        wait_until(lambda: any("new_checkout_flow" in (e.flags_changed or []) for e in seen), what="the event")
    finally:
        api.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, seen.append)
        api.shutdown()
