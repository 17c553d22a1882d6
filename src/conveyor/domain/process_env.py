"""What environment variables the processes Conveyor starts may inherit: an allow-list.

App instances and step commands never inherit the server's (or the agent's) environment as a
whole: that environment holds CONVEYOR_TOKEN, CONVEYOR_DATABASE_URL, the webhook secret, cloud
keys. They get a few process basics named here, the variables the operator passes on purpose
(settings ``instance_pass_env`` and ``step_pass_env``), the service's ``env`` from conveyor.yml,
and the documented CONVEYOR_* variables that describe the release. A host variable whose name
starts with CONVEYOR_ is never passed on, whatever the allow-list says. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# every process needs these to behave: find programs, speak the right locale, keep time
PROCESS_BASICS = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR")
# step commands (build, migrate, smoke, a command target's scripts) also install packages and
# call out: who they run as, proxies and CA bundles
STEP_BASICS = (
    *PROCESS_BASICS,
    "USER",
    "LOGNAME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
# defaults an instance gets unless its release's env says otherwise: Python apps write each line
# of output as it happens, so `conveyor logs` shows it at once
INSTANCE_DEFAULTS = {"PYTHONUNBUFFERED": "1"}
NEVER_PREFIX = "CONVEYOR_"
# the CONVEYOR_* variables of a step that an instance gets too: they describe its release
# (the agent adds PORT and CONVEYOR_INSTANCE)
INSTANCE_RELEASE_VARIABLES = (
    "CONVEYOR_SERVICE",
    "CONVEYOR_ENV",
    "CONVEYOR_DEPLOYMENT_ID",
    "CONVEYOR_VERSION",
    "CONVEYOR_SHA",
    "CONVEYOR_WORKDIR",
    "CONVEYOR_STATE_DIR",
    "CONVEYOR_URL",
    "CONVEYOR_SERVER_URL",
)


def parse_names(text: str | None) -> tuple[str, ...]:
    """``"DATABASE_URL, AWS_*"`` -> ``("DATABASE_URL", "AWS_*")``: names, or prefixes ending in *."""
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def _matches(name: str, pattern: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def allowed(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The variables of ``environ`` that ``names`` allow (exact names, or prefixes ending in *);
    never a CONVEYOR_* variable of the host."""
    patterns = tuple(names)
    return {
        key: value
        for key, value in environ.items()
        if not key.startswith(NEVER_PREFIX) and any(_matches(key, p) for p in patterns)
    }


def release_environment(
    host: Mapping[str, str], pass_env: Iterable[str], service_env: Mapping[str, str], step_env: Mapping[str, str]
) -> dict[str, str]:
    """The env the server sends the agent with a release: the variables the operator passes to
    instances, the service's env from conveyor.yml, and the release's CONVEYOR_* variables
    (taken from ``step_env``, the environment its steps got)."""
    described = {name: step_env[name] for name in INSTANCE_RELEASE_VARIABLES if name in step_env}
    return {**allowed(host, pass_env), **service_env, **described}


def instance_environment(
    host: Mapping[str, str],
    release_env: Mapping[str, str],
    port: int,
    instance_id: str,
    home: str | None = None,
) -> dict[str, str]:
    """An app instance's environment: basics from the agent's environment (HOME is that of the
    user the instance runs as, when given), the release's env as the server sent it, PORT and
    CONVEYOR_INSTANCE."""
    env = {**allowed(host, PROCESS_BASICS), **INSTANCE_DEFAULTS}
    if home is not None:
        env["HOME"] = home
    env.update(release_env)
    env.update({"PORT": str(port), "CONVEYOR_INSTANCE": instance_id})
    return env
