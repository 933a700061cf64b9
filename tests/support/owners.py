"""Starting real `qsched owner` processes for integration, e2e and chaos tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from producers.client import QPUClient
from producers.errors import ResultTimeout
from schemas.control import ControlReply
from schemas.enums import CommandName
from schemas.reports import StatusReport
from tests.support.environment import child_env, client_env, run_group

QSCHED = str(Path(sys.executable).with_name("qsched"))


@dataclass
class OwnerProcess:
    """A `qsched owner` child process and its log file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The owner's PID."""
        return self.process.pid

    def log(self) -> str:
        """Everything the owner logged so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the owner and its children, as a crash would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited after `grace_s`.

        Returns:
            The exit code after SIGTERM, or None when SIGKILL was needed.
        """
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                return self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.process.returncode


def start_owner(
    url: str,
    namespace: str,
    log_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
) -> OwnerProcess:
    """Start `qsched owner` on a broker and namespace (it may become active or stand by)."""
    log_path = log_dir / f"owner-{time.monotonic_ns()}.log"
    full_env = child_env(url, namespace, **(env or {}))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [QSCHED, "owner", *args],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return OwnerProcess(process, log_path)


def wait_active(client: QPUClient, timeout_s: float = 30.0) -> ControlReply:
    """Wait until some owner answers `status` (even with a refusal); returns its reply."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            reply = client.control(CommandName.STATUS, timeout=2.0)
        except ResultTimeout:
            if time.monotonic() > deadline:
                raise
            continue
        return reply


def wait_running(client: QPUClient, job_id: str, timeout_s: float = 30.0) -> StatusReport:
    """Wait until `status` shows `job_id` on the QPU."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.control(CommandName.STATUS, timeout=5.0).status
        assert status is not None
        if status.running is not None and status.running.job_id == job_id:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{job_id} never ran; last status: {status}")
        client.poll(0.05)


def wait_for_log(owner: OwnerProcess, text: str, timeout_s: float = 30.0) -> None:
    """Wait until the owner's log contains `text` (e.g. a standby announcing it waits)."""
    deadline = time.monotonic() + timeout_s
    while text not in owner.log():
        if owner.process.poll() is not None:
            raise AssertionError(f"owner exited ({owner.process.returncode}):\n{owner.log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the owner's log after {timeout_s} s")
        time.sleep(0.05)  # a file has no change notification; each look is bounded by the deadline


def run_qsched(
    url: str, namespace: str, *args: str, env: dict[str, str] | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the `qsched` CLI on a namespace in a clean environment (its reply queue expires soon)."""
    return run_group([QSCHED, *args], client_env(url, namespace, **(env or {})), timeout_s)


def register_allocation(
    client: QPUClient,
    allocation: str,
    account: str | None = None,
    end: datetime | None = None,
    user: str | None = None,
) -> ControlReply:
    """Register a Slurm allocation with the owner as the prolog would (`client` must be an
    operator or a prolog user); `user` defaults to the client's own."""
    reply = client.control(
        CommandName.ALLOCATION_STARTED,
        allocation=allocation,
        user=user or client.user,
        account=account,
        end=end,
    )
    assert reply.ok, reply.message
    return reply
