"""GitHub webhook signatures and push events."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

import pytest

from conveyor.errors import InvalidInput
from conveyor.vcs.webhooks import PushEvent, parse_push_event, verify_github_signature

# The worked example from GitHub's "Validating webhook deliveries" page.
DOC_SECRET = "It's a Secret to Everybody"
DOC_BODY = b"Hello, World!"
DOC_HEADER = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_githubs_documented_example_verifies() -> None:
    assert verify_github_signature(DOC_SECRET, DOC_BODY, DOC_HEADER)
    assert verify_github_signature(DOC_SECRET.encode(), DOC_BODY, DOC_HEADER)
    assert verify_github_signature(DOC_SECRET, DOC_BODY, DOC_HEADER.upper().replace("SHA256=", "sha256="))


def test_tampered_body_is_refused() -> None:
    assert not verify_github_signature(DOC_SECRET, b"Hello, World?", DOC_HEADER)
    assert not verify_github_signature(DOC_SECRET, DOC_BODY + b"\n", DOC_HEADER)


def test_wrong_secret_is_refused() -> None:
    assert not verify_github_signature("It's a secret to everybody", DOC_BODY, DOC_HEADER)
    assert not verify_github_signature("", DOC_BODY, DOC_HEADER)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",  # no scheme
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",  # short
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17ff",  # long
        "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=",
        "sha256=é57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    ],
)
def test_missing_or_garbled_header_is_refused(header: str | None) -> None:
    assert not verify_github_signature(DOC_SECRET, DOC_BODY, header)


def test_never_raises_on_odd_input() -> None:
    assert not verify_github_signature(DOC_SECRET, DOC_BODY, 12345)  # type: ignore[arg-type]
    assert not verify_github_signature(None, DOC_BODY, DOC_HEADER)  # type: ignore[arg-type]
    assert not verify_github_signature(DOC_SECRET, "text", DOC_HEADER)  # type: ignore[arg-type]


def test_signature_over_a_json_delivery() -> None:
    body = json.dumps(PUSH).encode()
    header = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert verify_github_signature("s3cret", body, header)
    assert not verify_github_signature("s3cret", json.dumps(PUSH, indent=2).encode(), header)


# A push event as GitHub delivers it (trimmed of a few URL fields).
PUSH: dict[str, Any] = {
    "ref": "refs/heads/main",
    "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "repository": {
        "id": 186853002,
        "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": "shop",
        "full_name": "octo-org/shop",
        "private": False,
        "owner": {"name": "octo-org", "login": "octo-org", "id": 21031067, "type": "Organization"},
        "html_url": "https://github.com/octo-org/shop",
        "url": "https://github.com/octo-org/shop",
        "git_url": "git://github.com/octo-org/shop.git",
        "ssh_url": "git@github.com:octo-org/shop.git",
        "clone_url": "https://github.com/octo-org/shop.git",
        "default_branch": "main",
        "master_branch": "main",
        "pushed_at": 1557933657,
    },
    "pusher": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
    "sender": {"login": "Codertocat", "id": 21031067, "type": "User", "site_admin": False},
    "created": False,
    "deleted": False,
    "forced": False,
    "base_ref": None,
    "compare": "https://github.com/octo-org/shop/compare/6113728f27ae...0d1a26e67d8f",
    "commits": [
        {
            "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
            "distinct": True,
            "message": "Update README.md",
            "timestamp": "2019-05-15T15:20:30-04:00",
            "url": "https://github.com/octo-org/shop/commit/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            "author": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
            "committer": {"name": "GitHub", "email": "noreply@github.com"},
            "added": [],
            "removed": [],
            "modified": ["README.md"],
        }
    ],
    "head_commit": {
        "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "message": "Update README.md",
        "timestamp": "2019-05-15T15:20:30-04:00",
    },
}


def push(**changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(PUSH)
    payload.update(changes)
    return payload


def test_branch_push() -> None:
    assert parse_push_event(PUSH) == PushEvent(
        repository="octo-org/shop",
        clone_url="https://github.com/octo-org/shop.git",
        ssh_url="git@github.com:octo-org/shop.git",
        html_url="https://github.com/octo-org/shop",
        ref="refs/heads/main",
        branch="main",
        after="0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        deleted=False,
        pusher="Codertocat",
    )
    assert parse_push_event(PUSH).tag is None


def test_branch_with_slashes() -> None:
    event = parse_push_event(push(ref="refs/heads/hotfix/login-crash"))
    assert event.branch == "hotfix/login-crash"


def test_tag_push() -> None:
    event = parse_push_event(push(ref="refs/tags/v1.4.0", base_ref="refs/heads/main", created=True))
    assert event.branch is None
    assert event.tag == "v1.4.0"
    assert not event.deleted


def test_branch_deletion() -> None:
    payload = push(
        ref="refs/heads/feature/old",
        after="0000000000000000000000000000000000000000",
        deleted=True,
        commits=[],
        head_commit=None,
    )
    event = parse_push_event(payload)
    assert event.deleted
    assert event.branch == "feature/old"
    assert event.after == "0" * 40


def test_deleted_is_inferred_when_absent() -> None:
    gone = push(after="0" * 40)
    del gone["deleted"]
    assert parse_push_event(gone).deleted
    present = push()
    del present["deleted"]
    assert not parse_push_event(present).deleted


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        ("ref", "ref"),
        ("after", "after"),
        ("repository", "repository.full_name"),
        ("repository.full_name", "repository.full_name"),
        ("repository.clone_url", "repository.clone_url"),
        ("repository.ssh_url", "repository.ssh_url"),
        ("repository.html_url", "repository.html_url"),
        ("pusher", "pusher.name"),
        ("pusher.name", "pusher.name"),
    ],
)
def test_missing_field_is_named(removed: str, named: str) -> None:
    payload = push()
    *parents, last = removed.split(".")
    holder = payload
    for key in parents:
        holder = holder[key]
    del holder[last]
    with pytest.raises(InvalidInput) as caught:
        parse_push_event(payload)
    assert caught.value.message == f"push event has no '{named}' field"


def test_wrong_field_type_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"'repository\.full_name' should be a str, not int"):
        parse_push_event(push(repository={**PUSH["repository"], "full_name": 42}))
    with pytest.raises(InvalidInput, match=r"no 'pusher\.name' field"):
        parse_push_event(push(pusher="Codertocat"))


def test_payload_must_be_an_object() -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        parse_push_event([])  # type: ignore[arg-type]
