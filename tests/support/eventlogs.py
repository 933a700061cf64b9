"""Synthetic event logs for the event-log readers' unit tests, built with the owner's typed
payloads (`schemas.events`), so they break when the contract does."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from schemas.events import (
    CalibrationComplete,
    CalibrationEpoch,
    ControlApplied,
    JobAccepted,
    JobBack,
    JobPreempting,
    JobProgress,
    JobStarted,
    OwnerActivated,
    QPUStatus,
    Topic,
    make_event,
)
from schemas.jobs import JobError, JobRequest, JobResult, Timings

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """`T0` plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


SEQUENCE = '{"register": "stub"}'


def queued(
    job_id: str, t: float, job_class: str = "production", user: str = "alice", shots: int = 100
) -> Event:
    """A ``job.accepted`` event (the job entered the backlog), with a W3C trace context."""
    job = JobRequest(
        job_id=job_id, job_class=job_class, shots=shots, sequence=SEQUENCE, submitted_at=at(t)
    )
    trace = {"traceparent": f"00-{job_id.replace('-', '')[:32]:0>32}-00f067aa0ba902b7-01"}
    return make_event(
        Topic.JOB_ACCEPTED,
        JobAccepted(job=job, user=user, trace=trace),
        at=at(t),
        job_id=job_id,
        job_class=job_class,
        user=user,
    )


def started(
    job_id: str,
    t: float,
    job_class: str = "production",
    user: str = "alice",
    attempt: int = 1,
    epoch: int = 0,
    shots: int = 100,
    lane: str | None = None,
) -> Event:
    """A ``job.started`` event (on the QPU, or on emulator `lane`)."""
    payload = JobStarted(
        attempt=attempt,
        epoch=epoch,
        backend="emulator" if lane else "synthetic",
        shots=shots,
        lane=lane,
        specs="0123456789ab" if lane else None,
    )
    return make_event(
        Topic.JOB_STARTED,
        payload,
        at=at(t),
        job_id=job_id,
        job_class=job_class,
        user=user,
        reason=f"{job_class} first by rank",
    )


def back(topic: Topic, job_id: str, t: float, reason: str, shots_done: int = 40) -> Event:
    """A ``job.preempted`` or ``job.requeued`` event: the job waits again."""
    return make_event(
        topic,
        JobBack(
            shots_done=shots_done,
            shots=100,
            execution_s=1.1,
            preempted=topic is Topic.JOB_PREEMPTED,
        ),
        at=at(t),
        job_id=job_id,
        job_class="development",
        user="bob",
        reason=reason,
    )


def control(command: str, t: float, user: str = "op", ok: bool = True, **fields: object) -> Event:
    """A ``control.<command>`` event as the owner answered it."""
    applied = ControlApplied(ok=ok, command_id=f"cmd-{command}-{t}", **fields)  # type: ignore[arg-type]
    return make_event(f"control.{command}", applied, at=at(t), user=user)


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


def activated(t: float, term: int) -> Event:
    """An ``owner.activated`` event of `term`."""
    return make_event(
        Topic.OWNER_ACTIVATED, OwnerActivated(term=term, backend="synthetic"), at=at(t), term=term
    )


def scenario() -> list[Event]:
    """A log with every shape: done, error, preempted and restarted, interrupted by an owner
    failover, canceled while queued, a calibration, a pause, a DOWN spell, maintenance, a refused
    command, and an event from a stale term."""
    a, b, c, d, e = (f"{n}0000000-aaaa-bbbb-cccc-000000000000" for n in "abcde")
    preempting = make_event(
        Topic.JOB_PREEMPTING,
        JobPreempting(challenger=d),
        at=at(5),
        job_id=b,
        job_class="development",
        user="bob",
        reason="production preempts development",
    )
    return [
        activated(0, 1),
        queued(a, 1),
        queued(b, 1.5, "development", "bob"),
        started(a, 2),
        queued(c, 2.5, "development", "bob"),
        final(a, 4),
        started(b, 4.1, "development", "bob"),
        preempting,
        queued(d, 4.9, "production", "carol"),
        back(Topic.JOB_PREEMPTED, b, 5.2, "production preempts development"),
        started(d, 5.3, "production", "carol"),
        final(d, 6, JobState.ERROR),
        make_event(Topic.CALIBRATION_STARTED, CalibrationEpoch(epoch=0), at=at(6.5)),
        make_event(
            Topic.CALIBRATION_COMPLETE, CalibrationComplete(epoch=1), at=at(8), reason="epoch 1"
        ),
        started(b, 8.2, "development", "bob", attempt=2, epoch=1, shots=60),
        activated(9, 2),
        back(Topic.JOB_REQUEUED, b, 9.1, "it was on the QPU when owner 1 stopped"),
        started(b, 9.5, "development", "bob", attempt=3, epoch=1, shots=60),
        final(b, 10, job_class="development", epoch=1),
        control("pause", 10.5),
        started(c, 10.6, "development", "bob").model_copy(update={"term": 1}),  # stale: skipped
        control("resume", 11),
        control("pause", 11.2, user="mallory", ok=False),
        make_event(
            Topic.QPU_DOWN, QPUStatus(up=False), at=at(11.5), reason="system not operational"
        ),
        make_event(Topic.QPU_UP, QPUStatus(up=True), at=at(12)),
        control("mode", 12.5, mode="maintenance", message="laser"),
        final(c, 13, JobState.CANCELED, job_class="development"),
        control("mode", 14, mode="production"),
        queued(e, 14.5),
        started(e, 15),
        make_event(
            Topic.JOB_PROGRESS,
            JobProgress(shots_done=0),
            at=at(15.5),
            job_id=e,
            job_class="production",
        ),
    ]


def big_log(jobs: int, seed: int = 7) -> list[Event]:
    """`jobs` jobs from a few users run back to back, a few failing, one calibration per 500."""
    rng = random.Random(seed)
    users = [f"user{i}" for i in range(12)]
    events: list[Event] = [activated(0, 1)]
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
            epoch = i // 500
            events.append(
                make_event(Topic.CALIBRATION_STARTED, CalibrationEpoch(epoch=epoch), at=at(t + 1))
            )
            t += 60
            events.append(
                make_event(
                    Topic.CALIBRATION_COMPLETE, CalibrationComplete(epoch=epoch + 1), at=at(t)
                )
            )
    return events
