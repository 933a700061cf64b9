"""Synthetic event logs for the event-log readers' unit tests (the owner's topics and payloads)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from schemas.enums import ErrorCode, JobState, QPUState
from schemas.messages import Event, JobError, JobResult, Timings

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """`T0` plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def queued(
    job_id: str, t: float, job_class: str = "production", user: str = "alice", shots: int = 100
) -> Event:
    """A ``job.queued`` event."""
    return Event(
        topic="job.queued",
        at=at(t),
        job_id=job_id,
        job_class=job_class,
        user=user,
        data={
            "priority": 0,
            "shots": shots,
            "traceparent": f"00-{job_id.replace('-', '')[:32]:0>32}-00f067aa0ba902b7-01",
        },
    )


def started(
    job_id: str, t: float, job_class: str = "production", user: str = "alice", attempt: int = 1
) -> Event:
    """A ``job.started`` event."""
    return Event(
        topic="job.started",
        at=at(t),
        job_id=job_id,
        job_class=job_class,
        user=user,
        reason=f"{job_class} first by rank",
        qpu_state=QPUState.RUNNING,
        data={"attempt": attempt, "backend": "synthetic"},
    )


def final(
    job_id: str,
    t: float,
    state: JobState = JobState.DONE,
    job_class: str = "production",
    shots: int = 100,
    epoch: int = 0,
) -> Event:
    """A final event carrying its result."""
    error = (
        None if state is JobState.DONE else JobError(code=ErrorCode.BACKEND_ERROR, message="boom")
    )
    result = JobResult(
        job_id=job_id,
        state=state,
        job_class=job_class,
        shots=shots,
        counts={"00": shots} if state is JobState.DONE else {},
        error=error,
        timings=Timings(queued_at=at(0), started_at=at(t - 1), ended_at=at(t)),
        epoch=epoch,
    )
    return Event(
        topic=f"job.{state.value.lower()}",
        at=at(t),
        job_id=job_id,
        job_class=job_class,
        reason=error.message if error else None,
        result=result,
    )


def simple(topic: str, t: float, **fields: object) -> Event:
    """Any other event."""
    return Event(topic=topic, at=at(t), **fields)  # type: ignore[arg-type]


def scenario() -> list[Event]:
    """A log with every shape: done, error, preempted and restarted, interrupted, canceled while
    queued, a calibration, a pause, a DOWN spell, maintenance, and a refused command."""
    a, b, c, d, e = (f"{n}0000000-aaaa-bbbb-cccc-000000000000" for n in "abcde")
    return [
        simple("owner.active", 0),
        queued(a, 1),
        queued(b, 1.5, "development", "bob"),
        started(a, 2),
        queued(c, 2.5, "development", "bob"),
        final(a, 4),
        started(b, 4.1, "development", "bob"),
        Event(
            topic="job.preempting",
            at=at(5),
            job_id=b,
            job_class="development",
            reason="production preempts development",
        ),
        queued(d, 4.9, "production", "carol"),
        Event(
            topic="job.preempted",
            at=at(5.2),
            job_id=b,
            job_class="development",
            user="bob",
            reason="production preempts development",
            data={"preemptions": 1, "shots_done": 40, "shots": 100, "execution_s": 1.1},
        ),
        started(d, 5.3, "production", "carol"),
        final(d, 6, JobState.ERROR),
        simple("calibration.started", 6.5, qpu_state=QPUState.CALIBRATING, data={"epoch": 0}),
        simple("calibration.complete", 8, reason="epoch 1", data={"epoch": 1}),
        started(b, 8.2, "development", "bob", attempt=2),
        simple("owner.active", 9),
        started(b, 9.5, "development", "bob", attempt=2),
        final(b, 10, job_class="development", epoch=1),
        simple("control.pause", 10.5, user="op", data={"ok": True}),
        simple("control.resume", 11, user="op", data={"ok": True}),
        simple("control.pause", 11.2, user="mallory", data={"ok": False}),
        simple("qpu.down", 11.5, qpu_state=QPUState.DOWN, reason="system not operational"),
        simple("qpu.up", 12, qpu_state=QPUState.IDLE),
        simple(
            "control.mode",
            12.5,
            user="op",
            data={"mode": "maintenance", "message": "laser", "ok": True},
        ),
        final(c, 13, JobState.CANCELED, job_class="development"),
        simple("control.mode", 14, user="op", data={"mode": "production", "ok": True}),
        queued(e, 14.5),
        started(e, 15),
        Event(topic="job.progress", at=at(15.5), job_id=e, job_class="production"),
    ]


def big_log(jobs: int, seed: int = 7) -> list[Event]:
    """`jobs` jobs from a few users run back to back, a few failing, one calibration per 500."""
    rng = random.Random(seed)
    users = [f"user{i}" for i in range(12)]
    events: list[Event] = [simple("owner.active", 0)]
    t = 1.0
    for i in range(jobs):
        job_id = f"{i:08x}-0000-4000-8000-{rng.getrandbits(48):012x}"
        user = rng.choice(users)
        job_class = rng.choice(["production", "development"])
        events.append(queued(job_id, t, job_class, user))
        t += rng.uniform(0.5, 5)
        events.append(started(job_id, t, job_class, user))
        t += rng.uniform(1, 30)
        state = JobState.ERROR if rng.random() < 0.05 else JobState.DONE
        events.append(final(job_id, t, state, job_class))
        if i % 500 == 499:
            events.append(simple("calibration.started", t + 1))
            t += 60
            events.append(simple("calibration.complete", t, data={"epoch": i // 500 + 1}))
    return events
