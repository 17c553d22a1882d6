"""The flag evaluator: a ruleset (docs/flags-ruleset.md) compiled into per-flag closures.

Pure: standard library and ``mmh3``; no I/O, no logging, no clock. The server's OFREP endpoint and
the SDK import this same module, so both always give the same answer.

    ruleset = compile_ruleset(json.loads(text))
    result = ruleset.evaluate("new_checkout_flow", {"user_id": "42"}, False)
    result.value, result.variant, result.reason, result.error_code

Compilation does the work once: every answer that does not depend on a hash (disabled, default,
a strategy's value, each variant) is a prebuilt, immutable ``Evaluation``; evaluating a flag is a
dict lookup, the constraint predicates and at most two murmur3 hashes. A flag whose definition is
malformed evaluates to an error (``PARSE_ERROR`` or ``TYPE_MISMATCH``) without spoiling the others.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import mmh3

from conveyor_flags.constraints import ConstraintError, Context, Predicate, as_number, as_text, compile_constraint

__all__ = [
    "ERROR_CODES",
    "FLAG_NOT_FOUND",
    "GENERAL",
    "PARSE_ERROR",
    "PROVIDER_NOT_READY",
    "REASONS",
    "TYPE_MISMATCH",
    "VARIANT_SEED",
    "Evaluation",
    "Ruleset",
    "RulesetError",
    "compile_ruleset",
    "normalized_hash",
]

# Reasons and error codes, spelled as OFREP / OpenFeature spell them.
STATIC, TARGETING_MATCH, SPLIT, DISABLED, DEFAULT, ERROR = (
    "STATIC",
    "TARGETING_MATCH",
    "SPLIT",
    "DISABLED",
    "DEFAULT",
    "ERROR",
)
REASONS = frozenset({STATIC, TARGETING_MATCH, SPLIT, DISABLED, DEFAULT, ERROR})
FLAG_NOT_FOUND, TYPE_MISMATCH, PARSE_ERROR, GENERAL = "FLAG_NOT_FOUND", "TYPE_MISMATCH", "PARSE_ERROR", "GENERAL"
PROVIDER_NOT_READY = "PROVIDER_NOT_READY"  # used by the client before any ruleset has arrived
ERROR_CODES = frozenset({FLAG_NOT_FOUND, TYPE_MISMATCH, PARSE_ERROR, GENERAL, PROVIDER_NOT_READY})

VARIANT_SEED = 86028157  # Unleash's seed for variant hashing
FLAG_TYPES = ("boolean", "string", "number", "json")


def normalized_hash(text: str, seed: int = 0, modulus: int = 100) -> int:
    """Unleash's normalized hash: ``murmur3_x86_32(text, seed) % modulus + 1`` (1..modulus).

    ``text`` is ``f"{group_id}:{stickiness_value}"``; seed 0 for rollout, ``VARIANT_SEED`` for
    variants (with the total weight as modulus).
    """
    return mmh3.hash(text, seed, False) % modulus + 1


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One answer. ``reason`` is an OFREP reason; ``error_code`` is set only when reason is ERROR,
    and then ``value`` is the caller's default. Instances may be shared: treat them as read-only."""

    value: Any
    variant: str | None
    reason: str
    error_code: str | None = None
    error_message: str | None = None


class RulesetError(ValueError):
    """The ruleset document as a whole is unusable (not an object, or ``flags`` not an object)."""


# A compiled flag: (context, caller default) -> Evaluation
FlagFn = Callable[[Context, Any], Evaluation]
_EMPTY: Context = {}
_TYPE_OK: dict[str, Callable[[Any], bool]] = {
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "json": lambda v: isinstance(v, dict | list),
}
_EXACT_TYPES: dict[str, frozenset[type]] = {
    "boolean": frozenset({bool}),
    "string": frozenset({str}),
    "number": frozenset({int, float}),
    "json": frozenset({dict, list}),
}
_MISSING_DEFAULT: dict[str, Any] = {"boolean": False, "string": "", "number": 0, "json": {}}


class _Flag:
    __slots__ = ("dependent", "exact_types", "fn", "key", "type", "type_ok")

    def __init__(self, key: str, flag_type: str, fn: FlagFn, dependent: bool = False) -> None:
        self.key = key
        self.type = flag_type
        self.fn = fn
        self.dependent = dependent  # has parents: Unleash allows one level, so it cannot be a parent
        self.exact_types = _EXACT_TYPES.get(flag_type, frozenset())
        self.type_ok = _TYPE_OK.get(flag_type, lambda v: True)


class Ruleset:
    """A compiled ruleset: evaluate flags by key. Immutable; safe to share between threads."""

    __slots__ = ("_flags", "environment", "version")

    def __init__(self, environment: str, version: int, flags: dict[str, _Flag]) -> None:
        self.environment = environment
        self.version = version
        self._flags = flags

    def __contains__(self, key: object) -> bool:
        return key in self._flags

    def __len__(self) -> int:
        return len(self._flags)

    def keys(self) -> list[str]:
        return sorted(self._flags)

    def flag_type(self, key: str) -> str | None:
        """The declared type of a flag (boolean, string, number, json), or None if unknown."""
        flag = self._flags.get(key)
        return None if flag is None else flag.type

    def evaluate(self, key: str, context: Context | None = None, default: Any = None) -> Evaluation:
        """Evaluate flag ``key`` for ``context``. Never raises for any ruleset content.

        ``default`` is returned with reason ERROR when the flag is unknown (FLAG_NOT_FOUND) or
        broken (PARSE_ERROR, TYPE_MISMATCH). When ``default`` is not None its type is the type the
        caller expects: a flag of another type answers ERROR/TYPE_MISMATCH (pass None to skip).
        """
        flag = self._flags.get(key)
        if flag is None:
            return Evaluation(default, None, ERROR, FLAG_NOT_FOUND, f"flag {key!r} is not in the ruleset")
        if default is not None and type(default) not in flag.exact_types and not flag.type_ok(default):
            return Evaluation(
                default,
                None,
                ERROR,
                TYPE_MISMATCH,
                f"flag {key!r} is a {flag.type} flag; the default {default!r} is a {type(default).__name__}",
            )
        return flag.fn(_EMPTY if context is None else context, default)


def compile_ruleset(document: Mapping[str, Any]) -> Ruleset:
    """Compile a ruleset document. Raises RulesetError only if the document's shape is wrong;
    a malformed flag compiles to one that answers PARSE_ERROR / TYPE_MISMATCH."""
    if not isinstance(document, Mapping):
        raise RulesetError(f"a ruleset must be a JSON object, got {type(document).__name__}")
    raw_flags = document.get("flags", {})
    if not isinstance(raw_flags, Mapping):
        raise RulesetError(f"ruleset 'flags' must be an object keyed by flag key, got {type(raw_flags).__name__}")
    version = document.get("version", 0)
    segments = _compile_segments(document.get("segments"))
    flags = {str(key): _compile_flag(str(key), raw, segments) for key, raw in raw_flags.items()}
    for key, raw in raw_flags.items():
        if isinstance(raw, Mapping) and raw.get("dependencies"):
            flags[str(key)] = _with_dependencies(flags[str(key)], raw, flags)
    return Ruleset(str(document.get("environment", "")), version if isinstance(version, int) else 0, flags)


# Segments: shared constraint lists by id; a malformed one is the error a strategy using it reports.
Segments = Mapping[str, list[Predicate] | ConstraintError]


def _compile_segments(raw: Any) -> Segments:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise RulesetError(f"ruleset 'segments' must be an object keyed by segment id, got {type(raw).__name__}")
    segments: dict[str, list[Predicate] | ConstraintError] = {}
    for segment_id, segment in raw.items():
        try:
            if not isinstance(segment, Mapping):
                raise ConstraintError(f"segment {segment_id!r} must be an object, got {segment!r}")
            segments[str(segment_id)] = [compile_constraint(c) for c in segment.get("constraints") or []]
        except ConstraintError as exc:
            segments[str(segment_id)] = ConstraintError(f"segment {segment_id!r}: {exc}")
    return segments


def _never(context: Context) -> bool:
    return False


ON_REASONS = frozenset({STATIC, TARGETING_MATCH, SPLIT})


def _with_dependencies(flag: _Flag, raw: Mapping[str, Any], flags: Mapping[str, _Flag]) -> _Flag:
    """Unleash's dependent flags: every parent must be on (or off, for ``enabled: false``), and on
    with one of ``variants`` when given. A missing parent, or a parent that has parents itself,
    turns the child off. Parents are evaluated with the child's context."""
    if isinstance(flag.fn, _ErrorFn):  # broken already: its error is the answer
        return flag
    try:
        deps = []
        for dep in raw["dependencies"]:
            parent = dep["flag"]
            variants = dep.get("variants") or []
            if not isinstance(parent, str) or not isinstance(variants, list):
                raise ConstraintError(f"a dependency needs a flag key and a list of variants, got {dep!r}")
            deps.append((parent, bool(dep.get("enabled", True)), frozenset(str(v) for v in variants)))
    except (ConstraintError, TypeError, KeyError, AttributeError) as exc:
        return _Flag(flag.key, flag.type, _error_fn(PARSE_ERROR, f"flag {flag.key!r} dependencies: {exc}"), True)
    inner = flag.fn
    default = raw.get("default", _MISSING_DEFAULT.get(flag.type))
    off = Evaluation(copy.deepcopy(default), None, DISABLED)

    def dependent(context: Context, caller_default: Any) -> Evaluation:
        for parent_key, want_on, variants in deps:
            parent = flags.get(parent_key)
            if parent is None or parent.dependent:
                return off
            result = parent.fn(context, None)
            is_on = result.reason in ON_REASONS
            if is_on is not want_on or (is_on and variants and (result.variant or "disabled") not in variants):
                return off
        return inner(context, caller_default)

    return _Flag(flag.key, flag.type, dependent, True)


class _ErrorFn:
    """A broken flag: every evaluation answers ERROR with the caller's default."""

    __slots__ = ("code", "message")

    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message

    def __call__(self, context: Context, default: Any) -> Evaluation:
        return Evaluation(default, None, ERROR, self.code, self.message)


def _error_fn(code: str, message: str) -> FlagFn:
    return _ErrorFn(code, message)


def _compile_flag(key: str, raw: Any, segments: Segments) -> _Flag:
    flag_type = raw.get("type", "boolean") if isinstance(raw, Mapping) else "boolean"
    if flag_type not in FLAG_TYPES:
        msg = f"flag {key!r} has unknown type {flag_type!r}; expected one of {', '.join(FLAG_TYPES)}"
        return _Flag(key, str(flag_type), _error_fn(PARSE_ERROR, msg))
    try:
        fn = _build_flag(key, flag_type, raw, segments)
    except _TypeMismatch as exc:
        return _Flag(key, flag_type, _error_fn(TYPE_MISMATCH, str(exc)))
    except (ConstraintError, TypeError, ValueError, KeyError, AttributeError) as exc:
        return _Flag(key, flag_type, _error_fn(PARSE_ERROR, f"flag {key!r}: {exc}"))
    if flag_type == "json":
        fn = _copying(fn)
    return _Flag(key, flag_type, fn)


class _TypeMismatch(ValueError):
    pass


def _checked(key: str, flag_type: str, what: str, value: Any) -> Any:
    if not _TYPE_OK[flag_type](value):
        raise _TypeMismatch(f"flag {key!r} is a {flag_type} flag but its {what} is {value!r}")
    return value


def _copying(fn: FlagFn) -> FlagFn:
    """JSON values are mutable: hand each caller its own copy of the shared value."""

    def copied(context: Context, default: Any) -> Evaluation:
        result = fn(context, default)
        if result.error_code is not None:
            return result
        return Evaluation(copy.deepcopy(result.value), result.variant, result.reason)

    return copied


def _build_flag(key: str, flag_type: str, raw: Mapping[str, Any], segments: Segments) -> FlagFn:
    default = _checked(key, flag_type, "default", raw.get("default", _MISSING_DEFAULT[flag_type]))
    on_value = _checked(key, flag_type, "on_value", raw.get("on_value", True if flag_type == "boolean" else default))
    if not raw.get("enabled", False):
        disabled = Evaluation(default, None, DISABLED)
        return lambda context, caller_default: disabled
    flag_variants = _variant_table(key, flag_type, raw.get("variants"), f"flag {key!r} variants")
    variant_stickiness = raw.get("variant_stickiness") or "default"
    if not isinstance(variant_stickiness, str):
        raise ConstraintError(f"variant_stickiness must be a string, got {variant_stickiness!r}")
    flag_pick = None if flag_variants is None else _picker(key + ":", variant_stickiness, flag_variants)
    strategies = raw.get("strategies") or []
    if not isinstance(strategies, list):
        raise ConstraintError(f"'strategies' must be a list, got {strategies!r}")

    if not strategies:
        if flag_variants is None:
            static = Evaluation(on_value, None, STATIC)
            return lambda context, caller_default: static
        pick = cast(Callable[[Context], Evaluation], flag_pick)
        return lambda context, caller_default: pick(context)

    fallback = Evaluation(default, None, DEFAULT)
    parts: list[_Strategy] = []
    for index, strategy in enumerate(strategies):
        parts.append(_Strategy(key, flag_type, index, strategy, on_value, flag_pick, segments))
    for index, part in enumerate(parts):
        if part.always is not None:  # matches everyone: the strategies after it never run
            fallback, parts = part.always, parts[:index]
            break
    if not parts:
        return lambda context, caller_default: fallback
    if len(parts) == 1:
        return cast(FlagFn, parts[0].compile(fallback))  # never None: a miss is the fallback
    compiled = [part.compile(None) for part in parts]

    def first_match(context: Context, caller_default: Any) -> Evaluation:
        for match in compiled:
            result = match(context, caller_default)
            if result is not None:
                return result
        return fallback

    return first_match


VariantTable = list[tuple[int, Evaluation]]
# (attribute, the values that select it, the variant's SPLIT evaluation), checked before hashing
Overrides = list[tuple[str, frozenset[str], Evaluation]]
Variants = tuple[int, VariantTable, Overrides]


def _variant_table(key: str, flag_type: str, raw: Any, where: str) -> Variants | None:
    """(total weight, [(cumulative weight, prebuilt SPLIT evaluation)], overrides) or None if no variants."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ConstraintError(f"{where} must be a list, got {raw!r}")
    table: VariantTable = []
    overrides: Overrides = []
    total = 0
    for variant in raw:
        name = variant["name"]
        if not isinstance(name, str) or not name:
            raise ConstraintError(f"{where}: a variant name must be a non-empty string, got {name!r}")
        weight = variant.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise ConstraintError(f"{where}: variant {name!r} weight must be a non-negative integer, got {weight!r}")
        value = variant.get("value", name if flag_type == "string" else None)
        _checked(key, flag_type, f"variant {name!r} value", value)
        total += weight
        result = Evaluation(value, name, SPLIT)
        table.append((total, result))
        for override in variant.get("overrides") or []:
            attribute, values = override["attribute"], override["values"]
            if not isinstance(attribute, str) or not isinstance(values, list):
                raise ConstraintError(f"{where}: variant {name!r} override needs an attribute and values")
            overrides.append((attribute, frozenset(as_text(v) for v in values), result))
    return (total, table, overrides) if total > 0 else None


def _random_value() -> str:
    return str(random.randrange(1_000_000_000))


def _stickiness_reader(
    stickiness: str, fields: tuple[str, ...] = ("user_id", "session_id")
) -> Callable[[Context], str | None]:
    """Read the stickiness value. "default" is the first of ``fields`` present, else a random
    value (Unleash: a rollout without a user or session id is random per evaluation); "random" is
    always random; any other attribute that is missing reads as None."""
    if stickiness == "random":
        return lambda context: _random_value()
    if stickiness == "default":

        def read_default(context: Context) -> str | None:
            for field in fields:
                value = context.get(field)
                if value is not None and value != "":
                    return value if type(value) is str else as_text(value)
            return _random_value()

        return read_default

    def read(context: Context) -> str | None:
        value = context.get(stickiness)
        if value is None or value == "":
            return None
        return value if type(value) is str else as_text(value)

    return read


def _picker(prefix: str, stickiness: str, variants: Variants) -> Callable[[Context], Evaluation]:
    """Unleash's variant choice: an override whose attribute value is listed wins; else
    murmur3(f"{group}:{stickiness}", 86028157) % total + 1, first variant whose cumulative weight
    reaches it. "default" stickiness is user_id, session_id, remote_address; no value: random."""
    total, table, overrides = variants
    read = _stickiness_reader(stickiness, ("user_id", "session_id", "remote_address"))
    hash32 = mmh3.hash

    def pick(context: Context) -> Evaluation:
        for attribute, values, chosen in overrides:
            found = context.get(attribute)
            if found is not None and as_text(found) in values:
                return chosen
        value = read(context)
        if value is None:
            value = _random_value()
        target = hash32(prefix + value, VARIANT_SEED, False) % total + 1
        for cumulative, result in table:
            if target <= cumulative:
                return result
        return table[-1][1]  # unreachable: target <= total

    return pick


class _Strategy:
    """One strategy, validated; ``compile(miss)`` makes its match function returning ``miss``
    when it does not match. ``always`` is its fixed result when it matches every context."""

    def __init__(
        self,
        key: str,
        flag_type: str,
        index: int,
        raw: Any,
        on_value: Any,
        flag_pick: Callable[[Context], Evaluation] | None,
        segments: Segments,
    ) -> None:
        if not isinstance(raw, Mapping):
            raise ConstraintError(f"strategy {index} must be an object, got {raw!r}")
        self.predicates: list[Predicate] = []
        for segment_id in raw.get("segments") or []:
            segment = segments.get(str(segment_id))
            if isinstance(segment, ConstraintError):
                raise segment
            # Unleash: a strategy that names a segment the client does not have never matches
            self.predicates.extend([_never] if segment is None else segment)
        self.predicates.extend(compile_constraint(c) for c in raw.get("constraints") or [])
        rollout = as_number(raw.get("rollout", 100))
        if rollout is None:
            raise ConstraintError(f"strategy {index} rollout must be a number 0..100, got {raw.get('rollout')!r}")
        self.rollout = rollout
        stickiness = raw.get("stickiness") or "default"
        group_id = raw.get("group_id") or key
        if not isinstance(stickiness, str) or not isinstance(group_id, str):
            raise ConstraintError(f"strategy {index}: stickiness and group_id must be strings")
        self.stickiness, self.group_id = stickiness, group_id
        self.pick: Callable[[Context], Evaluation] | None = None
        self.fixed: Evaluation | None = None
        if raw.get("value") is not None:
            value = _checked(key, flag_type, f"strategy {index} value", raw["value"])
            self.fixed = Evaluation(value, None, TARGETING_MATCH)
        else:
            own = _variant_table(key, flag_type, raw.get("variants"), f"strategy {index} variants")
            if own is not None:  # strategy variants: the strategy's group and stickiness
                self.pick = _picker(group_id + ":", stickiness, own)
            elif flag_pick is not None:  # the flag's variants: the flag key and their own stickiness
                self.pick = flag_pick
            else:
                self.fixed = Evaluation(on_value, None, TARGETING_MATCH)
        full = not self.predicates and rollout >= 100 and stickiness in ("default", "random")
        self.always = self.fixed if full else None

    def compile(self, miss: Evaluation | None) -> Callable[[Context, Any], Evaluation | None]:
        predicates, rollout, fixed, pick = self.predicates, self.rollout, self.fixed, self.pick
        prefix = self.group_id + ":"
        hash32 = mmh3.hash
        attribute = self.stickiness
        read = _stickiness_reader(attribute)
        if rollout >= 100 and attribute in ("default", "random"):

            def match_all(context: Context, caller_default: Any) -> Evaluation | None:
                for predicate in predicates:
                    if not predicate(context):
                        return miss
                return fixed if pick is None else pick(context)

            return match_all

        if attribute in ("default", "random"):

            def match_default(context: Context, caller_default: Any) -> Evaluation | None:
                for predicate in predicates:
                    if not predicate(context):
                        return miss
                value = read(context)  # user_id, session_id or a random draw
                if hash32(prefix + str(value), 0, False) % 100 + 1 > rollout:
                    return miss
                return fixed if pick is None else pick(context)

            return match_default

        def match(context: Context, caller_default: Any) -> Evaluation | None:
            for predicate in predicates:
                if not predicate(context):
                    return miss
            value = context.get(attribute)
            if value is None or value == "":  # Unleash: no stickiness value, not in any rollout
                return miss
            if hash32(prefix + (value if type(value) is str else as_text(value)), 0, False) % 100 + 1 > rollout:
                return miss
            return fixed if pick is None else pick(context)

        return match
