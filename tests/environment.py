"""Environments for child processes: nothing of the user's shell that could change qsched.

The session fixture `tests.conftest.isolated_env` clears ``QSCHED_*`` in the test process; these
helpers also drop ``SLURM_*`` (a job's Slurm context would leak into submitted jobs) and add only
what a test states.
"""

from __future__ import annotations

import os

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
