"""The docs in the repository are what the code says: the configuration reference is generated."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from brokers.settings import known_variables
from brokers.settings_doc import render
from schemas.budgets import Budget, BudgetsPolicy
from schemas.reservations import Reservation

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_configuration_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render(), "run: python -m brokers.settings_doc > docs/configuration.md"


def test_the_configuration_reference_names_the_budget_and_reservation_settings() -> None:
    """Issue 22: every key of the policy's budgets and reservations, and the calibration lead."""
    text = render()
    keys = [f"`budgets.{k}`" for k in BudgetsPolicy.model_fields if k != "limits"]
    keys += [f"`{k}`" for k in Budget.model_fields]
    keys += [f"`{k}`" for k in Reservation.model_fields if k != "by"]
    keys += ["`[[budgets.limits]]`", "`[[reservations]]`", "`calibration_lead_s`"]
    assert [k for k in keys if k not in text] == []


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


GENERATED = ("configuration.md", "reliability.md")  # written by tools, checked where they are made


def repeated_phrases(text: str, words: int = 6) -> list[str]:
    """Runs of `words` words that come twice within one paragraph: a paste left behind (the
    Settings section once read "... `[auth_service]`. file given by `--config` or
    `QSCHED_CONFIG`. Every key ..."). Tables and code blocks repeat on purpose and are skipped;
    an inline code span counts as one word (prose may quote a log line it just described)."""
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.lstrip().startswith(("|", "```", "    ")):
            continue
        spans = re.sub(r"`[^`]*`", lambda m: "".join(m.group(0).split()), paragraph)
        tokens = spans.split()
        seen: set[tuple[str, ...]] = set()
        for i in range(len(tokens) - words + 1):
            run = tuple(tokens[i : i + words])
            if run in seen:
                found.append(" ".join(run))
            seen.add(run)
    return found


def test_no_paragraph_of_the_docs_says_the_same_words_twice() -> None:
    """Given the README and every hand-written page of docs/, no run of six words comes twice in
    one paragraph (issue 24 item 10: the README's Settings section said part of a sentence twice;
    its text, as it was, is the first case)."""
    pasted = (
        "file given by `--config` or `QSCHED_CONFIG`. Main keys: `amqp_url`, `namespace`,\n"
        "`[auth_service]`. file given by `--config` or `QSCHED_CONFIG`. Every key, its variable"
    )
    assert repeated_phrases(pasted) == ["file given by `--config` or `QSCHED_CONFIG`."]
    pages = [p for p in sorted((ROOT / "docs").glob("*.md")) if p.name not in GENERATED]
    for path in (ROOT / "README.md", *pages):
        assert repeated_phrases(path.read_text(encoding="utf-8")) == [], path.name


def test_the_reliability_report_has_a_row_for_each_reliability_test_and_no_other() -> None:
    """docs/reliability.md (written by `make reliability`) names every test marked
    `reliability` by its node id, and only those: a scenario added, renamed or removed without
    a new report fails here."""
    files = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("test_*.py")
        if "mark.reliability" in path.read_text(encoding="utf-8")
    )
    collect = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*collect, "-m", "reliability", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    tests = {line.strip() for line in done.stdout.splitlines() if "::" in line}
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| [^|]* \| `([^`]+::[^`]+)` \|", text, re.MULTILINE))
    assert tests, "no reliability test collected"
    assert rows == tests, (
        f"run `make reliability`: in the report only {sorted(rows - tests)}, "
        f"not in the report {sorted(tests - rows)}"
    )
    assert "**FAILED**" not in text, "the committed report is of a red run"
