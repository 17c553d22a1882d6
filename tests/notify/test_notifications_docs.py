"""docs/notifications.md works as written: its conveyor.yml examples load, its template example
compiles and renders, and its signature check accepts what the webhook notifier signs."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from conveyor.notify.webhook import sign
from conveyor.spec import parse_spec

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"


def blocks(lang: str) -> list[str]:
    return [text for kind, text in re.findall(r"```(\w*)\n(.*?)```", DOC.read_text(), flags=re.S) if kind == lang]


def test_the_yaml_examples_load() -> None:
    environments, templates = blocks("yaml")
    spec = parse_spec("service: shop\n" + environments, "conveyor.yml")
    assert [n.kind for n in spec.environments["production"].notify] == ["slack", "email", "github", "webhook"]
    assert spec.environments["staging"].notify[0].slack is not None
    with_templates = parse_spec(
        "service: shop\n" + templates + "environments:\n  production: {target: {kind: command, deploy: x}}\n",
        "conveyor.yml",
    )
    assert "succeeded" in with_templates.templates


def test_the_signature_check_accepts_what_conveyor_signs() -> None:
    (code,) = blocks("python")
    scope: dict[str, object] = {}
    exec(textwrap.dedent(code), scope)
    verify = scope["verify"]
    body = b'{"event":"succeeded"}'
    assert verify("s3cret", body, sign("s3cret", body))  # type: ignore[operator]
    assert not verify("s3cret", body + b" ", sign("s3cret", body))  # type: ignore[operator]


def test_the_merge_back_example_is_what_the_template_writes() -> None:
    from conveyor.notify.templating import Style, render_template

    (example,) = [b for b in blocks("") if b.startswith("🔀 Merge-back due")]
    style = Style("plain", {})
    values = {
        "mark": "",
        "service": "shop",
        "hotfix": "v0.3.1",
        "branch": "main",
        "files": ["checkout.txt"],
        "merge_back_reason": "merge-back due: main conflicts in checkout.txt",
        "environment": "production",
        "actor": "alice",
        "links": "Dashboard · Grafana",
        "mention": style.mention,
    }
    assert render_template("merge_back_due", values, None) == example.rstrip("\n")
