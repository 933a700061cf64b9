"""The rooms of `consumers/` (issue 23 step 6): which room may import which.

`core/` is pure and imports no other room; backends and plugins serve the owner but never
import it; the operator tools read the log or a policy file and never import the owner process.
The one edge out of `owner/` into `tools/` is the owner's CLI reporting a bad policy file the way
`qsched policy check` does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CONSUMERS = Path(__file__).resolve().parents[2] / "consumers"
ROOMS = ("core", "owner", "backends", "plugins", "tools")
MAY_NOT_IMPORT = {
    "core": {"owner", "backends", "plugins", "tools"},
    "backends": {"owner", "plugins", "tools"},
    "plugins": {"owner", "tools"},
    "tools": {"owner"},
    "owner": {"tools"},
}
ALLOWED = {("owner/cli.py", "consumers.tools.policycheck.cli")}


def _consumer_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("consumers.")}


def test_every_module_of_consumers_is_in_a_room() -> None:
    loose = {p.name for p in CONSUMERS.glob("*.py")} - {"__init__.py", "errors.py"}
    assert not loose, f"modules outside a room: {sorted(loose)}"
    packages = {p.parent.name for p in CONSUMERS.glob("*/__init__.py")}
    assert packages == set(ROOMS)


@pytest.mark.parametrize("room", ROOMS)
def test_a_room_imports_only_the_rooms_it_may(room: str) -> None:
    crossings = []
    for path in sorted((CONSUMERS / room).rglob("*.py")):
        relative = path.relative_to(CONSUMERS).as_posix()
        for name in _consumer_imports(path):
            target = name.split(".")[1]
            if target in MAY_NOT_IMPORT[room] and (relative, name) not in ALLOWED:
                crossings.append(f"{relative} imports {name}")
    assert not crossings, crossings
