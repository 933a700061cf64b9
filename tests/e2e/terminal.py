"""A real terminal for tests of full-screen commands: a detached tmux session of a fixed size on a
tmux server of the test's own (`make tmux` / `.ci/run` install tmux when missing)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

# Variables the terminal sets itself; the session's must be tmux's, not the test runner's.
TERMINAL_VARIABLES = ("TERM", "COLUMNS", "LINES", "TMUX", "TMUX_PANE")


def tmux() -> str:
    """The tmux binary; fails the test (not skips) with the fix when it is missing."""
    found = shutil.which("tmux")
    if not found:
        pytest.fail("tmux is missing: run `make tmux` (apt-get install -y tmux)")
    return found


class TmuxTerminal:
    """One command in a detached `width` x `height` tmux session; its exit code and terminal
    modes after it are written next to it (`exit_code`, `stty_after`)."""

    def __init__(self, tmp: Path, command: list[str], env: dict[str, str], size: tuple[int, int]):
        self.tmp = tmp
        self.server = f"qsched-test-{uuid.uuid4().hex[:10]}"  # never another test's server
        self.rc_file = tmp / f"{self.server}.rc"
        self.stty_file = tmp / f"{self.server}.stty"
        script = tmp / f"{self.server}.sh"
        exports = "".join(
            f"export {k}={shlex.quote(v)}\n"
            for k, v in env.items()
            if k not in TERMINAL_VARIABLES and k.isidentifier()
        )
        script.write_text(
            "#!/bin/sh\n"
            "trap : INT\n"  # Ctrl-C reaches the command; the script lives on to write its code
            f"{exports}"
            f"{shlex.join(command)}\n"
            f"echo $? > {shlex.quote(str(self.rc_file))}.tmp\n"
            f"stty -a > {shlex.quote(str(self.stty_file))}\n"
            f"mv {shlex.quote(str(self.rc_file))}.tmp {shlex.quote(str(self.rc_file))}\n"
        )
        script.chmod(0o755)
        width, height = size
        self._tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-s", "t", str(script))

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            [tmux(), "-L", self.server, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, f"tmux {' '.join(args)}: {done.stderr}"
        return done.stdout

    def capture(self) -> list[str]:
        """The screen as it is now, one string per row (trailing blanks removed)."""
        if self.exit_code() is not None:
            return []
        try:
            screen = self._tmux("capture-pane", "-p", "-t", "t")
        except AssertionError:  # the session ended between the check and the capture
            return []
        return [line.rstrip() for line in screen.removesuffix("\n").split("\n")]

    def send_keys(self, *keys: str) -> None:
        """Type `keys` (tmux key names: ``q``, ``C-c``)."""
        self._tmux("send-keys", "-t", "t", *keys)

    def exit_code(self) -> int | None:
        """The command's exit code once it ended, else None."""
        if not self.rc_file.exists():
            return None
        return int(self.rc_file.read_text().strip())

    def stty_after(self) -> str:
        """``stty -a`` of the terminal after the command ended (were its modes restored?)."""
        return self.stty_file.read_text()

    def close(self) -> None:
        """Kill this test's tmux server (and whatever still runs in it)."""
        subprocess.run(
            [tmux(), "-L", self.server, "kill-server"], capture_output=True, timeout=30, check=False
        )
