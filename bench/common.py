"""Shared pieces of the benchmarks: a broker, fresh namespaces, owner processes, statistics.

Benchmarks run with an explicit environment: ``QSCHED_*`` of the shell only steer broker
discovery (`discover`); every namespace's settings are the defaults plus what the benchmark
states, and owner processes and MPI ranks get `child_env`, never the whole shell (an exported
``QSCHED_OWNER__SHOT_RATE_HZ`` would otherwise slow the zero-work backend and falsify figures).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from brokers.bootstrap import BrokerHandle, ensure_broker
from brokers.connection import channel
from brokers.settings import DEFAULT_AMQP_URL, Settings, load_settings
from brokers.topology import build_topology, declare, delete
from schemas.policy import Policy

# Reply queues of the benchmark's MPI ranks have random names; they expire this soon after.
CHILD_REPLY_EXPIRES_MS = 10_000


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(samples: list[float]) -> str:
    """``median [min..max] (n=k)`` of per-sample figures."""
    return (
        f"{statistics.median(samples):9.2f} [{min(samples):.2f}..{max(samples):.2f}]"
        f" (n={len(samples)})"
    )


@contextmanager
def discover() -> Iterator[BrokerHandle]:
    """Find or start a broker from the shell's settings, then hide ``QSCHED_*`` until the end."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("QSCHED_")}
    handle = ensure_broker(load_settings(amqp_url=saved.get("QSCHED_AMQP_URL", DEFAULT_AMQP_URL)))
    for name in saved:
        del os.environ[name]
    try:
        yield handle
    finally:
        os.environ.update(saved)
        handle.close()


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """A child's environment: the shell minus ``QSCHED_*``/``SLURM_*``, plus URL and namespace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QSCHED_", "SLURM_"))}
    return env | {
        "QSCHED_AMQP_URL": settings.amqp_url,
        "QSCHED_NAMESPACE": settings.namespace,
        "QSCHED_BROKER__REPLY_EXPIRES_MS": str(CHILD_REPLY_EXPIRES_MS),
        **extra,
    }


@contextmanager
def bench_namespace(url: str | None = None) -> Iterator[Settings]:
    """A fresh, declared namespace on `url` (default settings), deleted afterwards.

    Without `url`, a broker is found first (`discover`) and ``QSCHED_*`` hidden meanwhile.
    """
    if url is None:
        with discover() as handle, bench_namespace(handle.url) as settings:
            yield settings
        return
    settings = load_settings(amqp_url=url, namespace=f"bench{uuid.uuid4().hex[:6]}")
    topology = build_topology(settings, Policy())
    with channel(url) as ch:
        declare(ch, topology)
    try:
        yield settings
    finally:
        with channel(url) as ch:
            delete(ch, topology)


def delete_queues(url: str, names: list[str]) -> None:
    """Delete queues a benchmark declared (clients' reply queues, raw baselines' queues)."""
    with channel(url) as ch:
        for name in names:
            ch.queue_delete(name)


@contextmanager
def owner_process(
    settings: Settings,
    *args: str,
    env: dict[str, str] | None = None,
    program: list[str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A `qsched owner` on the namespace with a clean environment plus `env`; SIGTERM, then
    SIGKILL. `program` replaces ``qsched owner`` (e.g. the profiled owner)."""
    qsched = shutil.which("qsched") or str(Path(sys.executable).with_name("qsched"))
    log = tempfile.NamedTemporaryFile(prefix="qsched-bench-owner-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [*(program or [qsched, "owner"]), *args],
        env=child_env(settings, **(env or {})),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process.args = [*process.args, log.name]  # where its log is, for benchmarks that read it
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
        log.close()
        os.unlink(log.name)


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used so far (None: unknown or gone)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid(url: str) -> int | None:
    """The process listening on the broker's AMQP port on this machine (None if not found)."""
    port = urlsplit(url.split(";")[0]).port or 5672
    try:
        listing = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"pid=(\d+)", listing)
    return int(found.group(1)) if found else None
