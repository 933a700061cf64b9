"""`qsched result` time against the length of the event log (goal: flat).

    python -m bench results                # 1,000 vs 100,000 events in the log
    python -m bench results --jobs 300000  # 1,000 vs that many

Two namespaces are filled with finished jobs (accepted, started, done: three events each),
published straight into the events exchange; an owner activates on each (it learns every job's
offsets while it replays; the logs are written in confirmed batches of 200 events, like the
owner's, so both have chunks of the same size). Then, in the same run, for the oldest, a middle and the newest job of
each log: the time of `QPUClient.fetch_result` from a fresh client (the owner answers; none of
these results is in its memory, so it reads the one record at the job's final offset), and of
the whole `qsched result ID` command. For reference, the time to find the newest job's result
by scanning the stream (what `fetch_result` did before). Ratios are large log over small log.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.activation import fill, history
from bench.common import bench_namespace, child_env, discover, owner_process
from brokers.connection import channel
from brokers.settings import Settings
from brokers.stream import events_of, read_stream
from brokers.topology import build_topology
from producers.client import QPUClient
from schemas.enums import CommandName
from schemas.policy import Policy

SMALL = 1_000
LARGE = 100_000
SAMPLES = 5
# Unconfirmed events at a time while filling: the stream's chunks stay about this size, as when
# the owner writes its log in confirmed batches (a record is read from the start of its chunk).
FILL_WINDOW = 200


def _median_s(samples: list[float]) -> float:
    return statistics.median(samples)


def _sdk_s(settings: Settings, job_id: str) -> float:
    """One `fetch_result` from a fresh client (connecting not counted)."""
    with QPUClient(settings=settings, validate_locally=False) as client:
        began = time.perf_counter()
        found = client.fetch_result(job_id)
        took = time.perf_counter() - began
    assert found is not None and found.job_id == job_id, f"no result for {job_id}"
    return took


def _cli_s(settings: Settings, job_id: str) -> float:
    """One whole `qsched result ID --json` process."""
    qsched = shutil.which("qsched") or str(Path(sys.executable).with_name("qsched"))
    began = time.perf_counter()
    done = subprocess.run(
        [qsched, "result", job_id, "--json"],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    took = time.perf_counter() - began
    assert done.returncode == 0, done.stderr
    return took


def _scan_s(settings: Settings, job_id: str) -> float:
    """Find the job's result by reading the stream from its start (the old way)."""
    stream = build_topology(settings, Policy()).events_stream
    began = time.perf_counter()
    with channel(settings.amqp_url) as ch:
        for record in read_stream(ch, stream, "first"):
            if any(e.job_id == job_id and e.result for e in events_of(record)):
                break
    return time.perf_counter() - began


def _measure(url: str, events: int) -> dict[str, float]:
    with bench_namespace(url) as settings:
        topology = build_topology(settings, Policy())
        log = history(events)
        fill(settings.amqp_url, topology.events_exchange, log, window=FILL_WINDOW)
        jobs = [e.job_id for e in log if e.topic == "job.done" and e.job_id]
        targets = [jobs[0], jobs[len(jobs) // 2], jobs[-1]]
        with owner_process(settings, "--backend", "synthetic"):
            with QPUClient(settings=settings, validate_locally=False) as client:
                client.control(CommandName.STATUS, timeout=600)  # active: the log is replayed
            sdk = [_sdk_s(settings, job) for job in targets for _ in range(SAMPLES)]
            cli = [_cli_s(settings, job) for job in targets for _ in range(2)]
        scan = _scan_s(settings, targets[-1])
    return {
        "events": len(log),
        "sdk_s": _median_s(sdk),
        "sdk_max_s": max(sdk),
        "cli_s": _median_s(cli),
        "scan_s": scan,
    }


def main(jobs: int) -> None:
    """Print lookup times for a small and a large log, and their ratios."""
    large = jobs if jobs >= 10 * SMALL else LARGE
    with discover() as handle:
        small_figures = _measure(handle.url, SMALL)
        large_figures = _measure(handle.url, large)
    print(f"qsched result: {small_figures['events']:,} vs {large_figures['events']:,} events")
    for name, key in (
        ("fetch_result (owner, median)", "sdk_s"),
        ("qsched result CLI (median)", "cli_s"),
        ("scan of the log (old way)", "scan_s"),
    ):
        ratio = large_figures[key] / small_figures[key]
        print(
            f"  {name:<30} {small_figures[key] * 1000:9.1f} ms {large_figures[key] * 1000:9.1f} ms"
            f"  ratio {ratio:6.2f}"
        )
    print(
        json.dumps(
            {
                "bench": "results",
                "small": small_figures,
                "large": large_figures,
                "sdk_ratio": large_figures["sdk_s"] / small_figures["sdk_s"],
                "cli_ratio": large_figures["cli_s"] / small_figures["cli_s"],
                "scan_ratio": large_figures["scan_s"] / small_figures["scan_s"],
            }
        )
    )
