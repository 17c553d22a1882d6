"""pyproject.toml declares the flags SDK (sdk/python, conveyor-flags) at the SDK's own version, so
`pip install -e sdk/python -e .` (what `make` runs) resolves the checkout's copy."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_conveyor_declares_the_sdk_of_this_checkout() -> None:
    conveyor = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sdk = tomllib.loads((ROOT / "sdk/python/pyproject.toml").read_text())["project"]
    assert sdk["name"] == "conveyor-flags"
    assert f"conveyor-flags=={sdk['version']}" in conveyor["dependencies"]


def test_make_installs_the_sdk_from_the_checkout_in_the_same_pip_command() -> None:
    makefile = (ROOT / "Makefile").read_text()
    install = next(line for line in makefile.splitlines() if "pip install" in line and "-e '.[dev]'" in line)
    assert "-e 'sdk/python[openfeature]'" in install
