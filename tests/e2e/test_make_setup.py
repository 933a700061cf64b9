"""`make test` does its own set-up (issue 24, "the two commands do all the set-up"): the tools
its default tier runs besides Python (headless Chromium, tmux, promtool) are installed from
Debian's packages when make runs as root, as .ci/run does; otherwise it stops at once naming the
one command to run. Driven through the real Makefile, with a PATH that lacks the tools and stub
`id`/`apt-get` (nothing is installed for real)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make") or "/usr/bin/make"


def stub_path(tmp_path: Path, uid: int) -> dict[str, str]:
    """An environment whose PATH has only stubs: `id -u` says `uid`, `apt-get` logs its
    arguments to apt.log; chromium, tmux, promtool and prometheus are missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "apt.log"}\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path), "LANG": "C"}


def make(env: dict[str, str], *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAKE, "--no-print-directory", *targets],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_make_test_without_its_tools_stops_first_naming_the_one_command(tmp_path: Path) -> None:
    """Given no Chromium, tmux nor promtool and a user who is not root, `make test` fails before
    it builds anything or starts pytest, in one line naming what is missing and
    `sudo make test-deps` (before: pytest ran for minutes, then tests failed one by one)."""
    # BIN points nowhere: were pytest reached, it would fail at once instead of running a suite
    done = make(stub_path(tmp_path, uid=1000), "test", f"BIN={tmp_path / 'nobin'}")
    assert done.returncode != 0
    assert "the tests need chromium tmux promtool; install them with: sudo make test-deps" in (
        done.stderr
    ), done.stderr
    assert "pytest" not in done.stdout and "venv" not in done.stdout, done.stdout
    assert not (tmp_path / "apt.log").exists()


def test_make_test_deps_as_root_installs_the_debian_packages(tmp_path: Path) -> None:
    """Given the same missing tools as root, `make test-deps` installs Debian's chromium, tmux
    and prometheus packages (apt-get stubbed here), the way .ci/run does."""
    done = make(stub_path(tmp_path, uid=0), "test-deps")
    assert done.returncode == 0, done.stderr
    assert "installing what the tests run: chromium tmux promtool" in done.stdout
    installs = (tmp_path / "apt.log").read_text().splitlines()
    for package in ("chromium", "tmux", "prometheus"):
        assert any(line.startswith("install") and package in line for line in installs), installs


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    """.ci/run and the README's two commands name the same `make test` (CI tests what a
    newcomer runs)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test   #" in readme
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in ci
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
