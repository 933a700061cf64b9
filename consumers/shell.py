"""The active owner's imperative shell: inputs in, `step`, events out (confirmed), effects done.

Every change goes the same way: ask the pure core what an input means (`stage`), publish its
events (pipelined) and fold each into the state with `OwnerState.apply`, then `commit`: wait for
the events' confirms, then carry out what depends on them (replies, acks, dead letters).
Deliveries are collected by pika callbacks and handled in the loop, in arrival order, each acked
once its events are confirmed; any exception while handling one delivery dead-letters it and the
owner goes on. Dispatch runs after every batch of inputs.

The dispatch fast path: nothing about the QPU waits for a confirm. A backend's report is staged
(no wait), dispatch decides at once, and a start or a stop is carried out right after its event
is sent, before the confirms (start it, then settle). A confirm that fails drops the activation
(`PublishFailed`), which stops the run; the log, where only confirmed events are, decides again,
so a run whose `job.started` never reached the log is simply started again by the next owner.
Replies' confirms are checked at the next commit (a failed one becomes `job.reply_failed`).
"""

from __future__ import annotations

import logging
import queue
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from brokers.connection import Connection
from brokers.topology import Topology
from brokers.tracing import tracing_active
from consumers.backends.base import Backend, RunRequest
from consumers.core.batches import BatchArrival
from consumers.core.outcomes import (
    AnswerBatchResults,
    AnswerFromLog,
    AwaitAllocation,
    DeadLetter,
    Effect,
    Recheck,
    Reply,
    StartRun,
    StopRun,
)
from consumers.core.policy import best_indexed
from consumers.core.session_view import SessionPhases
from consumers.core.snapshot import to_data
from consumers.core.state import OwnerState
from consumers.core.step import (
    Arrival,
    Command,
    Context,
    Dispatch,
    Finished,
    Input,
    Invalidated,
    LaneDispatch,
    Tick,
    step,
)
from consumers.core.view import view_of
from consumers.deliveries import Refusal, refused
from consumers.joblog import JobAnswers
from consumers.parking import Parking
from consumers.pending import Pending
from consumers.positions import send_receipt
from consumers.publish import Publisher
from consumers.recovery import LogFollower, snapshot_payload
from consumers.run_sequences import RunSequences
from consumers.sequences import SequenceMissing, SequenceStore, batch_key
from consumers.settle import Delivery, ack, dead_letter
from consumers.sink import Sink
from consumers.spans import JobTraces
from schemas.enums import ErrorCode
from schemas.errors import MessageTooLarge, SchemaError
from schemas.events import BatchCreated, JobAccepted, Topic, make_event, payload_of
from schemas.messages import (
    Event,
    JobError,
    JobProgress,
    JobReceipt,
    JobResult,
    Message,
)
from schemas.policy import Policy
from schemas.sequence import SequenceChecker, SpecsDigest

log = logging.getLogger("consumers.owner")

REMEMBERED_RESULTS = 10_000
RECORD_EVENTS = 200  # events of one intake written as one stream record
RECORD_BYTES = 512 * 1024  # and at most about this much of their sequences
FINAL = {Topic.JOB_DONE, Topic.JOB_ERROR, Topic.JOB_CANCELED, Topic.JOB_TIMED_OUT}


class Shell:
    """The state, the policy and the I/O of one activation."""

    def __init__(
        self,
        state: OwnerState,
        policy: Policy,
        backend: Backend,
        ctx: Context,
        connection: Connection,
        publisher: Publisher,
        follower: LogFollower,
        store: SequenceStore,
        topology: Topology,
        clock: Callable[[], datetime],
        device: Callable[[], Any],
        on_event: Callable[[Event], None],
    ) -> None:
        self.state = state
        self.policy = policy
        self.backend = backend
        self.ctx = ctx
        self.connection = connection
        self.publisher = publisher
        self.follower = follower
        self.store = store
        self.topology = topology
        self.clock = clock
        self.device = device
        self._specs = SpecsDigest()
        self._on_event = on_event
        self.sequences = SequenceChecker(deep=False)  # `Owner` sets it from the settings
        self.runs = RunSequences(store, connection, topology.events_stream, self.sequences)
        self.inbox: queue.SimpleQueue[Input] = queue.SimpleQueue()
        self.results: OrderedDict[str, JobResult] = OrderedDict()
        self.traces = JobTraces(topology)
        self.pending = Pending()
        self.parking = Parking()  # job deliveries waiting for their allocation's registration
        self._group: list[Event] | None = None  # events of an `intake_group`, to send
        self._deferred: list[tuple[Effect | None, Delivery | None]] = []
        self.events_since_snapshot = 0
        self.lane_backends: dict[str, Backend] = {}  # emulator lanes (`consumers.lanes`)
        self.lane_inbox: queue.SimpleQueue[Input] = queue.SimpleQueue()  # their reports
        self.answers = JobAnswers(
            follower.jobs,
            self.results,
            publisher.reply,
            connection,
            topology.events_stream,
            follower.max_bytes,
            lambda session: SessionPhases(self.state, self.policy, self.clock()).summary(session),
        )

    # ---- the one path --------------------------------------------------------------------------

    def handle(self, given: Input, delivery: Delivery | None = None) -> list[Effect]:
        """Step one input, then commit: its events confirmed, then its effects carried out."""
        effects = self.stage(given, delivery)
        self.commit()
        return effects

    def stage(self, given: Input, delivery: Delivery | None = None) -> list[Effect]:
        """Step one input: send and apply its events; keep its effects for `commit`. A batch's
        events (its creation and every job's acceptance) go as few records of the log."""
        events, effects = step(self.state, self.policy, given, self.clock(), self.ctx)
        self.emit(events, together=isinstance(given, BatchArrival))
        for effect in effects:
            if not isinstance(effect, AwaitAllocation):  # the caller keeps the delivery
                self._wait_for_events(effect, delivery)
        return effects

    def emit(self, events: list[Event], together: bool = False) -> None:
        """Send each event (`together`: up to `RECORD_EVENTS` to a stream record) and apply it
        (confirmed at the next `commit`). Inside `intake_group`, events are applied at once and
        sent as few records when the group ends."""
        if self._group is not None:
            for event in events:
                stamped = self.publisher.stamp(event)
                self.state.apply(stamped)
                self.events_since_snapshot += 1
                self._after(stamped)
                self._group.append(stamped)
            return
        size = RECORD_EVENTS if together else 1
        for first in range(0, len(events), size):
            self._send(events[first : first + size])

    def _send(self, events: list[Event]) -> None:
        """Publish events as one record, with the bookkeeping of where and when it lands."""
        for stamped in self.publisher.events(events):
            self.follower.learn(stamped, self.publisher.last_offset)
            self.pending.event(stamped.event_id, self.publisher.last_tag)
            if self._group is None:
                self.state.apply(stamped)
                self.events_since_snapshot += 1
                self._after(stamped)

    @contextmanager
    def intake_group(self) -> Iterator[None]:
        """Deliveries taken together: their events (already applied) are sent as records of up
        to `RECORD_EVENTS` events and `RECORD_BYTES` of sequences, then their effects and acks
        wait for those records' confirms (one publish and confirm per record, not per job)."""
        self._group, self._deferred = [], []
        try:
            yield
        finally:
            events, self._group = self._group, []
            chunk: list[Event] = []
            size = 0
            for event in events:
                weight = 1024 + len(str(event.data.get("job", {}).get("sequence", "")))
                if chunk and (len(chunk) >= RECORD_EVENTS or size + weight > RECORD_BYTES):
                    self._send(chunk)
                    chunk, size = [], 0
                chunk.append(event)
                size += weight
            if chunk:
                self._send(chunk)
            self._group = None
            deferred, self._deferred = self._deferred, []
            for effect, delivery in deferred:
                self._wait_for_events(effect, delivery)

    def _wait_for_events(self, effect: Effect | None, delivery: Delivery | None) -> None:
        """Carry out `effect` (None: ack `delivery`) once the events sent so far are confirmed."""
        if self._group is not None:
            self._deferred.append((effect, delivery))
        elif effect is None:
            assert delivery is not None
            self.pending.ack(delivery, self.publisher.last_tag)
        else:
            self.pending.effect(effect, delivery, self.publisher.last_tag)

    def commit(self) -> None:
        """Wait for the confirms of everything sent, then carry out what was waiting for them.

        Raises:
            PublishFailed: an event was not confirmed (the state is ahead of the log).
        """
        self.publisher.wait_confirmed()
        self.settle()

    def settle(self) -> None:
        """Carry out the staged effects and acks whose events are confirmed, without waiting.

        A reply the broker refused becomes a `job.reply_failed` event (itself confirmed later,
        like the replies sent now).

        Raises:
            PublishFailed: an event was refused (the state is ahead of the log).
        """
        failed = self.publisher.pump()
        ready = self.pending.ready(self.publisher.confirmed_through(), failed)
        for effect, delivery in ready.effects:
            self._carry_out(effect, delivery)
        for delivery in ready.acks:
            ack(delivery)
        if ready.failed_replies:
            self.emit(
                [
                    make_event(Topic.JOB_REPLY_FAILED, job_id=job_id, reason=f"{to}: {why}")
                    for job_id, (to, why) in ready.failed_replies.items()
                ]
            )

    def _after(self, event: Event) -> None:
        """Shell bookkeeping an applied event calls for (memory, spans, log lines)."""
        topic = event.topic
        job_id = event.job_id or ""
        if topic in (Topic.JOB_ACCEPTED, Topic.JOB_RESUBMITTED):
            sequence = payload_of(event, JobAccepted).job.sequence
            if sequence:  # a batch's job runs its batch's sequence (`batch.created`)
                self.store.keep(job_id, sequence)
            self.results.pop(job_id, None)  # a resubmitted job's old result is not its answer
        elif topic == Topic.BATCH_CREATED:
            created = payload_of(event, BatchCreated)
            self.store.keep(batch_key(created.batch_id), created.sequence)
        elif event.result is not None and topic in FINAL:
            self.results[job_id] = event.result
            if len(self.results) > REMEMBERED_RESULTS:
                self.results.popitem(last=False)
            if topic == Topic.JOB_ERROR:
                self.store.retire(job_id)  # `qsched requeue` may take it back
            else:
                self.store.forget(job_id)  # its spans close once the result is sent (`_reply`)
        elif topic == Topic.JOB_REJECTED:
            self.store.forget(job_id)
        elif topic in (Topic.JOB_PREEMPTED, Topic.JOB_REQUEUED, Topic.JOB_RETRYING):
            self.traces.run_ended(job_id, event.at, topic.rsplit(".", 1)[-1])
        self._on_event(event)

    # ---- effects -------------------------------------------------------------------------------

    def _carry_out(self, effect: Effect, delivery: Delivery | None) -> None:
        if isinstance(effect, Reply):
            self._reply(effect)
            self.answers.forward(effect.message)  # to those waiting with `result --wait`
        elif isinstance(effect, AnswerFromLog):
            self.answers.answer(effect)
        elif isinstance(effect, AnswerBatchResults):
            self.answers.answer_batch(effect.reply_to, effect.reply, effect.job_ids)
        elif isinstance(effect, StartRun):
            self._start(effect)
        elif isinstance(effect, StopRun):
            self.backend.cancel(effect.job_id)
            for lane in self.lane_backends.values():  # a backend ignores jobs it does not run
                lane.cancel(effect.job_id)
        elif isinstance(effect, DeadLetter) and delivery is not None:
            dead_letter(self.publisher, self.topology, delivery, effect.error)

    def _reply(self, reply: Reply) -> None:
        if isinstance(reply.message, JobReceipt):  # a notice like a position, not a result
            send_receipt(self.publisher, reply.reply_to or "", reply.message)
            return
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
            return
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
            self.emit([make_event(Topic.JOB_REPLY_FAILED, job_id=reply.correlation_id, reason=why)])

    def _start(self, start: StartRun) -> None:
        job = start.job
        run = self.state.run_of(job.job_id)
        epoch = run.epoch if run is not None else self.state.epoch
        backend = self.lane_backends[start.lane] if start.lane else self.backend
        try:
            sequence = self.runs.fetch(job)
        except SequenceMissing as exc:
            log.error("%s", exc)
            self.inbox.put(
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
            Sink(self.lane_inbox if start.lane else self.inbox, self.connection),
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
        following, _ = best_indexed(view_of(self.state, self.policy, now), self.state.index, now)
        if following is not None:
            self.runs.warm(following)

    # ---- inputs from the loop ------------------------------------------------------------------

    def job_delivery(
        self,
        parsed: Arrival | BatchArrival | Refusal,
        delivery: Delivery,
        validated_ns: tuple[int, int],
        since_s: float | None = None,
    ) -> None:
        """Stage one decoded job delivery; it is acked at the next `commit`, once its events
        are confirmed, or kept unacked while its Slurm allocation is not registered
        (`consumers.parking`; `since_s`: kept since then already)."""
        if isinstance(parsed, Refusal):
            self._refuse(parsed, delivery)
        elif isinstance(parsed, BatchArrival):
            self.stage(parsed, delivery)
        else:
            self.traces.took(parsed.job.job_id, validated_ns)
            parsed = self.parking.prepared(parsed, since_s)
            effects = self.stage(parsed, delivery)
            wait = next((e for e in effects if isinstance(e, AwaitAllocation)), None)
            if wait is not None:
                self.parking.keep(parsed, delivery, validated_ns, wait.allocation, since_s)
                return
        self._wait_for_events(None, delivery)

    def _refuse(self, refusal: Refusal, delivery: Delivery) -> None:
        """A delivery that is no job of its sender: log it unattached, answer, dead-letter."""
        events, effects = refused(refusal, delivery.queue, self.clock())
        self.emit(events)
        for effect in effects:
            self._wait_for_events(effect, delivery)

    def dispatch(self) -> None:
        """Ask the core what the QPU does next (`decide`)."""
        self.decide(Dispatch(specs=self._specs(self.device())))

    def decide(self, given: Dispatch | LaneDispatch) -> bool:
        """Step a decision (the QPU's or a lane's) and carry it out: a start or a stop at once,
        before the confirms; a re-check the core asks for (`Recheck`) here, then the decision
        again. True if a run started.
        """
        while True:
            events, effects = step(self.state, self.policy, given, self.clock(), self.ctx)
            recheck = next((e for e in effects if isinstance(e, Recheck)), None)
            if recheck is not None:
                problem = self._recheck(recheck)
                if problem is None:
                    given = replace(given, checked=recheck.job.job_id)
                else:
                    self.handle(Invalidated(recheck.job.job_id, problem))
                    given = replace(given, checked=None)
                continue
            self.emit(events)
            for effect in effects:
                if isinstance(effect, StartRun | StopRun):  # a run waits for no confirm
                    self._carry_out(effect, None)
                else:
                    self.pending.effect(effect, None, self.publisher.last_tag)
            self.settle()
            return any(isinstance(e, StartRun) for e in effects)

    def _recheck(self, recheck: Recheck) -> JobError | None:
        """The job's problem with the device of the current epoch, or None."""
        return self.runs.recheck(recheck.job, recheck.shots, self.device(), self.state.epoch)

    def drain_inbox(self) -> bool:
        """Stage what the backend reported (committed by the dispatch that follows, which may
        start the next job first); True if anything was."""
        handled = False
        while True:
            try:
                given = self.inbox.get_nowait()
            except queue.Empty:
                return handled
            self.stage(given)
            handled = True

    def tick(self) -> None:
        """Deadlines, queue ages, run-time limits; a snapshot when one is due."""
        self.handle(Tick())

    def snapshot_if_due(self, every_events: int, due_by_time: bool) -> None:
        """Write an `owner.snapshot` when enough happened; point to it once it is confirmed."""
        if self.events_since_snapshot < every_events and not (
            due_by_time and self.events_since_snapshot
        ):
            return
        payload = snapshot_payload(self.state, self.store, to_data, self.follower.jobs)
        event = self.publisher.stamp(make_event(Topic.OWNER_SNAPSHOT, payload))  # its id, now
        try:
            self.emit([event])
        except MessageTooLarge as exc:  # never fatal: activation then replays a longer tail
            log.error("owner.snapshot not written: %s (raise owner.snapshot_max_bytes)", exc)
        else:
            offset = self.publisher.last_offset
            self.commit()
            self.follower.point_to(event.event_id, offset)
        self.events_since_snapshot = 0

    def command(self, given: Command, delivery: Delivery) -> bool:
        """Handle one control command, ack it; True if the owner accepted it."""
        effects = self.stage(given, delivery)
        self.pending.ack(delivery, self.publisher.last_tag)
        self.commit()
        replies = [e.message for e in effects if isinstance(e, Reply)]
        return bool(replies) and bool(getattr(replies[-1], "ok", False))
