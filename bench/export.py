"""Event-log export speed (events/s) against reading the raw stream, measured in the same run.

A fresh namespace's stream is filled with a day-like log (queued, started, final events with
results for every job, calibrations now and then), then read back four ways: the raw stream
with pika (consume and ack every record, no decoding: the baseline), and ``qsched events
export`` as JSON lines, Perfetto and HTML (read, decode, fold, write to memory). Goal: >= 0.5x
the raw rate.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from bench.common import bench_namespace
from brokers.connection import connect, properties
from brokers.settings import Settings
from brokers.topology import build_topology
from consumers.eventlog.export import write_export
from consumers.eventlog.reader import read_log
from schemas.codec import encode
from schemas.policy import Policy
from tests.eventlogs import big_log

CONFIRM_WINDOW = 2000


def fill(settings: Settings, jobs: int) -> int:
    """Publish the log of `jobs` jobs into the namespace's stream; returns the event count."""
    topology = build_topology(settings, Policy())
    conn = connect(settings.amqp_url, name="bench-export-fill")
    ch = conn.channel()
    ch.confirm_delivery()
    events = big_log(jobs)
    for event in events:
        ch.basic_publish(
            topology.events_exchange,
            event.topic,
            encode(event),
            properties(event, message_id=event.event_id, user_id=settings.amqp_user),
        )
    conn.close()
    return len(events)


def raw_read(settings: Settings, count: int) -> int:
    """Consume `count` records with plain pika, decoding nothing, acking 250 at a time."""
    conn = connect(settings.amqp_url, name="bench-export-raw")
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1000)
    seen = 0
    stream = build_topology(settings, Policy()).events_stream
    for method, _props, _body in ch.consume(
        stream, arguments={"x-stream-offset": "first"}, inactivity_timeout=10
    ):
        if method is None:
            break
        seen += 1
        if seen % 250 == 0:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if seen == count:
            break
    conn.close()  # closing, not cancelling: a stream refuses the rejects a cancel would send
    return seen


def export(settings: Settings, fmt: str) -> int:
    """`qsched events export --format fmt` of the whole log, into memory."""
    conn = connect(settings.amqp_url, name=f"bench-export-{fmt}")
    stream = build_topology(settings, Policy()).events_stream
    count = write_export(read_log(conn, stream, end=None), fmt, io.StringIO())
    conn.close()
    return count


def _rate(run: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    count = run()
    return count, count / (time.perf_counter() - started)


def main(jobs: int) -> None:
    """Fill a stream with the log of ``20 * jobs`` jobs and print the rates side by side.

    The raw read runs before and after the exports (the machine may be shared); ratios are
    against the mean of the two.
    """
    with bench_namespace() as settings:
        count = fill(settings, 20 * jobs)
        _seen, raw_before = _rate(lambda: raw_read(settings, count))
        rates = {
            fmt: _rate(lambda fmt=fmt: export(settings, fmt))[1]
            for fmt in ("jsonl", "perfetto", "html")
        }  # type: ignore[misc]
        _seen, raw_after = _rate(lambda: raw_read(settings, count))
        raw = (raw_before + raw_after) / 2
        print(
            f"export: {count} events; raw pika read {raw_before:,.0f} then {raw_after:,.0f} events/s"
        )
        for fmt, rate in rates.items():
            print(f"  export {fmt:<8} {rate:>9,.0f} events/s = {rate / raw:.2f}x raw")
