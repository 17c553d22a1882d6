"""Conveyor: a self-hosted release platform."""

import sys
import types

__version__ = "0.1.0"

# httpx imports its own command-line client (httpx._main) when it is imported, and that imports
# click, rich's syntax highlighting and pygments: about 15% of a `conveyor` command's start. Conveyor
# never runs httpx's CLI; an empty module in its place makes httpx define its fallback `main`.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", types.ModuleType("httpx._main"))
