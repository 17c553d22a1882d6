"""Every source path the docs and the README name exists, so a moved module (engine/requests.py ->
engine/deployments.py) cannot leave a reference behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PATH = re.compile(r"`([A-Za-z0-9_./-]+/[A-Za-z0-9_.-]+\.py)[`:# ]")
PLACES = ("", "src/conveyor/", "src/", "sdk/python/src/")


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_named_paths_exist(doc: Path) -> None:
    missing = []
    for path in sorted(set(PATH.findall(doc.read_text()))):
        if not any((ROOT / place / path).exists() for place in PLACES):
            missing.append(path)
    assert missing == [], f"{doc.name} names files that do not exist"
