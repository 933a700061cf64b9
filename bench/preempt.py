"""Preemption latency: a production job published -> the running development job stopped and the
production job started, on the ``synthetic`` backend.

Each round submits a long development job, waits until it runs (its first progress), then
publishes a one-shot production job and measures from just before that publish to the
production job's ``started_at`` (the owner stamps it after the development run has stopped);
the development job is then cancelled. Same machine, same clock. The baseline is the durable
confirmed request/reply round trip of `bench.dispatch` in the same run: a preemption needs at
least the job's publish and the stop of the run, so the ratio says how many round trips it costs.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time

from bench.common import bench_namespace, delete_queues, discover, owner_process, percentile
from bench.common import summary as fmt
from bench.dispatch import raw_round_trip_s
from producers.client import QPUClient
from producers.errors import CommandRefused
from producers.handle import JobHandle
from schemas.enums import CommandName
from tests.support.sequences import analog_sequence

SHOT_RATE_HZ = "200"
LONG_SHOTS = 2000  # the device limit; ~10 s at SHOT_RATE_HZ, a round takes ~1 s of it
WAIT_S = 60.0


def _wait_progress(client: QPUClient, handle: JobHandle) -> None:
    deadline = time.monotonic() + WAIT_S
    while handle.last_progress is None:
        if handle.job_id in client.results:
            raise RuntimeError(f"the development job ended: {client.results[handle.job_id]}")
        if time.monotonic() > deadline:
            raise RuntimeError("the development job never reported progress")
        client.poll(0.05)


def preemption_latencies_s(url: str, rounds: int) -> list[float]:
    """Seconds from a production job's publish to its start, preempting a development job."""
    latencies = []
    with (
        bench_namespace(url) as settings,
        owner_process(settings, "--backend", "synthetic", "--shot-rate", SHOT_RATE_HZ),
    ):
        client = QPUClient(settings=settings, validate_locally=False)
        try:
            client.control(CommandName.STATUS, timeout=60)
            sequence = analog_sequence(2)
            for _ in range(rounds + 1):  # the first round is a warm-up
                dev = client.submit(sequence, LONG_SHOTS, job_class="development")
                _wait_progress(client, dev)
                job = client.build_job(sequence, 1, job_class="production")
                published = time.time()
                prod = client.submit_request(job)
                result = prod.result(timeout=WAIT_S)
                assert result.timings.started_at is not None
                latencies.append(result.timings.started_at.timestamp() - published)
                with contextlib.suppress(CommandRefused):
                    dev.cancel(timeout=WAIT_S)
                dev.result(timeout=WAIT_S)
        finally:
            client.close()
            delete_queues(url, [client.reply_queue_name])
    return latencies[1:]


def main(jobs: int, samples: int = 3, as_json: bool = False) -> None:
    """Print preemption latency p50/p99 next to the durable round trip, as ratios."""
    rounds = max(10, min(jobs // 10, 50))
    figures: dict[str, list[float]] = {k: [] for k in ("p50", "p99", "d50", "d99")}
    with discover() as handle:
        for sample in range(samples):
            order = ["owner", "raw"] if sample % 2 == 0 else ["raw", "owner"]
            for what in order:
                if what == "owner":
                    got = preemption_latencies_s(handle.url, rounds)
                    keys = ("p50", "p99")
                else:
                    got = raw_round_trip_s(handle.url, rounds * 10, durable=True)
                    keys = ("d50", "d99")
                figures[keys[0]].append(percentile(got, 0.5) * 1e3)
                figures[keys[1]].append(percentile(got, 0.99) * 1e3)
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"preempt benchmark, {rounds} preemptions per sample on the synthetic backend")
    print("  figures: median [min..max] over samples, ms")
    print(f"  publish -> preempting job started   p50  {fmt(figures['p50'])}   goal < 50")
    print(f"                                      p99  {fmt(figures['p99'])}")
    print(f"  durable confirmed round trip        p50  {fmt(figures['d50'])}")
    print(f"                                      p99  {fmt(figures['d99'])}")
    print(f"  ratio preemption / round trip       p50 {med['p50'] / med['d50']:6.1f}x")
    if as_json:
        line = {
            "bench": "preempt",
            "rounds": rounds,
            "samples": samples,
            "ms": med,
            "ratio_p50_vs_durable": med["p50"] / med["d50"],
            "goal_p50_ms": 50,
        }
        print(json.dumps(line))
