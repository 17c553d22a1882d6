"""Who may change flags. Pure: roles and the environment's config in, a Decision out.

- defining flags (create, update, delete): every role (engineer and up);
- an environment's state (on, off, rollout, strategies), and a definition change of a flag that is
  on there: the environment's deployers (``deployers:`` in conveyor.yml; default every role but admin);
- the kill switch: the environment's deployers, and managers;
- SDK keys of an environment: its deployers, and admins.
"""

from __future__ import annotations

from conveyor.auth.policy import Decision, deployers
from conveyor.domain.roles import ROLES
from conveyor.spec import EnvironmentSpec


def _decide(user: str, roles: tuple[str, ...], allowed: tuple[str, ...], what: str) -> Decision:
    if any(r in allowed for r in roles):
        return Decision(True, f"{user} may {what}")
    return Decision(False, f"{user} ({', '.join(roles)}) may not {what}; only {', '.join(allowed)} may")


def may_define(user: str, roles: tuple[str, ...]) -> Decision:
    return _decide(user, roles, tuple(r for r in ROLES if r != "reporter"), "create, change or delete flags")


def may_change(user: str, roles: tuple[str, ...], environment: str, env: EnvironmentSpec) -> Decision:
    return _decide(user, roles, deployers(env), f"change flags in {environment}")


def may_kill(user: str, roles: tuple[str, ...], environment: str, env: EnvironmentSpec) -> Decision:
    allowed = tuple(dict.fromkeys((*deployers(env), "manager")))
    return _decide(user, roles, allowed, f"kill flags in {environment}")


def may_manage_keys(user: str, roles: tuple[str, ...], environment: str, env: EnvironmentSpec) -> Decision:
    allowed = tuple(dict.fromkeys((*deployers(env), "admin")))
    return _decide(user, roles, allowed, f"manage SDK keys of {environment}")
