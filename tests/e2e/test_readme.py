"""The README and the guides cannot drift: their `qsched` commands exist as written, and the
README's quick start runs as shown against a real broker and owner (a new user follows it
literally: both terminals, the CLI and the Pulser example)."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from brokers.cli import main as cli_main
from tests.conftest import OwnerHarness
from tests.support.environment import client_env
from tests.support.owners import QSCHED

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Every page a user is told to read: the README and the guides under docs/.
PAGES = {
    p.name: p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *ROOT.glob("docs/*.md")]
}
QUICK_START = "## Quick start on a shared broker"
# Started by the test harness, or would start or stop a shared broker: only checked with --help.
NOT_RUN = ("qsched owner", "qsched broker up", "qsched broker down")
NAMESPACE = re.compile(r"^[A-Za-z0-9_-]+$")


def _blocks(text: str, language: str, after: str = "") -> list[str]:
    if after:
        start = text.index(after)
        end = text.find("\n## ", start + len(after))
        text = text[start : end if end != -1 else len(text)]
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[list[str]]:
    """Each command line of a shell block, split like a shell would, without its comment."""
    found = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            found.append(words)
    return found


def _qsched_commands() -> list[tuple[str, list[str]]]:
    return [
        (name, c)
        for name, text in PAGES.items()
        for block in _blocks(text, "sh")
        for c in _commands(block)
        if c[0] == "qsched"
    ]


@pytest.mark.parametrize(
    ("page", "words"), _qsched_commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v)
)
def test_every_qsched_command_in_the_readme_and_guides_parses(page: str, words: list[str]) -> None:
    # In-process through the very entry point the `qsched` script calls (`brokers.cli:main`):
    # the same parse without paying a Python start per command (the quick start below runs the
    # real script). An unknown command or option exits 2 with its usage error.
    done = CliRunner().invoke(cli_main, [*words[1:], "--help"])
    assert done.exit_code == 0, (page, done.output)


@pytest.mark.parametrize("page", sorted(n for n, t in PAGES.items() if "```python" in t))
def test_the_python_examples_import_what_exists(page: str) -> None:
    for block in _blocks(PAGES[page], "python"):
        tree = ast.parse(block)
        imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        code = compile(ast.Module(body=imports, type_ignores=[]), page, "exec")
        exec(code, {})


def _exported_namespace(block: str) -> str:
    exports = [w[1] for w in _commands(block) if w[0] == "export"]
    values = [e.split("=", 1)[1] for e in exports if e.startswith("QSCHED_NAMESPACE=")]
    assert len(values) == 1, f"a quick-start terminal must export QSCHED_NAMESPACE once: {block}"
    return values[0]


def test_the_quick_start_runs_as_shown(owners: OwnerHarness, tmp_path: Path) -> None:
    """Given the README's three shell blocks and its Pulser example, when a newcomer runs them
    in order (the owner in a second terminal), then each command exits 0 and the jobs end DONE."""
    first, second, third = _blocks(README, "sh", after=QUICK_START)
    (pulser_example,) = _blocks(README, "python", after=QUICK_START)
    # Both terminals use the same, user-chosen namespace (never the shared default `qpu`).
    namespace = _exported_namespace(first)
    assert namespace == _exported_namespace(second)
    assert NAMESPACE.match(namespace.replace("$USER", "alice")), namespace
    (owner_line,) = [w for w in _commands(second) if w[:2] == ["qsched", "owner"]]
    owners.start(*owner_line[2:])  # the harness's namespace stands for $USER-try

    env = client_env(owners.broker.url, owners.broker.topology.namespace)
    env["PATH"] = f"{Path(QSCHED).parent}:/usr/bin:/bin"
    workdir = tmp_path / "repo"
    (workdir / "examples").mkdir(parents=True)
    (workdir / "examples" / "make_sequence.py").write_text(
        (ROOT / "examples" / "make_sequence.py").read_text()
    )
    job_id = None
    ran = []
    for words in _commands(first) + _commands(third):
        line = " ".join(words)
        if line.startswith(NOT_RUN) or words[0] in (".", "export"):
            continue
        if words[0] == "python":
            words = [sys.executable, *words[1:]]
        if "JOB_ID" in words:
            assert job_id is not None, "the README uses JOB_ID before submitting a job"
            words = [job_id if w == "JOB_ID" else w for w in words]
        done = subprocess.run(
            words, cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        if words[:2] == ["qsched", "submit"]:
            job_id = done.stderr.split("submitted ", 1)[1].split()[0]
            assert f"{job_id} DONE" in done.stdout
        ran.append(line)
    assert any(r.startswith("qsched submit") for r in ran) and len(ran) >= 8, ran
    assert os.path.exists(workdir / "examples" / "sequence.json")

    done = subprocess.run(
        [sys.executable, "-c", pulser_example],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counts = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert sum(counts.values()) == 100 and all(set(k) <= {"0", "1"} for k in counts), counts
