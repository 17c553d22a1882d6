"""Conveyor feature flags for Python: local evaluation against a ruleset kept in sync by SSE.

    from conveyor_flags import feature_flag

    if feature_flag("new_checkout_flow", user_id=user.id, country="SE"):
        ...

``configure(url=..., sdk_key=..., bootstrap=...)`` or CONVEYOR_FLAGS_URL / CONVEYOR_FLAGS_KEY set the
default client; ``Client`` is the explicit one; ``evaluate`` is the pure evaluator module (the
server uses it too); ``conveyor_flags.openfeature.ConveyorProvider`` is the OpenFeature provider
(needs the ``openfeature`` extra); ``flag_context(user_id=...)`` sets the context of every check in
a block (one request), like Unleash's context provider.
"""

from conveyor_flags import evaluate
from conveyor_flags._version import __version__
from conveyor_flags.client import Client
from conveyor_flags.context import current_flag_context, flag_context, reset_flag_context, set_flag_context
from conveyor_flags.default import configure, default_client, feature_flag, feature_flag_details
from conveyor_flags.evaluate import Evaluation, Ruleset, RulesetError, compile_ruleset, normalized_hash

__all__ = [
    "Client",
    "Evaluation",
    "Ruleset",
    "RulesetError",
    "__version__",
    "compile_ruleset",
    "configure",
    "current_flag_context",
    "default_client",
    "evaluate",
    "feature_flag",
    "feature_flag_details",
    "flag_context",
    "normalized_hash",
    "reset_flag_context",
    "set_flag_context",
]
