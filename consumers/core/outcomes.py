"""What `step` returns: effects for the shell, and the builders of the events every path shares.

An effect is I/O the shell carries out after the events before it are confirmed and applied:
`Reply` (answer a submitter or operator), `StartRun`/`StopRun` (drive the backend), `DeadLetter`
(refuse the delivery being handled, with its reason), `AnswerFromLog` (a reply the shell completes
from the results it holds or the log), `AwaitAllocation` (keep a job delivery until its Slurm
allocation is registered), `AnswerBatchResults` (a batch's results, from memory or the log),
`Recheck` (check a job's sequence against the current device before it starts; the answer comes
back as an input). The shared builders: `job_event` (any event about one
job), a job's final event and result, ending a waiting job, stopping a running one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from consumers.core.order import Waiting
from consumers.core.state_data import Run
from schemas.control import ControlReply
from schemas.enums import JobState
from schemas.envelope import Event
from schemas.events import FINAL_TOPICS, JobStopping, Payload, Topic, make_event
from schemas.jobs import JobError, JobResult, RunInterval, Timings
from schemas.wire import Message


@dataclass(frozen=True)
class Reply:
    """Send `message` to `reply_to` (None: the sender gave none; `message` None: the shell
    answers a duplicate from the results it remembers). `job`: the facts of a job that ends
    while waiting (the shell's trace of it starts from them)."""

    reply_to: str | None
    message: Message | None
    correlation_id: str
    job: Waiting | None = None


@dataclass(frozen=True)
class StartRun:
    """Run `shots` shots of a job on the backend (its sequence is the shell's to find)."""

    job: Waiting
    shots: int
    attempt: int
    lane: str | None = None  # an emulator lane (None: the QPU)


@dataclass(frozen=True)
class Recheck:
    """Check the job's sequence against the current device before it starts: a calibration came
    since it was last checked. The shell steps the decision again with the job as `checked` when
    it passes (`Dispatch.checked`, `LaneDispatch.checked`), or feeds `Invalidated`."""

    job: Waiting
    shots: int


@dataclass(frozen=True)
class StopRun:
    """Stop the backend's run of a job; its `Finished` comes back canceled."""

    job_id: str


@dataclass(frozen=True)
class DeadLetter:
    """Refuse the delivery being handled: dead-letter it with this reason."""

    error: JobError


@dataclass(frozen=True)
class AnswerFromLog:
    """Answer a `result` or `history` command: the shell completes `reply` with what it finds
    of `job_id` in memory or in the log, and with `watch`, sends the result when the job ends."""

    reply_to: str | None
    reply: ControlReply
    job_id: str
    watch: bool = False
    ended: bool = False


@dataclass(frozen=True)
class AwaitAllocation:
    """Keep the delivery being handled (unacked) until `allocation` is registered or the
    policy's registration grace is over, then step it again (`consumers.owner.parking`)."""

    allocation: str


@dataclass(frozen=True)
class AnswerBatchResults:
    """Answer a `batch-results` command: the shell completes `reply` with the results of
    `job_ids` (the batch's ended jobs) from memory or the log."""

    reply_to: str | None
    reply: ControlReply
    job_ids: list[str]


Effect = (
    Reply
    | StartRun
    | StopRun
    | DeadLetter
    | AnswerFromLog
    | AwaitAllocation
    | AnswerBatchResults
    | Recheck
)
Steps = tuple[list[Event], list[Effect]]


def job_event(
    topic: Topic,
    payload: Payload | None,
    job: Waiting,
    reason: str | None = None,
    *,
    result: JobResult | None = None,
) -> Event:
    """An event about `job`, its envelope naming the job, its class and its submitter."""
    return make_event(
        topic,
        payload,
        job_id=job.job_id,
        job_class=job.job_class,
        user=job.user,
        reason=reason,
        result=result,
    )


def final_event(
    job: Waiting,
    final: JobState,
    error: JobError | None,
    now: datetime,
    *,
    counts: dict[str, int] | None = None,
    run: Run | None = None,
    backend: str | None = None,
) -> tuple[Event, JobResult]:
    """A job's final event (with the whole result in the envelope) and the result itself."""
    result = JobResult(
        job_id=job.job_id,
        state=final,
        job_class=job.job_class,
        shots=job.shots,
        counts=counts if counts is not None else dict(job.prior_counts),
        error=error,
        timings=timings_of(job, final, now, run, backend),
        backend=backend if run is not None else None,
        epoch=run.epoch if run is not None else None,
        attempts=run.attempt if run is not None else job.attempt - 1,
        preemptions=job.preemptions,
        lane=run.lane if run is not None else None,
        specs=run.specs if run is not None else None,
    )
    reason = error.message if error is not None else None
    event = job_event(FINAL_TOPICS[final], None, job, reason, result=result)
    return event, result


def timings_of(
    job: Waiting, final: JobState, now: datetime, run: Run | None, backend: str | None
) -> Timings:
    """A job's timings over every run: its earlier ones and `run`, the one ending now (if any).
    The queue wait is from its acceptance to its first start, as metrics and `simulate` count
    it."""
    runs = list(job.runs)
    if run is not None:
        runs.append(
            RunInterval(
                started_at=run.started_at,
                ended_at=max(now, run.started_at),
                lane=run.lane,
                backend=backend,
                attempt=max(run.attempt, 1),
                outcome=final.value,
            )
        )
    first = runs[0].started_at if runs else None
    return Timings(
        queued_at=job.queued_at,
        submitted_at=job.submitted_at,
        started_at=first,
        ended_at=now,
        queue_wait_s=max((first - job.queued_at).total_seconds(), 0.0) if first else None,
        execution_s=sum(r.seconds for r in runs) if runs else None,
        qpu_s=sum(r.seconds for r in runs if r.lane is None) if runs else None,
        runs=runs,
    )


def end_waiting(
    job: Waiting,
    final: JobState,
    error: JobError,
    now: datetime,
    reply_to: str | None = None,
) -> tuple[list[Event], list[Effect]]:
    """End a job that is not on the QPU: its final event and the answer to its submitter."""
    event, result = final_event(job, final, error, now)
    return [event], [Reply(reply_to or job.reply_to, result, job.job_id, job)]


def stopping_event(job: Waiting, error: JobError, final: JobState) -> Event:
    """The running job is being stopped and will end `final` with `error`."""
    return job_event(Topic.JOB_STOPPING, JobStopping(error=error, state=final), job, error.message)
