"""Every setting once: type, default, help. Each can be set as a CONVEYOR_* environment variable."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server, agent and CLI settings. ``CONVEYOR_HOME=/srv/conveyor`` sets ``home`` and so on."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    home: Path = Field(Path(".conveyor"), description="data directory: database, worktrees, step logs")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the app database; default sqlite:///HOME/conveyor.db"
    )
    workflow_database_url: str | None = Field(
        None,
        description="URL of the DBOS workflow database; default HOME/workflows.db on SQLite, "
        "the app database on PostgreSQL",
    )
    host: str = Field("127.0.0.1", description="address the server listens on")
    port: int = Field(8000, description="port the server listens on")
    server_url: str | None = Field(
        None,
        description="the server's own address, given to steps and app instances as CONVEYOR_SERVER_URL; "
        "default http://HOST:PORT it listens on (127.0.0.1 when it listens on every address)",
    )
    url: str = Field("http://127.0.0.1:8000", description="server address the CLI talks to")
    token: str | None = Field(None, description="API token the CLI sends")
    poll_interval: float = Field(5.0, description="seconds between polls of followed branches (0 = off)")
    github_webhook_secret: str | None = Field(
        None, description="secret GitHub signs push webhooks with (X-Hub-Signature-256)"
    )
    github_webhook_secrets: dict[str, str] = Field(
        default_factory=dict,
        description='per-service webhook secrets as JSON, e.g. {"shop": "..."}; a service listed here takes '
        "deliveries only at /api/v1/hooks/github/SERVICE, signed with its own secret",
    )
    service_admin_roles: str = Field(
        "admin", description="comma-separated roles that may add or re-register services (admin always may)"
    )
    evidence_reporter_roles: str = Field(
        "reporter", description="comma-separated roles that may report CI checks and reviews through the API"
    )
    source_schemes: str = Field(
        "https", description="comma-separated URL schemes services may be cloned from (https, ssh, git, http, file)"
    )
    source_hosts: str = Field(
        "", description="comma-separated hosts services may be cloned from (empty: any public host)"
    )
    source_local_roots: str = Field(
        "", description="colon-separated directories local checkouts may be registered from (empty: none)"
    )
    max_body_bytes: int = Field(1_048_576, description="largest request body the API accepts")
    output_tail_bytes: int = Field(16_384, description="how much of a step's output the journal keeps")
    agent_port: int = Field(0, description="port of the agent's loopback API (0: pick a free one)")
    router_header_timeout: float = Field(
        10.0, gt=0, description="seconds a client has to send a request head to the built-in router (then 408)"
    )
    router_idle_timeout: float = Field(
        60.0, gt=0, description="seconds the built-in router keeps an idle keep-alive client connection"
    )
    router_body_timeout: float = Field(
        30.0,
        gt=0,
        description="longest pause (seconds) in a request body, or in reading a response, at the built-in router",
    )
    router_max_connections_per_ip: int = Field(
        256, ge=1, description="open connections one client address may hold to one built-in router listener"
    )
    executor_id: str = Field("local", description="DBOS executor id of this server (unique per replica)")
    metrics_token: str | None = Field(
        None, description="bearer token Prometheus may scrape /metrics with (any user's API token works too)"
    )
    audit_key: str | None = Field(
        None,
        description="HMAC key of the audit chain (16+ characters; the same on every server of one database); "
        "default: HOME/audit.key, created on first start (0600)",
    )
    ticket_url: str | None = Field(
        None, description="link for ticket keys on the dashboard, e.g. https://jira.example.com/browse/{ticket}"
    )
    instance_pass_env: str = Field(
        "", description="server variables app instances also get, comma-separated; NAME or PREFIX* (never CONVEYOR_*)"
    )
    step_pass_env: str = Field(
        "", description="server variables step commands also get, comma-separated; NAME or PREFIX* (never CONVEYOR_*)"
    )
    agent_run_as: str | None = Field(
        None, description="unprivileged user the agent runs app instances as (the agent must run as root)"
    )

    # --- notifications (docs/notifications.md) ---------------------------------------------
    notify_people: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='Conveyor users\' chat handles and addresses as JSON, e.g. {"ron": {"slack": "U024BE7LH", '
        '"email": "ron@example.com"}}: approval requests mention and mail them',
    )
    notify_interval: float = Field(
        0.5, gt=0, description="seconds between looks at the event stream and at deliveries due for a retry"
    )
    notify_retry_base: float = Field(2.0, gt=0, description="seconds before a failed delivery's first retry")
    notify_retry_max: float = Field(
        300.0, gt=0, description="longest wait between retries (the wait doubles from notify_retry_base up to this)"
    )
    notify_give_up: float = Field(
        86400.0, gt=0, description="seconds after which a delivery still failing is given up (and shown as failed)"
    )
    notify_timeout: float = Field(30.0, gt=0, description="seconds one delivery attempt may take")
    slack_api_url: str = Field("https://slack.com/api/", description="base URL of the Slack Web API")
    github_api_url: str = Field(
        "https://api.github.com", description="base URL of the GitHub REST API (GitHub Enterprise: https://HOST/api/v3)"
    )
    smtp_url: str | None = Field(
        None,
        description="mail server for the email notifier: smtp://HOST:PORT, smtp+starttls://HOST:587 or "
        "smtps://HOST:465; user and password come from CONVEYOR_SMTP_USER / CONVEYOR_SMTP_PASSWORD",
    )
    smtp_user: str | None = Field(None, description="user for the mail server, if it needs one")
    smtp_password: str | None = Field(None, description="password for the mail server")
    smtp_from: str = Field("conveyor@localhost", description="sender address of Conveyor's mail")

    # --- monitoring signals (docs/monitoring-signals.md) ------------------------------------
    prometheus_url: str | None = Field(
        None, description="Prometheus server that monitor.queries run against, e.g. http://127.0.0.1:9090"
    )
    prometheus_token: str | None = Field(
        None, description="bearer token sent to Prometheus (when a proxy in front of it asks for one)"
    )
    prometheus_timeout: float = Field(5.0, gt=0, description="seconds one Prometheus query may take")
    alert_reporter_roles: str = Field(
        "reporter",
        description="comma-separated roles whose tokens may post Alertmanager alerts to /api/v1/alerts/alertmanager",
    )

    @cached_property
    def app_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home.resolve() / 'conveyor.db'}"

    @cached_property
    def workflows_database_url(self) -> str:
        if self.workflow_database_url:
            return self.workflow_database_url
        if self.app_database_url.startswith("sqlite"):
            return f"sqlite:///{self.home.resolve() / 'workflows.db'}"
        return self.app_database_url

    @property
    def own_url(self) -> str:
        """The server's own URL: ``server_url`` when set, else the address it listens on."""
        if self.server_url:
            return self.server_url.rstrip("/")
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def worktrees_dir(self) -> Path:
        return self.home.resolve() / "worktrees"

    @property
    def runs_dir(self) -> Path:
        """Where step processes write their output and exit codes."""
        return self.home.resolve() / "runs"

    @property
    def repos_dir(self) -> Path:
        """Mirror clones of services added by URL."""
        return self.home.resolve() / "repos"

    @property
    def state_dir(self) -> Path:
        """Per service and environment directories that command targets may keep state in."""
        return self.home.resolve() / "state"
