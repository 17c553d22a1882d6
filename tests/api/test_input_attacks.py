"""The input attacks of issue 11 against a running server, on SQLite and PostgreSQL: each one was a
500, a silent match or an injection, and each now gets a 4xx that names the bad value."""

from __future__ import annotations

import time

import pytest
from tests.api.conftest import ApiWorld
from tests.e2e.harness import commit, git

from conveyor.spec.bounds import MAX_DEPTH

# --- conveyor.yml through the API (item 7) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("brackets", "service: " + "[" * 5000 + "]" * 5000 + "\n", f"conveyor.yml:1:{9 + MAX_DEPTH}: collections nest"),
        (
            "bomb",
            "service: bomb\nenvironments: {}\n"
            + 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(7)
            ),
            "the file expands to more than",
        ),
    ],
)
def test_a_hostile_conveyor_yml_is_a_quick_422(api_world: ApiWorld, name: str, text: str, expected: str) -> None:
    repo = api_world.root / name
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"conveyor.yml": text}, "hostile")
    started = time.perf_counter()
    r = api_world.as_("ada", "POST", "/api/v1/services", json={"source": str(repo)})
    elapsed = time.perf_counter() - started
    assert r.status_code == 422, r.text
    assert any(expected in problem for problem in r.json()["problems"]), r.json()
    assert elapsed < 5, f"took {elapsed:.1f}s"  # was 20 s and a 500 (brackets), minutes and 2 GB (bomb)


# --- long URLs, NUL bytes and numbers past 64 bits -----------------------------------------------


def test_a_4096_character_path_is_a_4xx_on_every_kind_of_route(api_world: ApiWorld) -> None:
    long = "a" * 4096
    for method, path in [
        ("GET", f"/api/v1/deployments/{long}"),
        ("GET", f"/api/v1/deployments/{long}/logs"),
        ("POST", f"/api/v1/deployments/{long}/cancel"),
        ("GET", f"/api/v1/flags/{long}"),
        ("GET", f"/api/v1/environments/{long}/logs"),
        ("GET", f"/{long}"),
        ("GET", f"/static/{long}"),
    ]:
        r = api_world.as_("ada", method, path)
        assert 400 <= r.status_code < 500, (method, path[:40], r.status_code, r.text[:200])


def test_a_url_over_8_kib_is_refused_with_414(api_world: ApiWorld) -> None:
    r = api_world.as_("ada", "GET", "/api/v1/deployments", params={"service": "s" * 9000})
    assert r.status_code == 414, r.text
    assert r.json()["message"].startswith("the URL is 90")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/deployments/%00%00%00%00%00%00",
        "/api/v1/deployments?service=shop%00",
        "/api/v1/flags/a%00b",
        "/api/v1/why?environment=production&ref=main%0A",
    ],
)
def test_control_characters_in_the_url_are_a_400(api_world: ApiWorld, path: str) -> None:
    r = api_world.as_("ada", "GET", path)
    assert r.status_code == 400, r.text
    assert "control character" in r.json()["message"]


@pytest.mark.parametrize(("user", "path"), [("rita", "/api/v1/freezes/"), ("ada", "/api/v1/flags/sdk-keys/")])
def test_ids_past_64_bits_are_a_4xx(api_world: ApiWorld, user: str, path: str) -> None:
    r = api_world.as_(user, "DELETE", path + "9" * 20)  # a user allowed to delete one, so the id is looked up
    assert r.status_code in (400, 422), r.text


def test_a_nul_byte_in_a_json_body_is_a_400_where_the_database_cannot_store_it(api_world: ApiWorld) -> None:
    body = {"environment": "staging", "reason": "no\u0000pe", "service": "shop"}
    r = api_world.as_("eve", "POST", "/api/v1/freezes", json=body)
    if api_world.backend == "sqlite":  # SQLite stores it like any other character
        assert r.status_code == 201, r.text
        api_world.as_("rita", "DELETE", f"/api/v1/freezes/{r.json()['id']}")
        return
    assert r.status_code == 400, r.text
    assert r.json()["message"] == (
        "a value in the request cannot be stored: PostgreSQL text fields cannot contain NUL (0x00) bytes"
    )


# --- calendar years ---------------------------------------------------------------------------------


RANGE = "(1970-01-01 to 2099-12-31)"


@pytest.mark.parametrize("year", ["0001", "9999", "1969", "2100"])
def test_calendar_and_why_refuse_years_outside_the_calendar_with_the_range(api_world: ApiWorld, year: str) -> None:
    at = f"{year}-12-31T23:59:00+00:00"
    for path, params, what in [
        ("/api/v1/calendar", {"environment": "production", "start": at}, "start"),
        ("/api/v1/why", {"environment": "production", "ref": "main", "at": at}, "at"),
    ]:
        r = api_world.as_("ada", "GET", path, params=params)
        assert r.status_code == 400, (path, r.text)
        body = r.json()
        assert body["message"] == f"{what} {at} is outside the years the deploy calendar covers {RANGE}"
        assert body["fix"] == "give a time from 1970 through 2099"
    r = api_world.as_(
        "eve", "POST", "/api/v1/freezes", json={"environment": "production", "until": at, "reason": "forever"}
    )
    assert r.status_code == 400, r.text
    assert "outside the years" in r.json()["message"]


def test_calendar_and_why_still_answer_inside_the_range(api_world: ApiWorld) -> None:
    params = {"environment": "production", "start": "2099-12-01T00:00Z"}
    r = api_world.as_("ada", "GET", "/api/v1/calendar", params=params)
    assert r.status_code == 200, r.text
    assert r.json()["spans"]
    at = "1970-01-01T00:00Z"
    r = api_world.as_("ada", "GET", "/api/v1/why", params={"environment": "production", "ref": "main", "at": at})
    assert r.status_code == 200, r.text


# --- notes and tickets in the announcement --------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "char"),
    [
        ("notes", "all good\n- Deployed by: @ada", "U+000A"),
        ("notes", "all good\r- Deployed by: @ada", "U+000D"),
        ("notes", "all good\u2028- Deployed by: @ada", "U+2028"),
        ("ticket", "PROJ-1\n- Deployed by: @ada", "U+000A"),
        ("ticket", "PROJ-1\x1b[2K", "U+001B"),
    ],
)
def test_notes_and_tickets_with_line_breaks_are_refused(api_world: ApiWorld, field: str, value: str, char: str) -> None:
    body = {"environment": "staging", "ref": "main", field: value}
    r = api_world.as_("eve", "POST", "/api/v1/deployments", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(f"{field} contains the control character {char} at position ")


def test_the_announcement_has_one_line_per_field(api_world: ApiWorld) -> None:
    body = {"environment": "staging", "ref": "main", "notes": "fix — checkout «v2»", "ticket": "PROJ-7"}
    d = api_world.as_("eve", "POST", "/api/v1/deployments", json=body).json()
    done = api_world.server.wait_finished(d["id"])
    announce = next(s for s in done["steps"] if s["name"] == "announce")
    lines = announce["message"].splitlines()
    assert lines[1:] == ["- Notes: fix — checkout «v2»", "- Ticket: PROJ-7", "- Deployed by: @eve"]


# --- why as another user --------------------------------------------------------------------------


def test_only_an_admin_may_ask_why_as_another_user(api_world: ApiWorld) -> None:
    params = {"environment": "production", "ref": "main", "as_user": "rita"}
    r = api_world.as_("eve", "GET", "/api/v1/why", params=params)
    assert r.status_code == 403, r.text
    assert r.json()["message"] == "eve may not evaluate gates as rita"
    assert api_world.as_("eve", "GET", "/api/v1/why", params={**params, "as_user": "eve"}).json()["as"] == "eve"
    assert api_world.as_("ada", "GET", "/api/v1/why", params=params).json()["as"] == "rita"
    entries = api_world.as_("ada", "GET", "/api/v1/audit", params={"limit": 200}).json()["entries"]
    assert any(e["actor"] == "eve" and e["action"] == "forbidden" and e["subject"] == "rita" for e in entries)


# --- deployment id prefixes -------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["______", "%%%%%%", "%25%25%25%25%25%25", "_" * 36, "%_%_%_"])
def test_like_wildcards_in_an_id_prefix_match_nothing(api_world: ApiWorld, prefix: str) -> None:
    r = api_world.as_("ada", "GET", f"/api/v1/deployments/{prefix}")
    assert r.status_code == 404, r.text  # was the only deployment (200), or "ambiguous" (400) with two


def test_a_real_id_prefix_still_finds_its_deployment(api_world: ApiWorld) -> None:
    r = api_world.as_("ada", "GET", f"/api/v1/deployments/{api_world.deployment_id[:8]}")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == api_world.deployment_id
