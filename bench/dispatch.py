"""Dispatch overhead of the owner, against two pika request/reply baselines.

N jobs are queued while the owner is paused, then released on the ``synthetic`` backend with zero
execution time, so everything measured is the owner's own work per job: pick the next job, write
its in-flight record, ack, log the events, publish and confirm the result. Dispatch overhead is
``started_at`` of a job minus ``ended_at`` of the one before it (QPU free -> next job started).

Baselines, one request/reply round trip through the same broker with plain pika each:

- ``transient``: a 256-byte request and its echo, non-persistent, unconfirmed, auto-acked reply
  (the floor: what the network and broker cost with no durability at all);
- ``durable``: the same, but both publishes persistent and each waits for its publisher
  confirm, and the echo acks the request only after its reply is confirmed (like-for-like with
  the owner's semantics, which confirms every persistent publish before moving on; the owner
  does several such publishes per job, so it cannot reach 1x).

The owner's and the broker's CPU time per job are taken from ``/proc`` over the batch (the broker
found by the process listening on its port, when it runs on this machine); with the client also
on the machine, `cores / (owner + broker CPU per job)` bounds the jobs/s this machine can reach,
whatever the owner's latency.

Each figure is taken `samples` times, each after a warm-up and on fresh queues (a fresh
namespace and owner for the owner's figure), the measurements in a rotating order; reported as
median [min..max] over samples.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pika

from bench.common import (
    bench_namespace,
    broker_pid,
    cpu_seconds,
    delete_queues,
    discover,
    owner_process,
    percentile,
)
from bench.common import summary as fmt
from brokers.connection import connect
from producers.client import QPUClient
from schemas.enums import CommandName
from tests.support.sequences import analog_sequence

WARMUP_ROUNDS = 50


def raw_round_trip_s(url: str, rounds: int, durable: bool = False) -> list[float]:
    """Round-trip times of `rounds` request/reply exchanges with plain pika, after a warm-up.

    Args:
        url: the broker.
        rounds: measured round trips (a warm-up of `WARMUP_ROUNDS` comes first, not counted).
        durable: persistent messages on durable queues, every publish confirmed, the request
            acked after its reply is confirmed; otherwise transient and unconfirmed.
    """
    tag = uuid.uuid4().hex[:8]
    request_q, reply_q = f"bench-raw-{tag}-request", f"bench-raw-{tag}-reply"
    mode = 2 if durable else 1
    conn = connect(url, name="bench-raw")
    ch = conn.channel()
    for name in (request_q, reply_q):
        ch.queue_declare(name, durable=durable)
    if durable:
        ch.confirm_delivery()
    ready = threading.Event()

    def echo() -> None:
        echo_conn = connect(url, name="bench-echo")
        echo_ch = echo_conn.channel()
        if durable:
            echo_ch.confirm_delivery()
        ready.set()
        for method, props, body in echo_ch.consume(request_q, inactivity_timeout=5):
            if method is None:
                break
            echo_ch.basic_publish(
                "",
                props.reply_to,
                body,
                pika.BasicProperties(correlation_id=props.correlation_id, delivery_mode=mode),
            )
            echo_ch.basic_ack(method.delivery_tag)
        echo_conn.close()

    worker = threading.Thread(target=echo, daemon=True)
    worker.start()
    ready.wait(30)
    times = []
    replies = ch.consume(reply_q, auto_ack=not durable)
    for i in range(WARMUP_ROUNDS + rounds):
        started = time.perf_counter()
        ch.basic_publish(
            "",
            request_q,
            b"x" * 256,
            pika.BasicProperties(reply_to=reply_q, correlation_id=str(i), delivery_mode=mode),
        )
        method, _, _ = next(replies)
        if durable:
            ch.basic_ack(method.delivery_tag)
        times.append(time.perf_counter() - started)
    ch.cancel()
    conn.close()
    worker.join(timeout=10)
    delete_queues(url, [request_q, reply_q])
    return times[WARMUP_ROUNDS:]


@dataclass
class OwnerRun:
    """One owner's figures: dispatch gaps (s), jobs/s, and CPU seconds per job of the owner and
    of the broker while the batch ran (None where unknown)."""

    gaps: list[float]
    rate: float
    owner_cpu_s: float | None
    broker_cpu_s: float | None


def owner_dispatch(url: str, jobs: int) -> OwnerRun:
    """One owner on a fresh namespace, after a warm-up batch."""
    broker = broker_pid(url)
    with (
        bench_namespace(url) as settings,
        owner_process(settings, "--backend", "synthetic") as process,
    ):
        client = QPUClient(settings=settings)
        try:
            client.control(CommandName.STATUS, timeout=60)
            sequence = analog_sequence(2)
            warm = [client.submit(sequence, 1, job_class="production") for _ in range(20)]
            for handle in warm:
                handle.result(timeout=120)
            assert client.control(CommandName.PAUSE).ok
            handles = [client.submit(sequence, 1, job_class="production") for _ in range(jobs)]
            cpu_before = cpu_seconds(process.pid), cpu_seconds(broker)
            assert client.control(CommandName.RESUME).ok
            results = sorted(
                (h.result(timeout=300) for h in handles), key=lambda r: r.timings.started_at
            )
            cpu_after = cpu_seconds(process.pid), cpu_seconds(broker)
        finally:
            client.close()
            delete_queues(url, [client.reply_queue_name])
    gaps = [
        (nxt.timings.started_at - prev.timings.ended_at).total_seconds()
        for prev, nxt in itertools.pairwise(results)
    ]
    span_s = (results[-1].timings.ended_at - results[0].timings.started_at).total_seconds()
    used = [
        (after - before) / jobs if before is not None and after is not None else None
        for before, after in zip(cpu_before, cpu_after, strict=True)
    ]
    return OwnerRun(gaps, jobs / span_s, used[0], used[1])


def main(jobs: int, samples: int = 3, as_json: bool = False) -> None:
    """Print jobs/s and p50/p99 dispatch overhead next to both round-trip baselines."""
    figures: dict[str, list[float]] = {
        k: []
        for k in ("jobs/s", "p50", "p99", "t50", "t99", "d50", "d99", "owner_cpu", "broker_cpu")
    }
    with discover() as handle:
        url = handle.url

        def owner() -> None:
            run = owner_dispatch(url, jobs)
            figures["jobs/s"].append(run.rate)
            figures["p50"].append(percentile(run.gaps, 0.5) * 1e3)
            figures["p99"].append(percentile(run.gaps, 0.99) * 1e3)
            if run.owner_cpu_s is not None and run.broker_cpu_s is not None:
                figures["owner_cpu"].append(run.owner_cpu_s * 1e3)
                figures["broker_cpu"].append(run.broker_cpu_s * 1e3)

        def transient() -> None:
            raw = raw_round_trip_s(url, jobs)
            figures["t50"].append(percentile(raw, 0.5) * 1e3)
            figures["t99"].append(percentile(raw, 0.99) * 1e3)

        def durable() -> None:
            raw = raw_round_trip_s(url, jobs, durable=True)
            figures["d50"].append(percentile(raw, 0.5) * 1e3)
            figures["d99"].append(percentile(raw, 0.99) * 1e3)

        order: list[Callable[[], None]] = [owner, transient, durable]
        for sample in range(samples):
            for measure in order[sample % 3 :] + order[: sample % 3]:
                measure()
    med = {k: statistics.median(v) for k, v in figures.items() if v}
    print(f"dispatch benchmark, {jobs} jobs on the synthetic backend (zero execution time)")
    print("  figures: median [min..max] over samples, ms unless noted")
    print(f"  owner throughput (jobs/s)          {fmt(figures['jobs/s'])}")
    print(f"  owner dispatch overhead       p50  {fmt(figures['p50'])}")
    print(f"                                p99  {fmt(figures['p99'])}")
    print(f"  transient round trip          p50  {fmt(figures['t50'])}")
    print(f"                                p99  {fmt(figures['t99'])}")
    print(f"  durable confirmed round trip  p50  {fmt(figures['d50'])}")
    print(f"                                p99  {fmt(figures['d99'])}")
    print(
        f"  ratio overhead / transient    p50 {med['p50'] / med['t50']:6.1f}x"
        f"   p99 {med['p99'] / med['t99']:6.1f}x"
    )
    print(
        f"  ratio overhead / durable      p50 {med['p50'] / med['d50']:6.1f}x"
        f"   p99 {med['p99'] / med['d99']:6.1f}x"
    )
    bound = None
    if "owner_cpu" in med:
        cores = os.cpu_count() or 1
        bound = cores * 1e3 / (med["owner_cpu"] + med["broker_cpu"])
        print(f"  owner CPU per job (ms)             {fmt(figures['owner_cpu'])}")
        print(f"  broker CPU per job (ms)            {fmt(figures['broker_cpu'])}")
        print(
            f"  CPU bound on this machine          {bound:.0f} jobs/s"
            f" ({cores} cores / (owner + broker CPU per job))"
        )
    print("  goals: overhead p50 < 1 ms, p99 < 3 ms; >= 1000 jobs/s")
    if as_json:
        line = {
            "bench": "dispatch",
            "jobs": jobs,
            "samples": samples,
            "jobs_per_s": med["jobs/s"],
            "cpu_bound_jobs_per_s": bound,
            "ms": {k: v for k, v in med.items() if k != "jobs/s"},  # CPU figures: ms per job
            "ratio_p50_vs_transient": med["p50"] / med["t50"],
            "ratio_p99_vs_transient": med["p99"] / med["t99"],
            "ratio_p50_vs_durable": med["p50"] / med["d50"],
            "ratio_p99_vs_durable": med["p99"] / med["d99"],
        }
        print(json.dumps(line))
