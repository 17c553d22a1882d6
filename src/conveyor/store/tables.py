"""The app tables. Alembic migrations in ``store/migrations`` create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer(), "sqlite")

services = Table(
    "services",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("source", Text, nullable=False),  # the path or URL it was added from
    Column("repo_path", Text, nullable=False),  # the local repository Conveyor reads and tags
    Column("config_text", Text, nullable=False),  # conveyor.yml as registered
    # the GitHub repository its evidence must come from: configured, or bound by the first verified delivery
    Column("github_repository", String(255)),
    Column("github_repository_id", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

releases = Table(
    "releases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("service_id", ForeignKey("services.id"), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("version", String(128), nullable=False),
    Column("tag", String(128)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("service_id", "version", name="uq_releases_service_version"),
)

environments = Table(
    "environments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("service_id", ForeignKey("services.id"), nullable=False),
    Column("name", String(32), nullable=False),
    Column("current_release_id", ForeignKey("releases.id")),
    Column("current_deployment_id", String(36)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("service_id", "name", name="uq_environments_service_name"),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("seq", Id, nullable=False, unique=True),  # request order
    Column("service_id", ForeignKey("services.id"), nullable=False),
    Column("environment", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # deploy | rollback
    Column("ref", String(255), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("release_id", ForeignKey("releases.id")),
    Column("previous_release_id", ForeignKey("releases.id")),
    Column("state", String(16), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("trigger", String(16), nullable=False),  # manual | webhook | poll | rollback
    Column("notes", Text),
    Column("ticket", String(64)),
    Column("reason", Text),  # why it failed, was cancelled or rolled back
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("gates", JSON),  # the latest gate evaluation: [{gate, passed, reason, details}]
    # an emergency bypasses the schedule (with approval); a when-open one waits for the next window
    Column("emergency", Boolean, nullable=False, default=False, server_default=false()),
    Column("when_open", Boolean, nullable=False, default=False, server_default=false()),
    # docs/database.md: maintenance mode on during the migrate step; a rollback that takes the database back too
    Column("maintenance", Boolean, nullable=False, default=False, server_default=false()),
    Column("with_database", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Index("ix_deployments_service_env_seq", "service_id", "environment", "seq"),
    Index("ix_deployments_state", "state"),
)

steps = Table(
    "steps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("deployment_id", ForeignKey("deployments.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("message", Text),
    Column("output_tail", Text),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    UniqueConstraint("deployment_id", "name", name="uq_steps_deployment_name"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("roles", JSON, nullable=False),
    Column("password_hash", Text),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("name", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

branch_heads = Table(
    "branch_heads",
    metadata,
    Column("service_id", ForeignKey("services.id"), primary_key=True),
    Column("branch", String(255), primary_key=True),
    Column("sha", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


# --- evidence for gates ----------------------------------------------------------------------

pull_requests = Table(
    "pull_requests",
    metadata,
    Column("repository", String(255), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("head_sha", String(64), nullable=False),
    Column("merge_commit_sha", String(64)),
    Column("author", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("repository_id", BigInteger),
    Column("event_at", DateTime(timezone=True)),  # the event's own time (GitHub's updated_at)
    Index("ix_pull_requests_merge_commit_sha", "merge_commit_sha"),
    Index("ix_pull_requests_head_sha", "head_sha"),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sha", String(64), nullable=False),  # the commit the review approved
    Column("repository", String(255)),
    Column("pr_number", Integer),
    Column("reviewer", String(64), nullable=False),
    Column("author", String(64), nullable=False),
    Column("state", String(32), nullable=False),
    Column("source", String(16), nullable=False),  # github | api
    Column("at", DateTime(timezone=True), nullable=False),  # when it arrived
    Column("repository_id", BigInteger),
    Column("event_at", DateTime(timezone=True)),  # the event's own time (submitted_at); orders evidence
    Column("delivery_id", String(64)),
    Index("ix_reviews_sha", "sha"),
)

checks = Table(
    "checks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sha", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("state", String(16), nullable=False),  # success | failure | pending
    Column("url", Text),
    Column("reported_by", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),  # when it arrived
    Column("repository", String(255)),  # the GitHub repository it came from; None when reported through the API
    Column("repository_id", BigInteger),
    Column("event_at", DateTime(timezone=True)),  # the event's own time (completed_at, updated_at)
    Column("delivery_id", String(64)),
    Index("ix_checks_sha_name", "sha", "name"),
)

# every X-GitHub-Delivery id seen: a replayed delivery is recognised and ignored
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("event", String(64), nullable=False),
    Column("repository", String(255)),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("ix_webhook_deliveries_received_at", "received_at"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("deployment_id", ForeignKey("deployments.id"), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("user", String(64), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("comment", Text),
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("deployment_id", "user", name="uq_approvals_deployment_user"),
)

checklist_ticks = Table(
    "checklist_ticks",
    metadata,
    Column("deployment_id", ForeignKey("deployments.id"), primary_key=True),
    Column("item", String(64), primary_key=True),
    Column("user", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

verifications = Table(
    "verifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("service_id", ForeignKey("services.id"), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("environment", String(32), nullable=False),
    Column("user", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_verifications_sha", "sha"),
)


# --- the deploy calendar -----------------------------------------------------------------------

freezes = Table(
    "freezes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("service_id", ForeignKey("services.id"), nullable=False),
    Column("environment", String(32), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True)),  # None: until lifted
    Column("reason", Text, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("lifted_at", DateTime(timezone=True)),
    Column("lifted_by", String(64)),
    Index("ix_freezes_service_environment", "service_id", "environment"),
)


# --- feature flags -----------------------------------------------------------------------------

flags = Table(
    "flags",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("service_id", ForeignKey("services.id"), nullable=False),
    Column("key", String(128), nullable=False),
    Column("type", String(16), nullable=False),  # boolean | string | number | json
    Column("default_value", JSON, nullable=False),  # served when off or when no strategy matches
    Column("on_value", JSON, nullable=False),  # served when on and no variant or strategy value applies
    Column("variants", JSON, nullable=False, server_default="[]"),  # [{name, value, weight, overrides}]
    Column("variant_stickiness", String(128), nullable=False, server_default="default"),  # (0009)
    Column("dependencies", JSON, nullable=False, server_default="[]"),  # [{flag, enabled, variants}] (0009)
    Column("description", Text),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("service_id", "key", name="uq_flags_service_key"),
)

flag_environments = Table(
    "flag_environments",
    metadata,
    Column("flag_id", ForeignKey("flags.id"), primary_key=True),
    Column("environment", String(32), primary_key=True),
    Column("enabled", Boolean, nullable=False, default=False, server_default=false()),
    Column("strategies", JSON, nullable=False, server_default="[]"),  # see docs/flags-ruleset.md
    Column("updated_by", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Unleash segments: a named set of constraints of one service, named by id from strategies'
# "segments"; a strategy matches only if every constraint of every segment it names holds (0013)
flag_segments = Table(
    "flag_segments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("service_id", ForeignKey("services.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("description", Text),
    Column("constraints", JSON, nullable=False, server_default="[]"),  # as a strategy's constraints
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("service_id", "name", name="uq_flag_segments_service_name"),
)

# one row per service and environment: the ruleset's version, bumped in every transaction that
# changes what that environment serves (ETag of the ruleset; SSE subscribers compare it)
flag_rulesets = Table(
    "flag_rulesets",
    metadata,
    Column("service_id", ForeignKey("services.id"), primary_key=True),
    Column("environment", String(32), primary_key=True),
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

sdk_keys = Table(
    "sdk_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("service_id", ForeignKey("services.id"), nullable=False),
    Column("environment", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("name", String(64)),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_by", String(64)),
    Column("revoked_at", DateTime(timezone=True)),
    Index("ix_sdk_keys_service_environment", "service_id", "environment"),
)


# --- dashboard sign-in sessions ------------------------------------------------------------------

# the cookie carries a random session id; only its SHA-256 is stored, next to the session's CSRF token
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_web_sessions_expires_at", "expires_at"),
)


# --- sign-in throttling (one row per user name and per client address) ----------------------------

# failures since the last success, and how long further attempts are refused; shared by every server
login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True)),
)


# --- the event stream (domain/events.py): an outbox written with each change --------------------

# one row per event, in commit order (writers take the audit lock, so ids never commit out of order)
events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("deployment_id", String(36)),  # set when the event belongs to one deployment
    Column("subject", String(255), nullable=False),
    Column("payload", JSON, nullable=False),
    Index("ix_events_deployment_id", "deployment_id"),
)

# each consumer's durable cursor: the position of the last event it has handled
event_cursors = Table(
    "event_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", Id, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# --- notifications (notify/): what each notifier is to send, and what came of it ----------------

# one row per message to one destination (a notifier of one environment), sent in id order per
# destination; the event stream's consumer writes them, the sender delivers them with retries
notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("position", Id, nullable=False),  # the event it was made for
    Column("deployment_id", String(36)),
    Column("destination", String(255), nullable=False),  # SERVICE/ENVIRONMENT/INDEX:KIND, or test:...
    Column("notifier", String(16), nullable=False),  # slack | webhook | email | github
    Column("event", String(32), nullable=False),  # requested | approval | started | step | ...
    Column("config", JSON, nullable=False),  # the notifier's conveyor.yml entry (secrets as ${NAME})
    Column("context", JSON, nullable=False),  # the event's values the message is made from
    Column("state", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True)),  # a sender holds it until then
    Column("text", Text),  # what was sent, once rendered
    Column("last_error", Text),  # the last failed attempt's error (kept after a later success)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("outcome", Text),  # once delivered: what the receiver did ("posted to #deployments", "201 from ...")
    UniqueConstraint("position", "destination", name="uq_notifications_position_destination"),
    Index("ix_notifications_state_destination", "state", "destination"),
    Index("ix_notifications_deployment_id", "deployment_id"),
)

# what a destination keeps per deployment: the Slack message it updates (channel id, ts), the
# GitHub deployment it adds statuses to (id)
notification_threads = Table(
    "notification_threads",
    metadata,
    Column("destination", String(255), primary_key=True),
    Column("deployment_id", String(36), primary_key=True),
    Column("ref", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# --- monitoring signals (monitor/alertmanager.py): alerts Alertmanager sent to Conveyor ----------

# one row per alert instance (Alertmanager's fingerprint of its labels, and when it started firing);
# a later notification of the same instance (still firing, or resolved) updates the row
monitor_alerts = Table(
    "monitor_alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True)),  # set once resolved (or when Alertmanager gives an end)
    Column("status", String(16), nullable=False),  # firing | resolved
    Column("alertname", String(255), nullable=False),
    Column("service", String(255), nullable=False),  # the alert's label (empty when it has none)
    Column("environment", String(255), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("generator_url", Text),
    Column("receiver", String(255), nullable=False),  # Alertmanager's receiver name
    Column("reported_by", String(64), nullable=False),  # the account whose token sent it
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("fingerprint", "starts_at", name="uq_monitor_alerts_fingerprint_starts_at"),
    Index("ix_monitor_alerts_service_environment", "service", "environment"),
)

# --- monitoring after a deploy (engine/monitoring.py) -------------------------------------------

# one row per monitored deployment, written when it enters `monitoring`: the window's start is
# stored so that a restarted server continues the same window
monitorings = Table(
    "monitorings",
    metadata,
    Column("deployment_id", ForeignKey("deployments.id"), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),  # the window's start
    Column("switched_at", DateTime(timezone=True), nullable=False),  # the previous release's window ends here
    Column("seconds", Float, nullable=False),  # `for`
    Column("interval", Float, nullable=False),
    Column("on_breach", String(16), nullable=False),
    Column("judge_from", Integer, nullable=False),  # the first sample judged (after kill_flags: the next one)
    Column("verdict", String(24)),  # the latest: healthy | breach | not_enough_traffic
    Column("outcome", String(32)),  # how it ended: passed | not_enough_traffic | breach | accepted | rolled_back
    Column("decision", String(16)),  # a person's "accept" or "rollback", until the loop carries it out
    Column("decided_by", String(64)),
    Column("decision_reason", Text),
    Column("breach", JSON),  # the findings that breached (the first breach), with the flags then
    Column("alerted", JSON),  # on_breach alert: the breaches recorded (and notified) while watching
    Column("flags", JSON),  # flags changed in the environment during the window
    Column("killed_flags", JSON),  # on_breach kill_flags: what Conveyor killed
    Column("ended_at", DateTime(timezone=True)),
)

# one row per interval; unique per (deployment, seq), so a step that runs again stores nothing twice
monitor_samples = Table(
    "monitor_samples",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("deployment_id", ForeignKey("deployments.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("until", DateTime(timezone=True), nullable=False),
    Column("requests", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("latency_buckets", JSON, nullable=False),
    Column("verdict", String(24), nullable=False),  # of the cumulative window up to this sample
    Column("findings", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("deployment_id", "seq", name="uq_monitor_samples_deployment_id_seq"),
)

# docs/database.md. The SQL of a deployment's migrations and its lint, made before anything runs.
migration_reports = Table(
    "migration_reports",
    metadata,
    Column("deployment_id", ForeignKey("deployments.id"), primary_key=True),
    Column("service_id", ForeignKey("services.id"), nullable=False),
    Column("environment", String(32), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("report", JSON, nullable=False),  # domain.migrations.MigrationReport.as_json()
    Column("destructive", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_migration_reports_service_sha", "service_id", "sha"),
)

# a release manager's acknowledgement of a release's findings (per commit: it covers every environment)
migration_acks = Table(
    "migration_acks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("service_id", ForeignKey("services.id"), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("user", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("rules", JSON, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_migration_acks_service_sha", "service_id", "sha"),
)

# each run of a migrate command: how long it took (the staging figure production is judged by),
# whether it passed, and the backup taken before it
migration_runs = Table(
    "migration_runs",
    metadata,
    Column("deployment_id", ForeignKey("deployments.id"), primary_key=True),
    Column("service_id", ForeignKey("services.id"), nullable=False),
    Column("environment", String(32), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("release_id", ForeignKey("releases.id")),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("seconds", Float),  # None while it runs
    Column("ok", Boolean),
    Column("maintenance", Boolean, nullable=False, default=False),
    Column("backup", Text),  # the backup file made before it (database.backup)
    Index("ix_migration_runs_service_env", "service_id", "environment"),
)
