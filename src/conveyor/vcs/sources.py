"""Where a service may be registered from: an allow-list of URL schemes, hosts and local directories.

A source is a clone URL (``https://host/org/repo.git``, ``ssh://…``, ``git@host:org/repo.git``) or a
local checkout (an absolute path, or a ``file://`` URL). URLs need an allowed scheme, and a host on
the host list (when one is set) that is not a loopback, private, link-local or otherwise internal
address (unless listed by name). Local checkouts must lie under one of the allowed local roots; there
are none by default. Errors name the source as given and never the server's own paths.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from conveyor.errors import Forbidden, InvalidInput
from conveyor.settings import Settings

KNOWN_SCHEMES = ("https", "http", "ssh", "git", "file")
_SCP = re.compile(r"^(?:[A-Za-z0-9._-]+@)?(?P<host>[A-Za-z0-9.-]+):(?!//)(?P<path>[^\s]+)$")
_GITHUB = re.compile(
    r"^(?:https://|ssh://git@|git@)github\.com[:/](?P<name>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$"
)

Resolver = Callable[[str], Sequence[str]]


def _resolve(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})


def _split(value: str, sep: str = ",") -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(sep) if v.strip())


@dataclass(frozen=True)
class SourcePolicy:
    schemes: tuple[str, ...]
    hosts: tuple[str, ...]  # empty: any host whose addresses are public
    local_roots: tuple[Path, ...]  # empty: no local checkouts

    @classmethod
    def of(cls, settings: Settings) -> SourcePolicy:
        return cls(
            schemes=tuple(s.lower() for s in _split(settings.source_schemes)),
            hosts=tuple(h.lower() for h in _split(settings.source_hosts)),
            local_roots=tuple(Path(p).expanduser().resolve() for p in _split(settings.source_local_roots, ":")),
        )


@dataclass(frozen=True)
class Source:
    """A checked source: a URL to mirror, or a local checkout."""

    text: str  # as given (what is stored and shown)
    url: str | None  # set for remote sources
    scheme: str | None
    local_path: Path | None  # set for local checkouts and file:// URLs

    @property
    def github_repository(self) -> str | None:
        """``owner/name`` when the source is a github.com URL."""
        match = _GITHUB.match(self.text.strip())
        return match.group("name").lower() if match else None


def _refuse(source: str, why: str, fix: str) -> Forbidden:
    return Forbidden(f"the service source {source!r} is not allowed: {why}", fix=fix)


def check_source(policy: SourcePolicy, source: str, resolve: Resolver = _resolve) -> Source:
    """The source, if the allow-list admits it; Forbidden (or InvalidInput when malformed) otherwise."""
    text = source.strip()
    if not text or any(c in text for c in "\0\n\r") or text.startswith("-"):
        raise InvalidInput(f"{source!r} is not a path or a clone URL", fix="pass a clone URL or an absolute path")
    if "::" in text.split("/", 1)[0]:  # git's transport::address syntax (ext::, fd::, …)
        raise _refuse(source, "git transport helpers are never allowed", "use an https:// or ssh:// URL")
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return _local(policy, source, Path(parts.path), scheme="file")
        return _remote(policy, source, scheme, parts.hostname or "", resolve)
    scp = _SCP.match(text)
    if scp and not text.startswith(("/", ".", "~")):
        return _remote(policy, source, "ssh", scp.group("host"), resolve)
    return _local(policy, source, Path(text), scheme=None)


def _remote(policy: SourcePolicy, source: str, scheme: str, host: str, resolve: Resolver) -> Source:
    if scheme not in KNOWN_SCHEMES or scheme not in policy.schemes:
        allowed = ", ".join(s for s in policy.schemes if s != "file") or "none"
        raise _refuse(
            source,
            f"the {scheme!r} scheme is not allowed (allowed: {allowed})",
            "use an allowed scheme, or ask an admin to allow it in CONVEYOR_SOURCE_SCHEMES",
        )
    host = host.lower().rstrip(".")
    if not host:
        raise InvalidInput(f"the clone URL {source!r} names no host", fix="pass a URL like https://host/org/repo.git")
    if policy.hosts and host not in policy.hosts:
        raise _refuse(source, f"the host {host!r} is not allowed", "ask an admin to add it to CONVEYOR_SOURCE_HOSTS")
    if host not in policy.hosts:  # listed hosts are trusted by name; others must be public addresses
        try:
            addresses = [host] if _is_ip(host) else list(resolve(host))
        except OSError as exc:
            raise InvalidInput(f"the host {host!r} of {source!r} does not resolve", fix="check the URL") from exc
        internal = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_global]
        if internal or not addresses:
            raise _refuse(
                source,
                f"the host {host!r} is an internal address",
                "clone from a public host, or ask an admin to list this host in CONVEYOR_SOURCE_HOSTS",
            )
    return Source(text=source.strip(), url=source.strip(), scheme=scheme, local_path=None)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _local(policy: SourcePolicy, source: str, path: Path, scheme: str | None) -> Source:
    if not path.is_absolute():
        raise InvalidInput(f"{source!r} is not an absolute path", fix="pass the checkout's absolute path")
    resolved = path.resolve()
    if not any(resolved == root or root in resolved.parents for root in policy.local_roots):
        raise _refuse(
            source,
            "local checkouts are only allowed under the directories in CONVEYOR_SOURCE_LOCAL_ROOTS",
            "register the service from a clone URL, or ask an admin to allow its directory",
        )
    return Source(text=str(resolved), url=None, scheme=scheme, local_path=resolved)


def allowed_protocols(policy: SourcePolicy) -> str:
    """GIT_ALLOW_PROTOCOL for clones and fetches: git refuses every other transport."""
    return ":".join(s for s in policy.schemes if s in KNOWN_SCHEMES) or "https"
