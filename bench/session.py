"""The iteration gap of a session (``python -m bench session``), one run.

A variational loop: a client opens a session, submits a job in it, and submits the next as soon
as it receives the result. The iteration gap is the QPU's idle time between two of its
iterations: the end of job i to the start of job i+1 (both on the owner's clock, from the
results' timings). Measured three ways on a synthetic backend paced like a short QPU job: with
the QPU otherwise idle (the client's round trip), under competing load (another client keeping
longer jobs of the same class waiting all the time) with the session's grace only, and under
the same load with the class's ``exclusive_sessions_s`` (the QPU waits, boundedly, for the
next iteration).
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import tempfile
import threading
from collections import deque
from pathlib import Path

from bench.common import bench_namespace, owner_process, percentile
from brokers.settings import Settings
from producers.client import QPUClient
from tests.support.owners import wait_active
from tests.support.sequences import analog_sequence

SHOT_RATE_HZ = 500  # session job: 10 shots = 20 ms; competing job: 50 shots = 100 ms
SESSION_SHOTS, LOAD_SHOTS, LOAD_WAITING = 10, 50, 3
JOB_CLASS = "production"  # the one class the exclusive run's policy defines (not the default)


def _load(settings: Settings, stop: threading.Event) -> None:
    """Another client keeping `LOAD_WAITING` jobs submitted at all times until `stop`."""
    with QPUClient(settings=settings, validate_locally=False) as loader:
        sequence = analog_sequence()
        waiting = deque(
            loader.submit(sequence, LOAD_SHOTS, job_class=JOB_CLASS) for _ in range(LOAD_WAITING)
        )
        while not stop.is_set():
            waiting.popleft().result(120)
            waiting.append(loader.submit(sequence, LOAD_SHOTS, job_class=JOB_CLASS))


def _gaps(client: QPUClient, iterations: int) -> list[float]:
    session = client.open_session(job_class=JOB_CLASS)
    sequence = analog_sequence()
    results = []
    for _ in range(iterations):
        job = client.submit(sequence, SESSION_SHOTS, job_class=JOB_CLASS, session_id=session)
        results.append(job.result(120))
    client.close_session(session)
    gaps = []
    for before, after in itertools.pairwise(results):
        if before.timings.ended_at is None or after.timings.started_at is None:
            continue
        gaps.append((after.timings.started_at - before.timings.ended_at).total_seconds())
    return gaps


def _run(policy_text: str, iterations: int, load: bool) -> list[float]:
    work = Path(tempfile.mkdtemp(prefix="qsched-bench-session-"))
    policy = work / "policy.toml"
    policy.write_text(policy_text)
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(bench_namespace())
        stack.enter_context(
            owner_process(
                settings,
                "--backend",
                "synthetic",
                "--shot-rate",
                str(SHOT_RATE_HZ),
                "--policy",
                str(policy),
            )
        )
        client = stack.enter_context(QPUClient(settings=settings, validate_locally=False))
        wait_active(client, timeout_s=90)
        if load:
            stop = threading.Event()
            thread = threading.Thread(target=_load, args=(settings, stop), daemon=True)
            thread.start()
            stack.callback(thread.join, 60)
            stack.callback(stop.set)
        return _gaps(client, iterations)


def _line(name: str, gaps: list[float]) -> str:
    ms = [g * 1000 for g in gaps]
    return (
        f"  {name:<34} p50 {percentile(ms, 0.5):8.1f} ms  p99 {percentile(ms, 0.99):8.1f} ms"
        f"  mean {statistics.mean(ms):8.1f} ms  (n={len(ms)})"
    )


def main(jobs: int = 30) -> None:
    """Print the iteration gap idle, under load with grace, under load with exclusivity."""
    iterations = min(max(jobs, 10), 60)
    base = 'operators = ["guest"]\nsession_grace_s = 30\n'
    exclusive = base + "[classes.production]\nrank = 1\nexclusive_sessions_s = 2.0\n"
    rows = {
        "idle QPU (no other jobs)": _run(base, iterations, load=False),
        "competing load, grace only": _run(base, iterations, load=True),
        "competing load, exclusive (2 s cap)": _run(exclusive, iterations, load=True),
    }
    print(
        f"session: iteration gap (job i ends -> job i+1 starts; the client submits on the result),"
        f" {iterations} iterations of {SESSION_SHOTS} shots at {SHOT_RATE_HZ} shots/s; load:"
        f" another client keeping {LOAD_WAITING} jobs of {LOAD_SHOTS} shots submitted, same class"
        " (one run)"
    )
    for name, gaps in rows.items():
        print(_line(name, gaps))
    idle = percentile(rows["idle QPU (no other jobs)"], 0.5)
    for name in ("competing load, grace only", "competing load, exclusive (2 s cap)"):
        print(f"  p50 ratio to idle, {name}: {percentile(rows[name], 0.5) / idle:.2f}")
