"""A real munged of the test's own (temp key, socket, pid and log), for MUNGE and Slurm tests.

munged runs as root without ``--force`` here; its socket directory must be world-executable
(0755) or it refuses ("Socket is inaccessible"). Needs MUNGE installed (`infra/slurm/deps.sh`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QSCHED = str(Path(sys.executable).with_name("qsched"))
AUTH_PLUGINS = ("rabbitmq_auth_backend_http", "rabbitmq_auth_backend_cache")


@dataclass
class Munged:
    """One munged; `socket` is what clients pass as ``-S`` (or ``QSCHED_MUNGE_SOCKET``)."""

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="qsched-munge-")))
    socket_path: Path | None = None  # None: a socket in `base`

    @property
    def socket(self) -> Path:
        return self.socket_path or self.base / "sock" / "munge.socket"

    @property
    def key(self) -> Path:
        return self.base / "munge.key"

    def start(self, timeout_s: float = 30.0) -> Munged:
        """Create a key and start munged; returns once its socket answers."""
        os.chmod(self.base, 0o755)
        (self.base / "sock").mkdir(mode=0o755, exist_ok=True)
        os.chmod(self.base / "sock", 0o755)
        if not self.key.exists():
            subprocess.run(["mungekey", "-c", "-k", str(self.key)], check=True, timeout=30)
        subprocess.run(
            [
                "munged",
                f"--socket={self.socket}",
                f"--key-file={self.key}",
                f"--pid-file={self.base / 'munged.pid'}",
                f"--log-file={self.base / 'munged.log'}",
                f"--seed-file={self.base / 'munged.seed'}",
            ],
            check=True,
            timeout=30,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            probe = subprocess.run(
                ["munge", "-S", str(self.socket), "-n"],
                capture_output=True,
                timeout=10,
                check=False,
            )
            if probe.returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"munged did not answer: {probe.stderr.decode()}")
            time.sleep(0.1)

    def pid(self) -> int | None:
        path = self.base / "munged.pid"
        return int(path.read_text()) if path.exists() else None

    def stop(self, remove: bool = True) -> None:
        """Stop munged by its pid file; delete its directory unless `remove` is False."""
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)


def munge_installed() -> bool:
    """Whether munged, munge and unmunge are on PATH."""
    return all(shutil.which(p) for p in ("munged", "munge", "unmunge", "mungekey"))


def auth_http_config(port: int) -> tuple[str, ...]:
    """The shipped `infra/rabbitmq/auth-http.conf`, pointed at an auth service on `port`."""
    text = (ROOT / "infra" / "rabbitmq" / "auth-http.conf").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return tuple(ln.replace(":8099/", f":{port}/") for ln in lines)


def start_auth(
    policy: Path | None, port: int, socket: Path, log: Path, namespace: str
) -> subprocess.Popen[bytes]:
    """A real `qsched auth serve` on `port`; returns once it listens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QSCHED_")}
    env |= {"QSCHED_NAMESPACE": namespace, "QSCHED_MUNGE_SOCKET": str(socket)}
    args = [QSCHED, "auth", "serve", "--port", str(port)]
    args += ["--policy", str(policy)] if policy is not None else []
    with open(log, "ab") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while "qsched auth service on" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"auth service did not start: {log.read_text()}")
        time.sleep(0.1)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process group started with `start_new_session`, and wait for it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


DEFAULT_SOCKET = Path("/run/munge/munge.socket.2")  # libmunge's default (Debian's build)
_DEFAULT_LOCK = Path("/run/munge/.qsched-tests.lock")


@contextlib.contextmanager
def default_munged() -> Iterator[Path]:
    """A munged on libmunge's default socket, for clients that cannot be told another one (the
    qrmi wheel calls ``munge_encode`` with no context): the machine's own if one answers there,
    else one started here and stopped when the last test process using it is done (a shared
    flock on a file beside the socket counts the users)."""
    DEFAULT_SOCKET.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(DEFAULT_SOCKET.parent, 0o755)
    with open(_DEFAULT_LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started: Munged | None = None
        if not _answers(None):
            started = Munged()
            started.socket_path = DEFAULT_SOCKET
            started.start()
        fcntl.flock(lock, fcntl.LOCK_SH)  # downgrade: others may use it too
        try:
            yield DEFAULT_SOCKET
        finally:
            if started is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # another test process still uses it: it stops it
                started.stop()


def _answers(socket: Path | None) -> bool:
    args = ["munge", "-n"] + (["-S", str(socket)] if socket is not None else [])
    return subprocess.run(args, capture_output=True, timeout=10, check=False).returncode == 0
