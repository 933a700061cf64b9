"""Headless Chromium (Debian's `chromium`, installed by `make chromium` / `.ci/run`) for tests
that check what a page really draws."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

BINARIES = ("chromium", "chromium-headless-shell")


def chromium() -> str:
    """The browser binary; fails the test (not skips) with the fix when it is missing."""
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is missing: run `make chromium` (apt-get install -y chromium)")


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def dump_dom(page: Path, tmp: Path) -> str:
    """The page's DOM after load, as Chromium serialises it."""
    done = _run(["--dump-dom", page.resolve().as_uri()], tmp)
    assert "<svg" in done.stdout, f"chromium drew nothing; stderr: {done.stderr[-1500:]}"
    return done.stdout


def screenshot(page: Path, tmp: Path, out: Path, size: tuple[int, int] = (1400, 600)) -> Path:
    """A PNG of the page at `size`."""
    done = _run(
        [
            f"--screenshot={out.resolve()}",
            f"--window-size={size[0]},{size[1]}",
            page.resolve().as_uri(),
        ],
        tmp,
    )
    assert out.exists(), f"no screenshot; stderr: {done.stderr[-1500:]}"
    return out
