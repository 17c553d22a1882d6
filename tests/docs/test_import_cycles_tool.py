"""tools/import_cycles.py (run by `make lint`) on a small package made for the purpose."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOL = Path(__file__).resolve().parents[2] / "tools" / "import_cycles.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_cycles", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_cycles"] = module
    spec.loader.exec_module(module)
    return module


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "src" / "conveyor" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "src"


def test_cycles_are_found_and_told_apart(tmp_path: Path) -> None:
    tool = _tool()
    src = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from conveyor import b\n",
            "b.py": "def later():\n    from conveyor.a import thing\n",
            "c.py": "from conveyor.d import x\n",
            "d.py": "from . import c\n",
            "e.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from conveyor.f import F\n",
            "f.py": "import conveyor.e\n",
            "pkg/__init__.py": "from conveyor.pkg import inner\n",
            "pkg/inner.py": "from conveyor.pkg.other import y\n",
            "pkg/other.py": "",
        },
    )
    edges = tool.import_edges(tool.modules(src), tmp_path)
    import_time = tool.cycles([e for e in edges if e.kind == "import-time"])
    assert import_time == [["conveyor.c", "conveyor.d"]]  # a relative import is resolved
    every = tool.cycles(edges)
    assert ["conveyor.a", "conveyor.b"] in every  # through an import inside a function
    assert not any("conveyor.e" in cycle for cycle in every)  # TYPE_CHECKING imports run no code
    assert not any("conveyor.pkg" in cycle for cycle in every)  # a module's own package is not an edge


def test_conveyor_has_registration_cycles_and_they_are_allowed() -> None:
    tool = _tool()
    known = tool.modules()
    registration = tool.registration_edges(known)
    gates = {e.target for e in registration if e.source == "conveyor.gates.registry"}
    assert "conveyor.gates.deployers" in gates
    imports = tool.import_edges(known)
    assert ["conveyor.gates.deployers", "conveyor.gates.registry"] in tool.cycles(imports + registration)
    assert ["conveyor.gates.deployers", "conveyor.gates.registry"] not in tool.cycles(imports)


def test_an_import_against_the_layers_is_found(tmp_path: Path) -> None:
    """The engine reaching into the dashboard, or the domain into the store, fails `make lint`;
    the outer layer importing the inner one does not."""
    tool = _tool()
    src = _package(
        tmp_path,
        {
            "__init__.py": "",
            "engine/__init__.py": "",
            "engine/pipeline.py": "def later():\n    from conveyor.web import pages\n",
            "web/__init__.py": "",
            "web/pages.py": "from conveyor.engine import pipeline\n",
            "domain/__init__.py": "",
            "domain/clock.py": "from conveyor.store import db\n",
            "store/__init__.py": "",
            "store/db.py": "from conveyor.domain import clock\n",
        },
    )
    known = tool.modules(src)
    wrong = tool.layer_violations(tool.import_edges(known, tmp_path))
    assert sorted((e.source, e.target) for e in wrong) == [
        ("conveyor.domain.clock", "conveyor.store"),
        ("conveyor.domain.clock", "conveyor.store.db"),
        ("conveyor.engine.pipeline", "conveyor.web"),
        ("conveyor.engine.pipeline", "conveyor.web.pages"),
    ]
    assert tool.layer_violations(tool.import_edges(tool.modules(), tool.ROOT)) == []  # Conveyor itself
