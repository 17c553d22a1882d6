"""domain/links.py: environments' link templates expanded for a deployment, safely."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.domain.links import (
    LinkContext,
    LinkError,
    check_template,
    expand,
    expand_all,
    link_window,
    links_for,
)

SINCE = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
UNTIL = SINCE + timedelta(minutes=30)
GRAFANA = "https://grafana.example.com/d/abc/svc?var-service={service}&var-env={environment}&from={from}&to={to}"


def ctx(**kw: str) -> LinkContext:
    return LinkContext(
        kw.get("service", "shop"), kw.get("environment", "production"), kw.get("version", "v1.4.0"), SINCE, UNTIL
    )


def test_grafana_and_sentry() -> None:
    assert expand(GRAFANA, ctx()) == (
        "https://grafana.example.com/d/abc/svc?var-service=shop&var-env=production&from=1795780800000&to=1795782600000"
    )
    sentry = "https://sentry.io/organizations/acme/issues/?query=release%3A{version}&start={from_iso}&end={to_iso}"
    assert expand(sentry, ctx()) == (
        "https://sentry.io/organizations/acme/issues/?query=release%3Av1.4.0"
        "&start=2026-11-27T12%3A00%3A00Z&end=2026-11-27T12%3A30%3A00Z"
    )
    assert expand("https://x.example/{{literal}}/{service}", ctx()) == "https://x.example/{literal}/shop"


HOSTILE = ["v1&admin=1", "v1#frag", "v1/../../etc", "a b?c=d", "@evil.example", "x\r\nSet-Cookie: a", "é/ü", "%2F", ""]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_stays_in_its_parameter(value: str) -> None:
    url = expand("https://grafana.example.com/d/x?v={version}&s={service}", ctx(version=value))
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == ("https", "grafana.example.com", "/d/x", "")
    assert parse_qs(parts.query, keep_blank_values=True) == {"v": [value], "s": ["shop"]}
    assert not any(c in url for c in " \r\n")


def test_a_value_in_the_host_cannot_move_it() -> None:
    url = expand("https://{service}.sentry.example/issues", ctx(service="evil.example/x#"))
    assert urlsplit(url).netloc == "evil.example%2Fx%23.sentry.example"


@given(st.text())
def test_any_value_round_trips(value: str) -> None:
    url = expand("https://h.example/p?v={version}", ctx(version=value))
    parts = urlsplit(url)
    assert parts.netloc == "h.example" and parts.path == "/p" and parts.fragment == ""
    assert parse_qs(parts.query, keep_blank_values=True).get("v", [""]) == [value]


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("https://x.example/?q={sha}", "unknown placeholder {sha}"),
        ("javascript:alert(1)//{service}", "not an http(s) URL"),
        ("{service}://x", "not an http(s) URL"),
        ("ftp://x.example/{version}", "not an http(s) URL"),
    ],
)
def test_refused_templates(template: str, says: str) -> None:
    with pytest.raises(
        LinkError, match=says.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{").replace("}", r"\}")
    ):
        check_template("Bad", template)
    assert expand_all({"Bad": template, "Grafana": GRAFANA}, ctx()) == [("Grafana", expand(GRAFANA, ctx()))]


def test_naive_times_are_refused() -> None:
    with pytest.raises(LinkError, match="no time zone"):
        expand(GRAFANA, LinkContext("shop", "production", "v1", SINCE.replace(tzinfo=None), UNTIL))


def test_link_window() -> None:
    switched = SINCE
    assert link_window(switched, SINCE + timedelta(minutes=30), 1800) == (
        SINCE - timedelta(minutes=30),
        SINCE + timedelta(minutes=30),
    )
    assert link_window(switched, None, 600) == (SINCE - timedelta(minutes=10), SINCE + timedelta(minutes=10))


def test_links_for_a_deployment() -> None:
    links = {"Grafana": "https://g.example/d?from={from}&to={to}&v={version}", "Bad": "https://x/{nope}"}
    found = links_for(links, "shop", "production", "v2 beta", SINCE, None)
    assert found == [("Grafana", "https://g.example/d?from=1795779000000&to=1795782600000&v=v2%20beta")]
