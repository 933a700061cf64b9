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


def test_the_readme_is_short_and_links_every_guide() -> None:
    """The README is read in five minutes; the rest is in docs/, one page per reader."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 250
    for page in ("user-guide", "operator-guide", "deploy", "design", "configuration"):
        assert f"](docs/{page}.md)" in readme, page
    for heading in ("## The two commands", "## Quick start on a shared broker"):
        assert heading in readme
    assert "QSCHED_NAMESPACE" in readme and "second terminal" in readme
