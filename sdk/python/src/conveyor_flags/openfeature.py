"""OpenFeature provider: evaluates locally with a ``conveyor_flags.Client``.

    from openfeature import api
    from conveyor_flags.openfeature import ConveyorProvider

    api.set_provider(ConveyorProvider(url="http://conveyor:8000", sdk_key="..."))
    client = api.get_client()
    client.get_boolean_value("new_checkout_flow", False, EvaluationContext("user-42", {"country": "SE"}))

Needs ``openfeature-sdk`` (``pip install 'conveyor-flags[openfeature]'``); the core package does not
import this module. The evaluation context's targeting key is the ``user_id`` attribute unless the
attributes carry their own ``user_id``. Reasons and error codes are OpenFeature's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from conveyor_flags.client import Client
from conveyor_flags.default import default_client
from conveyor_flags.evaluate import GENERAL, TYPE_MISMATCH, Evaluation, Ruleset

__all__ = ["ConveyorProvider"]

T = TypeVar("T")
ObjectValue = Sequence[FlagValueType] | Mapping[str, FlagValueType]


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))


def _is_float(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _is_object(value: Any) -> bool:
    return isinstance(value, dict | list)


class ConveyorProvider(AbstractProvider):
    """An OpenFeature provider backed by a Conveyor flags ``Client`` (local evaluation).

    Pass a ``client``, or ``url``/``sdk_key``/options to create one (closed on ``shutdown``), or
    nothing to use the default client (CONVEYOR_FLAGS_URL / CONVEYOR_FLAGS_KEY).
    """

    def __init__(
        self, client: Client | None = None, *, url: str | None = None, sdk_key: str | None = None, **options: Any
    ) -> None:
        super().__init__()
        self._owned = client is None and (url is not None or sdk_key is not None or bool(options))
        if client is not None:
            self._client = client
        elif self._owned:
            self._client = Client(url, sdk_key, **options)
        else:
            self._client = default_client()
        self._client.on_change(self._changed)

    @property
    def client(self) -> Client:
        return self._client

    def get_metadata(self) -> Metadata:
        return Metadata(name="conveyor")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        self._client.wait_until_ready(5.0)

    def shutdown(self) -> None:
        if self._owned:
            self._client.close()

    def _changed(self, ruleset: Ruleset) -> None:
        self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=ruleset.keys()))

    # ---- resolution ----------------------------------------------------------------------------

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, _is_bool, bool)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, _is_str, str)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, _is_int, int)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, _is_float, float)

    def resolve_object_details(
        self, flag_key: str, default_value: ObjectValue, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[ObjectValue]:
        return self._resolve(flag_key, default_value, evaluation_context, _is_object, _identity)

    def _resolve(
        self,
        flag_key: str,
        default_value: T,
        evaluation_context: EvaluationContext | None,
        accepts: Callable[[Any], bool],
        convert: Callable[[Any], T],
    ) -> FlagResolutionDetails[T]:
        try:
            # default=None: the requested OpenFeature type is checked here, not from the default
            result: Evaluation = self._client.evaluate(flag_key, _context(evaluation_context), None)
            if result.error_code is not None:
                return _error(default_value, result.error_code, result.error_message)
            if not accepts(result.value):
                message = f"flag {flag_key!r} served {result.value!r}, not the requested type"
                return _error(default_value, TYPE_MISMATCH, message)
            return FlagResolutionDetails(
                value=convert(result.value), reason=Reason(result.reason), variant=result.variant
            )
        except Exception as exc:
            return _error(default_value, GENERAL, f"{type(exc).__name__}: {exc}")


def _identity(value: Any) -> Any:
    return value


def _context(evaluation_context: EvaluationContext | None) -> dict[str, Any]:
    if evaluation_context is None:
        return {}
    context = dict(evaluation_context.attributes)
    if evaluation_context.targeting_key and "user_id" not in context:
        context["user_id"] = evaluation_context.targeting_key
    return context


def _error(default_value: T, code: str, message: str | None) -> FlagResolutionDetails[T]:
    try:
        error_code = ErrorCode(code)
    except ValueError:
        error_code = ErrorCode.GENERAL
    return FlagResolutionDetails(value=default_value, reason=Reason.ERROR, error_code=error_code, error_message=message)
