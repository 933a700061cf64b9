"""Activation time (standby -> first job started) against the length of the event log.

    python -m bench activation --jobs 100000     # that many events in the log (about)

The log is filled with finished jobs (accepted, started, done) published straight into the
events exchange. A first owner activates by replaying all of it (no snapshot exists yet) and
then writes a snapshot; it is killed, and a second owner activates from that snapshot and the
short tail after it. Both times are printed next to the time a raw read (the stream port, decoding nothing) takes
to read the same stream from the start, measured in the same run.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pika

from bench.common import bench_namespace, owner_process
from bench.submit import WINDOW
from brokers.connection import channel, properties
from brokers.stream import StreamRecord, read_stream
from brokers.topology import build_topology
from consumers.owner.publish import JOB_ID_HEADER
from producers.client import QPUClient
from schemas.codec import encode
from schemas.enums import CommandName, JobState
from schemas.envelope import Event
from schemas.events import JobAccepted, JobStarted, OwnerActivated, Topic, make_event
from schemas.jobs import JobRequest, JobResult, Timings
from schemas.policy import Policy
from schemas.wire import new_id
from tests.support.sequences import analog_sequence

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RAW_PREFETCH = 1000  # the baseline read: records in flight (the product readers keep 500)


def history(events: int) -> list[Event]:
    """About `events` events: finished jobs, three events each."""
    activated = OwnerActivated(term=1, backend="bench")
    out = [make_event(Topic.OWNER_ACTIVATED, activated, term=1, at=T0)]
    for i in range(events // 3):
        at = T0 + timedelta(milliseconds=i)
        job = JobRequest(job_class="production", shots=10, sequence="{}", submitted_at=at)
        common = {"job_id": job.job_id, "job_class": "production", "user": "guest", "term": 1}
        result = JobResult(
            job_id=job.job_id,
            state=JobState.DONE,
            job_class="production",
            shots=10,
            counts={"0": 10},
            timings=Timings(queued_at=at, started_at=at, ended_at=at, execution_s=0.001),
        )
        out += [
            make_event(Topic.JOB_ACCEPTED, JobAccepted(job=job, user="guest"), at=at, **common),
            make_event(
                Topic.JOB_STARTED,
                JobStarted(attempt=1, epoch=0, backend="b", shots=10),
                at=at,
                **common,
            ),
            make_event(Topic.JOB_DONE, at=at, result=result, **common),
        ]
    return [event.model_copy(update={"event_id": new_id()}) for event in out]


def fill(url: str, exchange: str, events: list[Event], window: int = WINDOW) -> float:
    """Publish the events with windowed confirms (at most `window` unconfirmed, which also
    bounds the stream's chunks); returns seconds taken."""
    bodies = [
        (
            e.topic,
            encode(e),
            properties(  # as the owner's publisher sends them (job id header included)
                e,
                message_id=e.event_id,
                user_id="guest",
                headers={JOB_ID_HEADER: e.job_id} if e.job_id else None,
            ),
        )
        for e in events
    ]
    state = {"sent": 0, "acked": 0}
    began = time.perf_counter()

    def publish(ch: pika.channel.Channel) -> None:
        while state["sent"] < len(bodies) and state["sent"] - state["acked"] < window:
            topic, body, props = bodies[state["sent"]]
            ch.basic_publish(exchange, topic, body, props)
            state["sent"] += 1

    def on_ack(ch: pika.channel.Channel, frame: pika.frame.Method) -> None:
        m = frame.method
        state["acked"] = m.delivery_tag if m.multiple else state["acked"] + 1
        if state["acked"] >= len(bodies):
            ch.connection.close()
        else:
            publish(ch)

    def on_channel(ch: pika.channel.Channel) -> None:
        ch.confirm_delivery(lambda frame: on_ack(ch, frame))
        publish(ch)

    conn = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_close_callback=lambda c, r: c.ioloop.stop(),
    )
    conn.ioloop.start()
    return time.perf_counter() - began


def raw_read_s(url: str, stream: str, count: int) -> float:
    """Seconds a raw read of `count` records from the stream's start takes: through the stream
    port (`brokers.stream.read_stream`), decoding nothing."""
    began = time.perf_counter()
    seen = 0

    def enough(_record: StreamRecord) -> bool:
        return seen >= count

    with channel(url) as ch:
        for _record in read_stream(
            ch, stream, "first", stop=enough, max_wait_s=10, prefetch=RAW_PREFETCH
        ):
            seen += 1
    return time.perf_counter() - began


def first_job_s(settings: object, started: float) -> float:
    """Seconds from `started` until a new job has started on the QPU."""
    client = QPUClient(settings=settings)  # type: ignore[arg-type]
    client.control(CommandName.STATUS, timeout=600)
    result = client.submit(analog_sequence(2), 1).result(timeout=120)
    client.close()
    assert result.timings.started_at is not None
    return result.timings.started_at.timestamp() - started


def activation_line(process: subprocess.Popen[bytes]) -> str:
    """The owner's log line that says how long its activation (replay) took."""
    log_path = str(process.args[-1])  # type: ignore[index]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            for line in log:
                if "active owner" in line:
                    return line.split(": ", 1)[-1].strip()
        time.sleep(0.2)
    raise AssertionError("the owner never became active")


def main(jobs: int) -> None:
    """Print activation times with and without a snapshot, and the raw read of the log."""
    with bench_namespace() as settings:
        topology = build_topology(settings, Policy())
        events = history(jobs)
        fill_s = fill(settings.amqp_url, topology.events_exchange, events)
        raw_s = raw_read_s(settings.amqp_url, topology.events_stream, len(events))
        env = {"QSCHED_OWNER__LEASE_RETRY_S": "0.2"}
        began = time.time()
        with owner_process(settings, "--backend", "synthetic", env=env) as first:
            full_s = first_job_s(settings, began)
            full_line = activation_line(first)
            deadline = time.monotonic() + 120
            with channel(settings.amqp_url) as ch:
                while (
                    ch.queue_declare(topology.snapshot_queue, passive=True).method.message_count
                    == 0
                ):
                    assert time.monotonic() < deadline, "no snapshot was written"
                    time.sleep(0.2)
            first.kill()
            first.wait()
            began = time.time()
            with owner_process(settings, "--backend", "synthetic", env=env) as second:
                snap_s = first_job_s(settings, began)
                snap_line = activation_line(second)
    print(f"activation with {len(events):,} events in the log (filled in {fill_s:.1f} s)")
    print(f"  raw read of the whole log         {raw_s:7.2f} s")
    print(
        f"  owner, full replay (no snapshot)  {full_s:7.2f} s from process start to a job started"
    )
    print(f"      {full_line}")
    print(
        f"  owner, snapshot + tail            {snap_s:7.2f} s from process start to a job started"
    )
    print(f"      {snap_line}")
    print(
        json.dumps(
            {
                "bench": "activation",
                "events": len(events),
                "raw_read_s": raw_s,
                "full_replay_s": full_s,
                "snapshot_s": snap_s,
            }
        )
    )
