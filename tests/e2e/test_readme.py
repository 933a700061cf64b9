"""The README cannot drift: its `qsched` commands exist as written, and its "Running it" block
runs as shown against a real broker and owner (a new user follows it literally)."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import OwnerHarness
from tests.owners import QSCHED

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Started by the test harness, or would start or stop a shared broker: only checked with --help.
NOT_RUN = ("qsched owner", "qsched broker up", "qsched broker down")


def _blocks(language: str, after: str = "") -> list[str]:
    text = README[README.index(after) :] if after else README
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[list[str]]:
    """Each command line of a shell block, split like a shell would, without its comment."""
    found = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            found.append(words)
    return found


def _qsched_commands() -> list[list[str]]:
    return [c for block in _blocks("sh") for c in _commands(block) if c[0] == "qsched"]


@pytest.mark.parametrize("words", _qsched_commands(), ids=lambda w: " ".join(w))
def test_every_qsched_command_in_the_readme_parses(words: list[str]) -> None:
    done = subprocess.run(
        [QSCHED, *words[1:], "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_python_examples_import_what_exists() -> None:
    for block in _blocks("python"):
        tree = ast.parse(block)
        imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        code = compile(ast.Module(body=imports, type_ignores=[]), "README.md", "exec")
        exec(code, {})


def test_the_running_it_block_runs_as_shown(owners: OwnerHarness, tmp_path: Path) -> None:
    owners.start("--backend", "emulator")
    block = _blocks("sh", after="## Running it")[0]
    env = {
        "PATH": f"{Path(QSCHED).parent}:/usr/bin:/bin",
        "QSCHED_AMQP_URL": owners.broker.url,
        "QSCHED_NAMESPACE": owners.broker.topology.namespace,
    }
    workdir = tmp_path / "repo"
    (workdir / "examples").mkdir(parents=True)
    (workdir / "examples" / "make_sequence.py").write_text(
        (ROOT / "examples" / "make_sequence.py").read_text()
    )
    job_id = None
    ran = []
    for words in _commands(block):
        line = " ".join(words)
        if line.startswith(NOT_RUN):
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
