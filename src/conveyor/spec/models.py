"""The typed ``conveyor.yml``: one frozen pydantic model per section.

Durations are seconds (floats); YAML may write them as "30s", "15m", "1h30m" (see ``durations``).
Wherever a command is expected, YAML may give plain text instead of the ``{run, timeout}`` mapping.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from conveyor.domain.calendar import build_schedule
from conveyor.domain.links import check_template
from conveyor.domain.migrations import DEFAULT_RULES, SQUAWK_RULES
from conveyor.domain.roles import ROLES
from conveyor.errors import ConveyorError, NotFound
from conveyor.spec.durations import parse_duration
from conveyor.spec.monitor_signals import AlertsSpec, QuerySpec

Duration = Annotated[float, BeforeValidator(parse_duration)]
Step = Literal["prepare", "tag", "migrate", "rollout", "smoke", "announce"]
STEP_ORDER: tuple[Step, ...] = ("prepare", "tag", "migrate", "rollout", "smoke", "announce")
METRICS = ("error_rate", "p50_ms", "p95_ms", "p99_ms")
Loc = tuple[str | int, ...]

_STRICT = ConfigDict(extra="forbid", frozen=True)
# For models with a field named after a Python keyword ("for", "from"): Python code may use `for_`.
_STRICT_BY_NAME = ConfigDict(extra="forbid", frozen=True, validate_by_name=True)
_THRESHOLD = re.compile(r">=?\s*\d+(?:\.\d+)?%?")
_FACTOR = re.compile(r"(\d+(?:\.\d+)?)\s*x")


NOT_YET = (
    "{key}: Conveyor does not carry out {what} yet, so it refuses the key rather than accept it and do "
    "nothing; remove it (docs/conveyor-yml.md lists what acts)"
)


class RuleError(ValueError):
    """Broken cross-field rules of one model: (path below the model, complete message) pairs."""

    def __init__(self, broken: list[tuple[Loc, str]]) -> None:
        self.broken = broken
        super().__init__("; ".join(message for _, message in broken))


def _name_check(what: str, pattern: str, rule: str) -> AfterValidator:
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{what} {value!r} must be {rule}")
        return value

    return AfterValidator(check)


def _metric(value: str) -> str:
    if value not in METRICS:
        raise ValueError(f"unknown metric {value!r} (use {', '.join(METRICS)})")
    return value


def _threshold(value: object) -> str:
    if isinstance(value, str) and _THRESHOLD.fullmatch(value.strip()):
        return value.strip()
    raise ValueError(f'{value!r} is not a threshold (use e.g. "> 2%" or "> 800")')


ServiceName = Annotated[
    str,
    _name_check(
        "service name",
        r"[a-z0-9][a-z0-9_-]{2,62}",
        "3-63 characters of a-z, 0-9, _ and -, starting with a letter or digit",
    ),
]


def _factor(value: object) -> str:
    text = str(value).strip() if isinstance(value, str | int | float) and not isinstance(value, bool) else ""
    match = _FACTOR.fullmatch(text)
    if match is None or float(match.group(1)) < 1:
        raise ValueError(f'{value!r} is not a factor over the previous release (use e.g. "2x" or "1.5x", at least 1x)')
    return text


Metric = Annotated[str, AfterValidator(_metric)]
Threshold = Annotated[str, BeforeValidator(_threshold)]
Factor = Annotated[str, BeforeValidator(_factor)]
EnvironmentName = Annotated[
    str,
    _name_check(
        "environment name",
        r"[a-z][a-z0-9_-]{1,31}",
        "2-32 characters of a-z, 0-9, _ and -, starting with a letter",
    ),
]


class CommandSpec(BaseModel):
    """A shell command; ``timeout`` (seconds) overrides the default of wherever it is used."""

    model_config = _STRICT
    run: str = Field(min_length=1)
    timeout: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return {"run": data} if isinstance(data, str) else data


def _squawk_rules(rules: list[str]) -> list[str]:
    unknown = [r for r in rules if r not in SQUAWK_RULES]
    if unknown:
        raise ValueError(
            f"unknown squawk rule {unknown[0]!r} (use rule names as squawk prints them, "
            f"e.g. {', '.join(DEFAULT_RULES[:3])})"
        )
    return rules


class MigrateSpec(CommandSpec):
    """The migrate step (docs/database.md): ``run`` migrates; ``sql`` prints the SQL it would run,
    which squawk lints before anything runs; ``down`` undoes this release's migrations for
    ``conveyor rollback --with-database``."""

    sql: CommandSpec | None = None
    down: CommandSpec | None = None
    lock_timeout: Duration = 10.0
    statement_timeout: Duration = 3600.0
    maintenance_over: Duration = 60.0
    lint: bool = True
    rules: Annotated[list[str], AfterValidator(_squawk_rules)] = list(DEFAULT_RULES)


class DatabaseSpec(BaseModel):
    """The environment's database backup: ``backup`` runs before every migration of a deploy
    (e.g. pg_dump), ``restore`` takes it back for ``rollback --with-database``."""

    model_config = _STRICT
    backup: CommandSpec | None = None
    restore: CommandSpec | None = None

    @model_validator(mode="after")
    def _both(self) -> DatabaseSpec:
        if (self.backup is None) != (self.restore is None):
            message = "database.backup and database.restore go together: a backup nobody can restore is no rollback"
            raise RuleError([((), message + " (set both)")])
        return self


class HealthSpec(BaseModel):
    """How the agent decides an instance is healthy: ``successes`` passing GETs in a row."""

    model_config = _STRICT
    path: str = "/healthz"
    interval: Duration = 1.0
    successes: int = Field(default=2, ge=1)
    timeout: Duration = 60.0


class CommandTarget(BaseModel):
    """Deploys by running the user's own scripts."""

    model_config = _STRICT
    kind: Literal["command"] = "command"
    deploy: CommandSpec
    rollback: CommandSpec | None = None
    status: CommandSpec | None = None
    timeout: Duration = 600.0

    @model_validator(mode="after")
    def _only_keys_that_act(self) -> CommandTarget:
        if self.status is not None:
            raise RuleError([(("status",), NOT_YET.format(key="status", what="a command target's status checks"))])
        return self


class LocalTarget(BaseModel):
    """Runs ``replicas`` copies of the service's ``run`` command under the local agent."""

    model_config = _STRICT
    kind: Literal["local"] = "local"
    port: int = Field(ge=1, le=65535)
    replicas: int = Field(default=1, ge=1)
    router: Literal["builtin", "haproxy"] = "builtin"
    host: str = "127.0.0.1"


Target = Annotated[CommandTarget | LocalTarget, Field(discriminator="kind")]


class TagSpec(BaseModel):
    model_config = _STRICT
    bump: Literal["major", "minor", "patch"] = "minor"
    prefix: str = "v"


class RolloutSpec(BaseModel):
    model_config = _STRICT
    strategy: Literal["rolling", "blue_green"] = "rolling"
    max_surge: int = Field(default=1, ge=1)


class MonitorSpec(BaseModel):
    """Watch the release for ``for_`` seconds after its last step, a sample every ``interval``;
    judge it against ``rollback_if`` (absolute limits) and ``regression`` (factors over the previous
    release's own numbers) once ``min_requests`` requests were seen; on a breach do ``on_breach``.
    ``smoke_every`` runs the environment's smoke command again during the window."""

    model_config = _STRICT_BY_NAME
    for_: Duration = Field(default=1800.0, validation_alias="for", serialization_alias="for")
    interval: Duration = 10.0
    min_requests: int = Field(default=100, ge=1)
    rollback_if: dict[Metric, Threshold] = {}
    regression: dict[Metric, Factor] = {}
    on_breach: Literal["rollback", "alert", "kill_flags"] = "rollback"
    smoke_every: Duration | None = None
    queries: dict[str, QuerySpec] = {}
    alerts: AlertsSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> MonitorSpec:
        broken: list[tuple[Loc, str]] = []
        if self.interval < 1:
            broken.append((("interval",), f"interval must be at least 1s, got {self.interval:g}s"))
        elif self.for_ < self.interval:
            broken.append((("for",), f"for ({self.for_:g}s) must be at least one interval ({self.interval:g}s)"))
        if self.smoke_every is not None and self.smoke_every < 1:
            broken.append((("smoke_every",), f"smoke_every must be at least 1s, got {self.smoke_every:g}s"))
        for metric, threshold in self.rollback_if.items():
            if metric == "error_rate" and not threshold.endswith("%"):
                broken.append((("rollback_if", metric), f'error_rate {threshold!r} needs a percentage, e.g. "> 2%"'))
            if metric != "error_rate" and threshold.endswith("%"):
                broken.append(
                    (("rollback_if", metric), f'{metric} {threshold!r} is in milliseconds: write e.g. "> 800"')
                )
        if broken:
            raise RuleError(broken)
        return self


class ApprovalSpec(BaseModel):
    model_config = _STRICT_BY_NAME
    count: int = Field(default=1, ge=1)
    from_: list[str] = Field(default=["release_manager"], validation_alias="from", serialization_alias="from")
    self_approval: bool = False

    @field_validator("from_")
    @classmethod
    def _roles(cls, roles: list[str]) -> list[str]:
        return _known_roles(roles)


class StagingVerifiedSpec(BaseModel):
    model_config = _STRICT
    environment: str = "staging"
    signoff: bool = False


DEFAULT_CHECKLIST = (
    "tests_passing",
    "staging_verified",
    "migrations_reviewed",
    "flags_configured",
    "rollback_plan",
    "stakeholders_notified",
)


def _template(text: str) -> str:
    """A message template must compile (Jinja2, sandboxed when rendered: notify/templating.py)."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    try:
        SandboxedEnvironment().parse(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"not a Jinja2 template: {exc.message} (line {exc.lineno} of the template)") from exc
    return text


def _known_roles(roles: list[str]) -> list[str]:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role {unknown[0]!r} (roles: {', '.join(ROLES)})")
    return roles


class GatesSpec(BaseModel):
    """Rules a deployment must pass before it starts; an unset gate is off."""

    model_config = _STRICT
    reviews: Annotated[int, Field(ge=0)] | None = None
    checks: list[str] = []
    staging_verified: StagingVerifiedSpec | None = None
    approval: ApprovalSpec | None = None
    checklist: list[str] = []
    schedule: dict[str, Any] | None = None
    expire_after: Duration = 86400.0

    @field_validator("schedule")
    @classmethod
    def _schedule_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """The deploy calendar is checked when the file is loaded, not when someone deploys."""
        if value is not None:
            try:
                build_schedule({k: v for k, v in value.items() if k != "emergency"})
            except ConveyorError as exc:
                raise ValueError(exc.text) from exc
            emergency = value.get("emergency")
            if emergency is not None:
                if not isinstance(emergency, dict) or set(emergency) - {"approvers"}:
                    raise ValueError("schedule.emergency takes only approvers, e.g. {approvers: [manager]}")
                _known_roles(list(emergency.get("approvers") or []))
        return value

    @field_validator("checklist", mode="before")
    @classmethod
    def _checklist_shorthand(cls, value: Any) -> Any:
        """``true`` asks for the process document's checklist, ``false`` for none."""
        if isinstance(value, bool):
            return list(DEFAULT_CHECKLIST) if value else []
        return value

    @field_validator("staging_verified", mode="before")
    @classmethod
    def _staging_shorthand(cls, value: Any) -> Any:
        """``true`` turns the gate on with defaults, ``false`` off; text names the environment."""
        if isinstance(value, bool):
            return {} if value else None
        return {"environment": value} if isinstance(value, str) else value


NotifyEvent = Literal[
    "requested",
    "approval",
    "started",
    "step",
    "succeeded",
    "failed",
    "rolled_back",
    "cancelled",
    "merge_back_due",
    "monitoring_breach",
]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)
TemplateName = Literal[NotifyEvent, "summary"]  # "summary": the Slack message updated in place
_SECRET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _secret_ref(value: str) -> str:
    if not _SECRET.fullmatch(value.strip()):
        raise ValueError(
            "a secret is written as ${NAME}, read from the server's environment, never in conveyor.yml "
            "(e.g. ${SLACK_BOT_TOKEN})"
        )
    return value.strip()


def _http_url(value: str) -> str:
    if not re.match(r"https?://[^\s/]+", value) and not _SECRET.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not an http(s) URL (or ${{NAME}} read from the server's environment)")
    return value.strip()


Secret = Annotated[str, AfterValidator(_secret_ref)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class SlackNotifier(BaseModel):
    """Slack: an incoming webhook (one message per event), or a bot token and a channel (one message
    per deployment, updated in place, with replies in its thread). Text is the webhook."""

    model_config = _STRICT
    webhook: Secret | None = None
    token: Secret | None = None
    channel: str | None = None
    events: list[NotifyEvent] = list(NOTIFY_EVENTS)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return {"webhook": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackNotifier:
        if (self.webhook is None) == (self.token is None):
            raise RuleError([((), "slack needs either webhook: ${URL_VARIABLE} or token: ${TOKEN_VARIABLE}")])
        if self.token is not None and not self.channel:
            raise RuleError([(("channel",), "slack with a bot token needs a channel (e.g. channel: '#deployments')")])
        return self


class WebhookNotifier(BaseModel):
    """JSON to ``url`` for each event, signed with HMAC-SHA256 of ``secret`` like GitHub's webhooks."""

    model_config = _STRICT
    url: HttpUrl
    secret: Secret | None = None
    events: list[NotifyEvent] = list(NOTIFY_EVENTS)


class EmailNotifier(BaseModel):
    """Mail through the server's mail server (CONVEYOR_SMTP_URL): approval requests to the approvers."""

    model_config = _STRICT
    to: list[str] = []
    events: list[NotifyEvent] = ["approval"]

    @field_validator("to")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", address):
                raise ValueError(f"{address!r} is not an email address")
        return addresses


class GithubNotifier(BaseModel):
    """GitHub Deployments: a deployment per environment and deploy, and its statuses."""

    model_config = _STRICT
    token: Secret
    repository: Annotated[str, _name_check("repository", r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", "OWNER/NAME")] | None = (
        None
    )


class NotifierSpec(BaseModel):
    """One entry of ``notify``: a mapping with exactly one key, the notifier's kind."""

    model_config = _STRICT
    slack: SlackNotifier | None = None
    webhook: WebhookNotifier | None = None
    email: EmailNotifier | None = None
    github: GithubNotifier | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> NotifierSpec:
        kinds = [k for k in ("slack", "webhook", "email", "github") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise RuleError([((), "a notify entry names exactly one notifier: slack, webhook, email or github")])
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("slack", "webhook", "email", "github") if getattr(self, k) is not None)


class EnvironmentSpec(BaseModel):
    model_config = _STRICT
    branch: str | None = None
    auto_deploy: bool = False
    target: Target
    deployers: list[str] = []
    gates: GatesSpec = GatesSpec()
    migrate: MigrateSpec | None = None
    database: DatabaseSpec | None = None
    smoke: CommandSpec | None = None
    tag: TagSpec | None = None
    rollout: RolloutSpec = RolloutSpec()
    quick_rollback: Duration = 900.0
    monitor: MonitorSpec | None = None
    notify: list[NotifierSpec] = []
    links: dict[str, str] = {}
    steps: list[Step] | None = None
    env: dict[str, str] = {}
    url: str | None = None  # where the environment answers; given to smoke tests as CONVEYOR_URL

    @field_validator("deployers")
    @classmethod
    def _deployer_roles(cls, roles: list[str]) -> list[str]:
        return _known_roles(roles)

    @field_validator("links")
    @classmethod
    def _link_templates(cls, links: dict[str, str]) -> dict[str, str]:
        """Each is a URL template expanded per deployment (domain/links.py): refused now if it could not be."""
        for label, template in links.items():
            check_template(label, template)
        return links

    @field_validator("steps")
    @classmethod
    def _steps_in_order(cls, steps: list[Step] | None) -> list[Step] | None:
        if steps is None:
            return None
        positions = [STEP_ORDER.index(step) for step in steps]
        if positions != sorted(set(positions)):
            order = ", ".join(STEP_ORDER)
            raise ValueError(f"steps must keep the order {order} (a subset is fine), got {', '.join(steps)}")
        if "rollout" not in steps:
            raise ValueError("steps must include rollout")
        return steps

    @model_validator(mode="after")
    def _auto_deploy_needs_branch(self) -> EnvironmentSpec:
        if self.auto_deploy and self.branch is None:
            raise RuleError([(("auto_deploy",), "auto_deploy: true needs a branch (add e.g. branch: main)")])
        return self

    @model_validator(mode="after")
    def _monitor_smoke(self) -> EnvironmentSpec:
        if self.monitor is not None and self.monitor.smoke_every is not None and self.smoke is None:
            message = "monitor.smoke_every re-runs the environment's smoke command, and this environment has none"
            raise RuleError([(("monitor", "smoke_every"), message + " (add smoke: or remove smoke_every)")])
        return self

    @model_validator(mode="after")
    def _only_keys_that_act(self) -> EnvironmentSpec:
        """A key that is accepted must act: these are refused until Conveyor carries them out."""
        broken: list[tuple[Loc, str]] = []
        if broken:
            raise RuleError(broken)
        return self

    def step_plan(self) -> list[Step]:
        """The steps a deployment runs: ``steps`` if given, else those this environment configures."""
        if self.steps is not None:
            return list(self.steps)
        optional = {"tag": self.tag, "migrate": self.migrate, "smoke": self.smoke}
        return [step for step in STEP_ORDER if step not in optional or optional[step] is not None]


_IDENTITY = re.compile(r"[^<>\n]+ <[^<>\s]+>")


class HotfixSpec(BaseModel):
    """A hotfix is decided by ancestry (docs/hotfix.md): based on the release serving in
    ``environment``, at most ``max_commits`` of its own commits since."""

    model_config = _STRICT
    branch_prefix: str = "hotfix/"
    reviews: int = Field(default=1, ge=0)
    merge_back: list[str] = []
    environment: str = "production"
    max_commits: int = Field(default=10, ge=1)
    identity: str = "Conveyor <conveyor@localhost>"

    @field_validator("identity")
    @classmethod
    def _identity(cls, value: str) -> str:
        if not _IDENTITY.fullmatch(value.strip()):
            raise ValueError(f"identity {value!r} must be 'Name <email>', e.g. 'Conveyor <conveyor@example.com>'")
        return value.strip()


class ServiceSpec(BaseModel):
    """A whole ``conveyor.yml``."""

    model_config = _STRICT
    service: ServiceName
    build: CommandSpec | None = None
    run: str | None = None
    health: HealthSpec = HealthSpec()
    environments: dict[EnvironmentName, EnvironmentSpec] = Field(min_length=1)
    hotfix: HotfixSpec | None = None
    env: dict[str, str] = {}
    templates: dict[TemplateName, Annotated[str, AfterValidator(_template)]] = {}

    @model_validator(mode="after")
    def _cross_environment_rules(self) -> ServiceSpec:
        broken: list[tuple[Loc, str]] = []
        port_owners: dict[int, str] = {}
        for name, env in self.environments.items():
            gate = env.gates.staging_verified
            if gate and gate.environment not in self.environments:
                defined = ", ".join(sorted(self.environments))
                message = f"unknown environment {gate.environment!r} in gates.staging_verified; defined: {defined}"
                broken.append((("environments", name, "gates", "staging_verified"), message))
            if not isinstance(env.target, LocalTarget):
                continue
            if self.run is None:
                message = "a local target needs the top-level run command (add e.g. run: python -m app)"
                broken.append((("environments", name, "target"), f"environments.{name}.target: {message}"))
            owner = port_owners.setdefault(env.target.port, name)
            if owner != name:
                message = f"port {env.target.port} is already used by environments.{owner}"
                broken.append((("environments", name, "target", "port"), f"environments.{name}.target.port: {message}"))
        if self.hotfix is not None and self.hotfix.environment not in self.environments:
            defined = ", ".join(sorted(self.environments))
            message = f"hotfix.environment {self.hotfix.environment!r} is not an environment; defined: {defined}"
            broken.append((("hotfix", "environment"), message))
        if broken:
            raise RuleError(broken)
        return self

    def environment(self, name: str) -> EnvironmentSpec:
        if name not in self.environments:
            raise NotFound(
                f"service {self.service!r} has no environment {name!r}",
                f"defined: {', '.join(sorted(self.environments))}",
            )
        return self.environments[name]
