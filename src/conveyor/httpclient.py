"""Outbound HTTP: every httpx client of Conveyor reuses one TLS context per process.

httpx builds a new TLS context for each ``Client`` (and each ``httpx.get``), loading certifi's CA
bundle: about 60 ms of CPU every time. A server polling Prometheus, a notifier posting a webhook, a
command talking to the server, each made one per request. ``client`` and ``get``/``post`` make the
same clients with a context built once (``httpx.create_ssl_context()``: the same trust, including
``SSL_CERT_FILE``/``SSL_CERT_DIR``). For a plain ``http://`` base URL no CA bundle is loaded at all:
that client gets a context that still verifies but trusts nothing, so a request it is sent to an
``https://`` address fails verification rather than go unchecked.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls() -> ssl.SSLContext:
    """The process's TLS context for https (httpx's default trust), made on first use."""
    return httpx.create_ssl_context()


@functools.cache
def _trusts_nothing() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and host names; no CA loaded


def verify_for(url: str | httpx.URL) -> ssl.SSLContext:
    """The context for a client of ``url``: the shared one for https, a CA-less one for plain http."""
    return tls() if str(url).lower().startswith("https:") else _trusts_nothing()


def client(base_url: str = "", **kwargs: Any) -> httpx.Client:
    """``httpx.Client(base_url, ...)`` without a new TLS context (without any for an http base URL)."""
    kwargs.setdefault("verify", verify_for(base_url) if base_url else tls())
    return httpx.Client(base_url=base_url, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    """``httpx.get`` without a new TLS context."""
    return httpx.get(url, verify=verify_for(url), **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    """``httpx.post`` without a new TLS context."""
    return httpx.post(url, verify=verify_for(url), **kwargs)
