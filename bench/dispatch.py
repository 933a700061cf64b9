"""Dispatch overhead of the owner, against a raw pika request/reply round trip.

N jobs are queued while the owner is paused, then released on the ``synthetic`` backend with zero
execution time, so everything measured is the owner's own work per job: pick the next job, write
its in-flight record, ack, log the events, publish and confirm the result. Dispatch overhead is
``started_at`` of a job minus ``ended_at`` of the one before it (QPU free -> next job started).
The baseline is one request/reply round trip through the same broker with pika: publish to a
queue, a consumer answers on a reply queue, the requester receives it.
"""

from __future__ import annotations

import itertools
import threading
import time

import pika

from bench.common import bench_namespace, owner_process, percentile
from brokers.connection import connect
from producers.client import QPUClient
from schemas.enums import CommandName
from tests.sequences import analog_sequence


def raw_round_trip_s(url: str, rounds: int) -> list[float]:
    """Round-trip times of `rounds` request/reply exchanges with plain pika."""
    conn = connect(url, name="bench-raw")
    ch = conn.channel()
    reply_q = ch.queue_declare("", exclusive=True).method.queue
    ready = threading.Event()
    request_queue: list[str] = []

    def echo() -> None:
        echo_conn = connect(url, name="bench-echo")
        echo_ch = echo_conn.channel()
        request_queue.append(echo_ch.queue_declare("", exclusive=True).method.queue)
        request_q = request_queue[0]
        ready.set()
        for method, props, body in echo_ch.consume(request_q, inactivity_timeout=5):
            if method is None:
                break
            echo_ch.basic_publish(
                "", props.reply_to, body, pika.BasicProperties(correlation_id=props.correlation_id)
            )
            echo_ch.basic_ack(method.delivery_tag)
        echo_conn.close()

    worker = threading.Thread(target=echo, daemon=True)
    worker.start()
    ready.wait()
    request_q = request_queue[0]
    times = []
    replies = ch.consume(reply_q, auto_ack=True)
    for i in range(rounds):
        started = time.perf_counter()
        ch.basic_publish(
            "", request_q, b"x" * 256, pika.BasicProperties(reply_to=reply_q, correlation_id=str(i))
        )
        next(replies)
        times.append(time.perf_counter() - started)
    ch.cancel()
    conn.close()
    worker.join(timeout=10)
    return times


def main(jobs: int) -> None:
    """Print jobs/s and p50/p99 dispatch overhead next to the raw pika round trip."""
    with bench_namespace() as settings, owner_process(settings, "--backend", "synthetic"):
        client = QPUClient(settings=settings)
        client.control(CommandName.STATUS, timeout=60)
        assert client.control(CommandName.PAUSE).ok
        sequence = analog_sequence(2)
        handles = [client.submit(sequence, 1, job_class="production") for _ in range(jobs)]
        assert client.control(CommandName.RESUME).ok
        results = sorted(
            (h.result(timeout=300) for h in handles), key=lambda r: r.timings.started_at
        )
        client.close()
        gaps = [
            (nxt.timings.started_at - prev.timings.ended_at).total_seconds()
            for prev, nxt in itertools.pairwise(results)
        ]
        span_s = (results[-1].timings.ended_at - results[0].timings.started_at).total_seconds()
        raw = raw_round_trip_s(settings.amqp_url, jobs)
    p50, p99 = percentile(gaps, 0.5), percentile(gaps, 0.99)
    r50, r99 = percentile(raw, 0.5), percentile(raw, 0.99)
    print(f"dispatch benchmark, {jobs} jobs on the synthetic backend (zero execution time)")
    print(f"  owner throughput        {jobs / span_s:8.1f} jobs/s")
    print(f"  dispatch overhead  p50  {p50 * 1e3:8.2f} ms   p99 {p99 * 1e3:8.2f} ms")
    print(f"  raw pika round trip p50 {r50 * 1e3:8.2f} ms   p99 {r99 * 1e3:8.2f} ms")
    print(f"  ratio (overhead / round trip)  p50 {p50 / r50:6.1f}x   p99 {p99 / r99:6.1f}x")
