"""Event-log replay and export speed (events/s) against reading the raw stream, in one run.

A fresh namespace's stream is filled with a day-like log (queued, started, final events with
results for every job, calibrations now and then), then read back six ways: the raw stream
through the stream port, `brokers.stream.read_stream` (consume and ack every record, no
decoding: the baseline), ``qsched events replay``
(read, decode, fold every event with `OwnerState.apply`, report the state), ``qsched simulate``
(read, then every arrival and command through `step` on the modelled QPU; not a reading rate:
it shows what a what-if costs), and ``qsched events export`` as JSON lines, Perfetto and HTML
(read, decode, fold, write to memory). Goal: >= 0.5x the raw rate for replay and export.
``--json`` prints the figures as one JSON line.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable

from bench.common import bench_namespace
from brokers.connection import connect, properties
from brokers.settings import Settings
from brokers.stream import StreamRecord, read_stream
from brokers.topology import build_topology
from consumers.tools.eventlog.export import write_export
from consumers.tools.eventlog.reader import read_log
from consumers.tools.eventlog.replay import replay
from consumers.tools.simulate.engine import simulate
from consumers.tools.simulate.history import read_history
from schemas.codec import encode
from schemas.policy import Policy
from tests.support.eventlogs import big_log

CONFIRM_WINDOW = 2000
RAW_PREFETCH = 1000  # the baseline read: records in flight (the product readers keep 500)


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
    """Read `count` records through the stream port (`brokers.stream.read_stream`) and decode
    nothing: the read every reader of the log is built on, the baseline of the others."""
    conn = connect(settings.amqp_url, name="bench-export-raw")
    stream = build_topology(settings, Policy()).events_stream
    seen = 0

    def enough(_record: StreamRecord) -> bool:
        return seen >= count

    for _record in read_stream(
        conn.channel(), stream, "first", stop=enough, max_wait_s=10, prefetch=RAW_PREFETCH
    ):
        seen += 1
    conn.close()
    return seen


def export(settings: Settings, fmt: str) -> int:
    """`qsched events export --format fmt` of the whole log, into memory."""
    conn = connect(settings.amqp_url, name=f"bench-export-{fmt}")
    stream = build_topology(settings, Policy()).events_stream
    count = write_export(read_log(conn, stream, end=None), fmt, io.StringIO())
    conn.close()
    return count


def replay_log(settings: Settings) -> int:
    """`qsched events replay` of the whole log: the owner's state at its end."""
    conn = connect(settings.amqp_url, name="bench-replay")
    stream = build_topology(settings, Policy()).events_stream
    (point,) = replay(read_log(conn, stream), Policy())
    conn.close()
    return int(point.report["events"])


def simulate_log(settings: Settings) -> int:
    """`qsched simulate` of the whole log under the default policy; the events read."""
    conn = connect(settings.amqp_url, name="bench-simulate")
    stream = build_topology(settings, Policy()).events_stream
    recorded = read_history(read_log(conn, stream), Policy(), None, 0.2)
    conn.close()
    simulate(Policy(), recorded)
    return len(recorded.events)


def _rate(run: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    count = run()
    return count, count / (time.perf_counter() - started)


def main(jobs: int, as_json: bool = False) -> None:
    """Fill a stream with the log of ``20 * jobs`` jobs and print the rates side by side.

    The raw read runs before and after the others (the machine may be shared); ratios are
    against the mean of the two.
    """
    with bench_namespace() as settings:
        count = fill(settings, 20 * jobs)
        _seen, raw_before = _rate(lambda: raw_read(settings, count))
        rates = {"replay": _rate(lambda: replay_log(settings))[1]}
        for fmt in ("jsonl", "perfetto", "html"):
            rates[fmt] = _rate(lambda fmt=fmt: export(settings, fmt))[1]  # type: ignore[misc]
        rates["simulate"] = _rate(lambda: simulate_log(settings))[1]
        _seen, raw_after = _rate(lambda: raw_read(settings, count))
        raw = (raw_before + raw_after) / 2
        if as_json:
            figures = {
                name: {"events_per_s": round(r), "x_raw": round(r / raw, 3)}
                for name, r in rates.items()
            }
            print(
                json.dumps(
                    {
                        "bench": "export",
                        "events": count,
                        "raw_events_per_s": [round(raw_before), round(raw_after)],
                    }
                    | figures
                )
            )
            return
        print(f"export: {count} events; raw read {raw_before:,.0f} then {raw_after:,.0f} events/s")
        for name, rate in rates.items():
            what = (
                "events replay"
                if name == "replay"
                else name
                if name == "simulate"
                else f"export {name}"
            )
            print(f"  {what:<15} {rate:>9,.0f} events/s = {rate / raw:.2f}x raw")
