"""Carrying out what the core asks for: runs started and stopped, replies, answers read from the
log, dead letters, and the re-check of a job's sequence before it starts (`Recheck`).

The executor is given what effects touch, not the shell: the publisher, the sequences of runs
(memory or the log), the backends (the QPU's and the lanes', with the inboxes their reports come
back to) and the answer channel (`JobAnswers`, with the results the owner remembers). The shell
decides *when* an effect is carried out (a run at once, the rest once its events are confirmed);
this module only *how*. `remember` keeps the memory those effects read from up to date with every
applied event (sequences kept and dropped, results, run spans).
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from brokers.connection import Connection
from brokers.topology import Topology
from brokers.tracing import tracing_active
from consumers.backends.base import Backend, RunRequest
from consumers.core.outcomes import (
    AnswerBatchResults,
    AnswerFromLog,
    DeadLetter,
    Effect,
    Recheck,
    Reply,
    StartRun,
    StopRun,
)
from consumers.core.policy import best_indexed
from consumers.core.state import OwnerState
from consumers.core.step import Finished, Input
from consumers.core.view import view_of
from consumers.owner.joblog import JobAnswers
from consumers.owner.pending import Pending
from consumers.owner.policylog import PolicyInForce
from consumers.owner.positions import send_receipt
from consumers.owner.publish import Publisher
from consumers.owner.reports import ReportInbox
from consumers.owner.run_sequences import RunSequences
from consumers.owner.sequences import SequenceMissing, batch_key
from consumers.owner.settle import Delivery, dead_letter
from consumers.owner.spans import JobTraces
from schemas.enums import ErrorCode
from schemas.envelope import Event
from schemas.errors import SchemaError
from schemas.events import BatchCreated, JobAccepted, Topic, make_event, payload_of
from schemas.jobs import JobError, JobProgress, JobReceipt, JobResult
from schemas.wire import Message

log = logging.getLogger("consumers.owner")

REMEMBERED_RESULTS = 10_000
FINAL = {Topic.JOB_DONE, Topic.JOB_ERROR, Topic.JOB_CANCELED, Topic.JOB_TIMED_OUT}


class Backends:
    """Where runs go: the QPU's backend and the emulator lanes' (`consumers.owner.lanes`), and the
    inboxes their reports come back to (the lanes' apart, handled after the QPU's).

    Args:
        qpu: the QPU's backend.
        lanes: the lanes' backends, by lane name.
        connection: the owner's connection, woken when a report comes in
            (`consumers.owner.reports`).
    """

    def __init__(self, qpu: Backend, lanes: Mapping[str, Backend], connection: Connection) -> None:
        self.qpu = qpu
        self.lanes = dict(lanes)
        self.inbox: queue.SimpleQueue[Input] = queue.SimpleQueue()
        self.lane_inbox: queue.SimpleQueue[Input] = queue.SimpleQueue()
        self._connection = connection

    def of(self, lane: str | None) -> Backend:
        """The backend of `lane` (None: the QPU's)."""
        return self.lanes[lane] if lane else self.qpu

    def reports_to(self, lane: str | None) -> ReportInbox:
        """Where a run on `lane` (None: the QPU) reports."""
        return ReportInbox(self.lane_inbox if lane else self.inbox, self._connection)

    def stop(self, job_id: str) -> None:
        """Stop the job wherever it runs (a backend ignores jobs it does not run)."""
        self.qpu.cancel(job_id)
        for lane in self.lanes.values():
            lane.cancel(job_id)

    def abandon(self, state: OwnerState) -> None:
        """Stop the local runs of an owner that lost the broker: the next one puts them back."""
        if state.running is not None:
            self.qpu.cancel(state.running.job.job_id)
        for run in state.lanes.values():
            for lane in self.lanes.values():
                lane.cancel(run.job.job_id)


class Effects:
    """The effects of one activation, carried out.

    Args:
        state: the owner's state (read: runs, epoch, batches).
        in_force: the policy (read to pick the next job whose sequence to warm).
        clock: the owner's clock.
        device: the device of the current epoch (a `Recheck` is against it).
        publisher: replies and dead letters go out through it.
        topology: the queue names dead letters go to.
        runs: the sequences of runs, from memory or the log.
        backends: the QPU's and the lanes'.
        answers: the answer channel (`result`/`history` replies, results to waiters).
        traces: the jobs' spans.
        pending: replies are registered here for their confirms.
    """

    def __init__(
        self,
        state: OwnerState,
        in_force: PolicyInForce,
        clock: Callable[[], datetime],
        device: Callable[[], Any],
        publisher: Publisher,
        topology: Topology,
        runs: RunSequences,
        backends: Backends,
        answers: JobAnswers,
        traces: JobTraces,
        pending: Pending,
    ) -> None:
        self.state = state
        self.in_force = in_force
        self.clock = clock
        self.device = device
        self.publisher = publisher
        self.topology = topology
        self.runs = runs
        self.backends = backends
        self.answers = answers
        self.results = answers.results
        self.traces = traces
        self.pending = pending

    def carry_out(self, effect: Effect, delivery: Delivery | None) -> list[Event]:
        """Do `effect`; the events that doing it calls for (a reply that cannot be written)."""
        if isinstance(effect, Reply):
            failed = self._reply(effect)
            self.answers.forward(effect.message)  # to those waiting with `result --wait`
            return failed
        if isinstance(effect, AnswerFromLog):
            self.answers.answer(effect)
        elif isinstance(effect, AnswerBatchResults):
            self.answers.answer_batch(effect.reply_to, effect.reply, effect.job_ids)
        elif isinstance(effect, StartRun):
            self._start(effect)
        elif isinstance(effect, StopRun):
            self.backends.stop(effect.job_id)
        elif isinstance(effect, DeadLetter) and delivery is not None:
            dead_letter(self.publisher, self.topology, delivery, effect.error)
        return []

    def recheck(self, recheck: Recheck) -> JobError | None:
        """The job's problem with the device of the current epoch, or None."""
        return self.runs.recheck(recheck.job, recheck.shots, self.device(), self.state.epoch)

    def remember(self, event: Event) -> None:
        """What an applied event changes in the memory effects read (sequences, results, spans)."""
        topic = event.topic
        job_id = event.job_id or ""
        store = self.runs.store
        if topic in (Topic.JOB_ACCEPTED, Topic.JOB_RESUBMITTED):
            sequence = payload_of(event, JobAccepted).job.sequence
            if sequence:  # a batch's job runs its batch's sequence (`batch.created`)
                store.keep(job_id, sequence)
            self.results.pop(job_id, None)  # a resubmitted job's old result is not its answer
        elif topic == Topic.BATCH_CREATED:
            created = payload_of(event, BatchCreated)
            store.keep(batch_key(created.batch_id), created.sequence)
        elif event.result is not None and topic in FINAL:
            self.results[job_id] = event.result
            if len(self.results) > REMEMBERED_RESULTS:
                self.results.popitem(last=False)
            if topic == Topic.JOB_ERROR:
                store.retire(job_id)  # `qsched requeue` may take it back
            else:
                store.forget(job_id)  # its spans close once the result is sent (`_reply`)
        elif topic == Topic.JOB_REJECTED:
            store.forget(job_id)
        elif topic in (Topic.JOB_PREEMPTED, Topic.JOB_REQUEUED, Topic.JOB_RETRYING):
            self.traces.run_ended(job_id, event.at, topic.rsplit(".", 1)[-1])

    def _reply(self, reply: Reply) -> list[Event]:
        if isinstance(reply.message, JobReceipt):  # a notice like a position, not a result
            send_receipt(self.publisher, reply.reply_to or "", reply.message)
            return []
        message: Message | None = reply.message
        if message is None:  # a duplicate: answer it from the result, if we remember it
            message = self.results.get(reply.correlation_id)
        # A job's result (not a duplicate's copy) ends its trace: the send span's context goes
        # in the reply's headers.
        traced = isinstance(reply.message, JobResult) and tracing_active()
        if message is None or not reply.reply_to:
            if traced and isinstance(message, JobResult):
                with self.traces.sending(message, None, reply.job, time.time_ns()):
                    pass
            return []
        if not isinstance(message, JobProgress):
            self.pending.reply(reply.correlation_id, reply.reply_to, self.publisher.last_tag + 1)
        try:
            if traced and isinstance(message, JobResult):
                sending = self.traces.sending(message, reply.reply_to, reply.job, time.time_ns())
                with sending as headers:
                    self.publisher.reply(reply.reply_to, message, reply.correlation_id, headers)
            else:
                self.publisher.reply(reply.reply_to, message, reply.correlation_id)
        except SchemaError as exc:  # cannot be written at all: never fatal, logged like a refusal
            why = f"{reply.reply_to}: {exc}"
            return [make_event(Topic.JOB_REPLY_FAILED, job_id=reply.correlation_id, reason=why)]
        return []

    def _start(self, start: StartRun) -> None:
        job = start.job
        run = self.state.run_of(job.job_id)
        epoch = run.epoch if run is not None else self.state.epoch
        backend = self.backends.of(start.lane)
        try:
            sequence = self.runs.fetch(job)
        except SequenceMissing as exc:
            log.error("%s", exc)
            self.backends.inbox.put(
                Finished(job.job_id, error=JobError(code=ErrorCode.INTERNAL, message=str(exc)))
            )
            return
        # The QPU first; the trace's bookkeeping after (it is not on the QPU's critical path).
        backend.start(
            RunRequest(
                job.job_id,
                sequence,
                start.shots,
                start.attempt,
                self.runs.variables(self.state, job),
            ),
            self.backends.reports_to(start.lane),
        )
        if start.lane is None:
            self._warm_next()
        if not tracing_active():  # no provider: the spans would be no-ops; skip building them
            return
        attributes = {
            "qsched.backend": backend.name,
            "qsched.lane": start.lane or "qpu",
            "qsched.epoch": epoch,
            "qsched.attempt": start.attempt,
            "qsched.shots": start.shots,
        }
        started_at = run.started_at if run is not None else self.clock()
        self.traces.run_started(job, started_at, attributes, time.time_ns())

    def _warm_next(self) -> None:
        """While a job runs, read the likely next job's sequence back from the log if it is
        not in memory, so the QPU does not wait for it."""
        now = self.clock()
        policy = self.in_force.policy
        following, _ = best_indexed(view_of(self.state, policy, now), self.state.index, now)
        if following is not None:
            self.runs.warm(following)
