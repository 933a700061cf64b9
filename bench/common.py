"""Shared pieces of the benchmarks: a broker, a fresh namespace, an owner process, percentiles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from brokers.bootstrap import ensure_broker
from brokers.connection import channel
from brokers.settings import Settings, load_settings
from brokers.topology import build_topology, declare, delete
from schemas.policy import Policy


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@contextmanager
def bench_namespace() -> Iterator[Settings]:
    """A reachable broker and a fresh, declared namespace, deleted afterwards."""
    handle = ensure_broker(load_settings())
    settings = load_settings(amqp_url=handle.url, namespace=f"bench{uuid.uuid4().hex[:6]}")
    topology = build_topology(settings, Policy())
    with channel(handle.url) as ch:
        declare(ch, topology)
    try:
        yield settings
    finally:
        with channel(handle.url) as ch:
            delete(ch, topology)
        handle.close()


@contextmanager
def owner_process(
    settings: Settings, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A `qsched owner` on the namespace, stopped afterwards."""
    qsched = shutil.which("qsched") or str(Path(sys.executable).with_name("qsched"))
    env = (
        dict(os.environ)
        | {
            "QSCHED_AMQP_URL": settings.amqp_url,
            "QSCHED_NAMESPACE": settings.namespace,
        }
        | (env or {})
    )
    log = tempfile.NamedTemporaryFile(prefix="qsched-bench-owner-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [qsched, "owner", *args], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    process.args = [*process.args, log.name]  # where its log is, for benchmarks that read it
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
