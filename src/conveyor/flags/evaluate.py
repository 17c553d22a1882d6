"""The flag evaluator. It lives in the ``conveyor-flags`` SDK package (sdk/python) and is re-exported
here, so the server's OFREP answers and the SDKs' local evaluation come from the same code."""

from __future__ import annotations

from conveyor_flags.evaluate import Evaluation, Ruleset, RulesetError, compile_ruleset

__all__ = ["Evaluation", "Ruleset", "RulesetError", "compile_ruleset"]
