"""The owned backlog: decision time and memory at depth, intake rate, activation time.

    python -m bench backlog                      # 1k/10k/100k decisions + memory
    python -m bench backlog --jobs 5000          # ... and intake of 5,000 jobs through an owner
    python -m bench activation --jobs 100000     # activation after that many events in the log

Each figure is printed next to a baseline measured in the same run: the indexed decision next to
the reference decision (sort every waiting job); memory per waiting job next to the size of the
`job.accepted` event it came from; intake next to raw pika publishing with windowed confirms.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from bench.common import percentile
from consumers.core.policy import decide, decide_indexed
from consumers.core.state import OwnerState
from consumers.core.view import view_of
from schemas.codec import encode
from schemas.envelope import Event
from schemas.events import JobAccepted, OwnerActivated, Topic, make_event
from schemas.jobs import JobRequest, SlurmContext
from schemas.policy import Policy
from schemas.wire import new_id

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEQUENCE_20K = json.dumps({"register": [], "padding": "x" * 20_000})


def accepted_events(n: int, sequence: str, seed: int = 1) -> list[Event]:
    """`n` job.accepted events from 20 users in 4 accounts, three classes, all priorities."""
    rng = random.Random(seed)
    activated = OwnerActivated(term=1, backend="bench")
    events = [make_event(Topic.OWNER_ACTIVATED, activated, term=1, at=T0, event_id=new_id())]
    for i in range(n):
        user = f"user{rng.randrange(20)}"
        job = JobRequest(
            job_class=rng.choice(["production", "development", "calibration"]),
            shots=rng.randint(1, 1000),
            priority=rng.randrange(10),
            sequence=sequence,
            submitted_at=T0 + timedelta(milliseconds=i),
            slurm=SlurmContext(job_id=str(i % 50), account=f"acct{hash(user) % 4}"),
            min_epoch=1 if rng.random() < 0.01 else None,
        )
        events.append(
            make_event(
                Topic.JOB_ACCEPTED,
                JobAccepted(job=job, user=user),
                job_id=job.job_id,
                term=1,
                at=T0 + timedelta(milliseconds=i),
                event_id=new_id(),
            )
        )
    return events


def decisions(n: int, samples: int = 200) -> dict[str, float]:
    """Decision time at depth `n`, indexed vs the reference sort, in the same run."""
    policy = Policy()
    state = OwnerState.for_half_life(policy.fair_share_half_life_s)
    for event in accepted_events(n, "{}"):
        state.apply(event)
    indexed: list[float] = []
    reference: list[float] = []
    for k in range(samples):
        now = T0 + timedelta(seconds=60 + k * 7)
        view = view_of(state, policy, now)
        began = time.perf_counter()
        fast = decide_indexed(view, state.index, now)
        indexed.append((time.perf_counter() - began) * 1000)
        if k < max(3, samples // (n // 1000 + 1)):
            began = time.perf_counter()
            slow = decide(view, list(state.waiting.values()), now)
            reference.append((time.perf_counter() - began) * 1000)
            assert slow.job == fast.job, "the index and the reference disagree"
    return {
        "waiting": n,
        "indexed_p50_ms": percentile(indexed, 0.5),
        "indexed_p99_ms": percentile(indexed, 0.99),
        "reference_p50_ms": statistics.median(reference),
    }


def memory_per_job(n: int) -> dict[str, float]:
    """Bytes the state holds per waiting job whose sequence is ~20 KiB."""
    events = accepted_events(n, SEQUENCE_20K)
    event_bytes = len(encode(events[1], 64 * 1024 * 1024))
    gc.collect()
    tracemalloc.start()
    state = OwnerState.for_half_life(3600)
    for event in events:
        state.apply(event)
    del events
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"waiting": n, "bytes_per_job": held / n, "accepted_event_bytes": event_bytes}


def main(jobs: int) -> None:
    """Print decision times at 1k/10k/100k and memory per waiting job."""
    for n in (1_000, 10_000, 100_000):
        row = decisions(n)
        print(
            f"decide with {n:>7,} waiting: indexed p50 {row['indexed_p50_ms']:.3f} ms, "
            f"p99 {row['indexed_p99_ms']:.3f} ms; reference sort p50 "
            f"{row['reference_p50_ms']:.1f} ms "
            f"({row['reference_p50_ms'] / max(row['indexed_p50_ms'], 1e-6):.0f}x slower)"
        )
        print(json.dumps({"bench": "decide"} | row))
    mem = memory_per_job(min(jobs * 20, 100_000) if jobs < 5000 else 100_000)
    print(
        f"memory: {mem['bytes_per_job']:.0f} bytes per waiting job (its job.accepted event is "
        f"{mem['accepted_event_bytes']:,} bytes; goal < 2 KiB)"
    )
    print(json.dumps({"bench": "memory"} | mem))


def intake(jobs: int) -> dict[str, float]:
    """Jobs/s the owner accepts into its backlog vs raw pika windowed confirms, same run."""
    from bench.common import bench_namespace, owner_process
    from bench.submit import raw_pika_rate
    from brokers.connection import channel
    from producers.client import QPUClient
    from schemas.enums import CommandName
    from tests.support.sequences import analog_sequence

    sequence = analog_sequence(2)
    policy = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)  # noqa: SIM115
    policy.write(f"max_waiting_per_user = {max(jobs, 1)}\nmax_waiting_total = {max(jobs, 1)}\n")
    policy.close()  # one user's whole flood is the point here: lift the default limits
    args = ("--backend", "synthetic", "--policy", policy.name)
    with bench_namespace() as settings, owner_process(settings, *args):
        client = QPUClient(settings=settings)
        client.control(CommandName.STATUS, timeout=60)
        assert client.control(CommandName.PAUSE).ok  # accept everything, start nothing
        client.submit_many([client.build_job(sequence, 1) for _ in range(jobs)])
        deadline = time.monotonic() + 600
        while (status := client.control(CommandName.STATUS).status) is not None and sum(
            status.queue_depth.values()
        ) < jobs:
            assert time.monotonic() < deadline, "the owner did not accept every job"
            client.poll(0.2)
        accepted = [e.at for e in _log(settings) if e.topic == Topic.JOB_ACCEPTED]
        client.close()
        span_s = (max(accepted) - min(accepted)).total_seconds()
        body = encode(client.build_job(sequence, 1))
        queue = f"{settings.namespace}.bench-raw"
        with channel(settings.amqp_url) as ch:
            ch.queue_declare(queue, durable=True)
        raw = raw_pika_rate(settings.amqp_url, queue, body, jobs)
        with channel(settings.amqp_url) as ch:
            ch.queue_delete(queue)
    rate = jobs / span_s
    return {"jobs": jobs, "intake_jobs_per_s": rate, "raw_per_s": raw, "ratio": rate / raw}


def _log(settings: object) -> list[Event]:
    from brokers.connection import connect
    from brokers.topology import build_topology
    from consumers.tools.eventlog.reader import read_log

    topology = build_topology(settings, Policy())  # type: ignore[arg-type]
    conn = connect(settings.amqp_url, name="bench-backlog-log")  # type: ignore[attr-defined]
    try:
        return [record.event for record in read_log(conn, topology.events_stream)]
    finally:
        conn.close()


def main_with_intake(jobs: int) -> None:
    """Decisions and memory, then intake of `jobs` jobs through a real owner."""
    main(jobs)
    row = intake(jobs)
    print(
        f"intake of {jobs} jobs: {row['intake_jobs_per_s']:.0f} jobs/s accepted; raw pika "
        f"windowed confirms {row['raw_per_s']:.0f} msg/s; ratio {row['ratio']:.2f}x (goal >= 0.5x)"
    )
    print(json.dumps({"bench": "intake"} | row))
