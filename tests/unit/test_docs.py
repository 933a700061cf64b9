"""The docs in the repository are what the code says: the configuration reference is generated."""

from __future__ import annotations

import re
from pathlib import Path

from brokers.settings import known_variables
from brokers.settings_doc import render

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_configuration_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render(), "run: python -m brokers.settings_doc > docs/configuration.md"


def test_the_configuration_reference_lists_every_variable() -> None:
    text = render()
    missing = [name for name in known_variables() if f"`{name}`" not in text]
    assert not missing


def test_readme_and_docs_link_only_inside_the_repository() -> None:
    for path in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        for target in re.findall(r"\]\(([^)#]+)\)", path.read_text(encoding="utf-8")):
            assert not target.startswith(("http://", "https://")), (path.name, target)
            assert (path.parent / target).resolve().is_relative_to(ROOT), (path.name, target)
            assert (path.parent / target).exists(), (path.name, target)
        assert "../shared" not in path.read_text(encoding="utf-8"), path.name
