"""Environments for child processes: nothing of the user's shell that could change qsched.

The session fixture `tests.conftest.isolated_env` clears ``QSCHED_*`` in the test process; these
helpers also drop ``SLURM_*`` (a job's Slurm context would leak into submitted jobs) and add only
what a test states.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess

# Subprocess clients (CLI, MPI ranks) get reply queues with random names the test cannot know;
# this short x-expires makes the broker delete them seconds after the process exits.
CHILD_REPLY_EXPIRES_MS = 10_000


def child_env(url: str, namespace: str, **extra: str) -> dict[str, str]:
    """The environment of a child process: the shell's, minus ``QSCHED_*``/``SLURM_*``, plus these.

    Args:
        url: the broker URL (``QSCHED_AMQP_URL``).
        namespace: ``QSCHED_NAMESPACE``.
        extra: further variables, e.g. ``QSCHED_OWNER__LEASE_RETRY_S``.

    Returns:
        A complete environment for `subprocess`.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QSCHED_", "SLURM_"))}
    return env | {"QSCHED_AMQP_URL": url, "QSCHED_NAMESPACE": namespace, **extra}


def client_env(url: str, namespace: str, **extra: str) -> dict[str, str]:
    """`child_env` for a process that opens clients: their reply queues expire soon after it.

    Args:
        url: the broker URL.
        namespace: the test's namespace.
        extra: further variables.

    Returns:
        A complete environment for `subprocess`.
    """
    expires = {"QSCHED_BROKER__REPLY_EXPIRES_MS": str(CHILD_REPLY_EXPIRES_MS)}
    return child_env(url, namespace, **(expires | extra))


def run_group(
    args: list[str], env: dict[str, str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """Run a command in its own process group; on timeout kill the whole group (MPI ranks too).

    Args:
        args: the command line.
        env: its complete environment (see `child_env`).
        timeout_s: how long it may run.

    Returns:
        The finished process with its text stdout and stderr.

    Raises:
        AssertionError: it ran past `timeout_s`; every process of its group was killed.
    """
    process = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"{' '.join(args[:3])}... ran past {timeout_s} s; killed. stderr:\n{stderr[-2000:]}"
        ) from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # leftovers of the group (orphaned ranks)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def queues_starting_with(prefix: str) -> list[str]:
    """Every queue on the test broker whose name starts with `prefix` (rabbitmqctl: AMQP cannot
    list queues, and the names of clients' reply queues are random)."""
    done = subprocess.run(
        ["rabbitmqctl", "list_queues", "name", "--formatter", "json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"rabbitmqctl could not list the broker's queues: {done.stderr}"
    return sorted(q["name"] for q in json.loads(done.stdout) if q["name"].startswith(prefix))
