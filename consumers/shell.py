"""The active owner's imperative shell: inputs in, `step`, events out (confirmed), effects done.

Every change goes the same way (`handle`): ask the pure core what an input means, publish its
events one by one (each confirmed) and fold each into the state with `OwnerState.apply`, then
carry out the effects. Deliveries are collected by pika callbacks and handled in the loop, in
arrival order, each acked once its events are confirmed; any exception while handling one
delivery dead-letters it and the owner goes on. Dispatch runs after every batch of inputs.
"""

from __future__ import annotations

import logging
import queue
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pika.adapters.blocking_connection import BlockingConnection

from brokers.topology import Topology
from consumers.backends.base import Backend, RunRequest
from consumers.core.outcomes import DeadLetter, Effect, Reply, StartRun, StopRun
from consumers.core.policy import best_indexed
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
    Tick,
    step,
)
from consumers.core.view import view_of
from consumers.deliveries import Refusal, SequenceChecker
from consumers.publish import Publisher, PublishFailed
from consumers.recovery import LogFollower, snapshot_payload
from consumers.sequences import SequenceMissing, SequenceStore
from consumers.settle import Delivery, ack, dead_letter
from consumers.sink import Sink
from consumers.spans import JobSpans
from schemas.enums import ErrorCode, JobState
from schemas.events import JobAccepted, Refused, Topic, make_event, payload_of
from schemas.messages import Event, JobError, JobProgress, JobResult, Message, Timings
from schemas.policy import Policy
from schemas.sequence import validate_shots

log = logging.getLogger("consumers.owner")

REMEMBERED_RESULTS = 10_000
FINAL = {Topic.JOB_DONE, Topic.JOB_ERROR, Topic.JOB_CANCELED, Topic.JOB_TIMED_OUT}


class Shell:
    """The state, the policy and the I/O of one activation."""

    def __init__(
        self,
        state: OwnerState,
        policy: Policy,
        backend: Backend,
        ctx: Context,
        connection: BlockingConnection,
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
        self._on_event = on_event
        self.sequences = SequenceChecker()
        self.inbox: queue.SimpleQueue[Input] = queue.SimpleQueue()
        self.results: OrderedDict[str, JobResult] = OrderedDict()
        self.spans: dict[str, JobSpans] = {}
        self.validated: OrderedDict[str, tuple[int, int]] = OrderedDict()  # for `validate` spans
        self._staged: list[tuple[Effect, Delivery | None]] = []
        self._acks: list[Delivery] = []
        self._unconfirmed: set[str] = set()
        self._replies: dict[str, str] = {}
        self.events_since_snapshot = 0

    # ---- the one path --------------------------------------------------------------------------

    def handle(self, given: Input, delivery: Delivery | None = None) -> list[Effect]:
        """Step one input, then commit: its events confirmed, then its effects carried out."""
        effects = self.stage(given, delivery)
        self.commit()
        return effects

    def stage(self, given: Input, delivery: Delivery | None = None) -> list[Effect]:
        """Step one input: send and apply its events; keep its effects for `commit`."""
        events, effects = step(self.state, self.policy, given, self.clock(), self.ctx)
        self.emit(events)
        self._staged.extend((effect, delivery) for effect in effects)
        return effects

    def emit(self, events: list[Event]) -> None:
        """Send each event and apply it (confirmed at the next `commit`)."""
        for event in events:
            stamped = self.publisher.event(event)
            self._unconfirmed.add(stamped.event_id)
            self.state.apply(stamped)
            self.events_since_snapshot += 1
            self._after(stamped)

    def commit(self) -> None:
        """Wait for the confirms of every event sent, then carry out the staged effects and
        acks; a reply that cannot be delivered becomes a `job.reply_failed` event.

        Raises:
            PublishFailed: an event was not confirmed (the state is ahead of the log).
        """
        self._confirmed(self.publisher.flush())
        staged, self._staged = self._staged, []
        for effect, delivery in staged:
            self._carry_out(effect, delivery)
        acks, self._acks = self._acks, []
        for delivery in acks:
            ack(delivery)
        failed = self._confirmed(self.publisher.flush())
        if failed:
            self.emit(
                [
                    make_event(Topic.JOB_REPLY_FAILED, job_id=job_id, reason=f"{to}: {why}")
                    for job_id, (to, why) in failed.items()
                ]
            )
            self._confirmed(self.publisher.flush())

    def _confirmed(self, failed: dict[str, str]) -> dict[str, tuple[str, str]]:
        """Check a flush: a refused event is fatal; refused replies are returned."""
        events = [m for m in failed if m in self._unconfirmed]
        self._unconfirmed.clear()
        if events:
            raise PublishFailed(f"events not confirmed: {', '.join(events)}: {failed[events[0]]}")
        replies = {m: (self._replies[m], why) for m, why in failed.items() if m in self._replies}
        self._replies.clear()
        return replies

    def _after(self, event: Event) -> None:
        """Shell bookkeeping an applied event calls for (memory, spans, log lines)."""
        topic = event.topic
        job_id = event.job_id or ""
        if topic in (Topic.JOB_ACCEPTED, Topic.JOB_RESUBMITTED):
            self.store.keep(job_id, payload_of(event, JobAccepted).job.sequence)
            self.results.pop(job_id, None)  # a resubmitted job's old result is not its answer
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
        elif topic in (Topic.JOB_PREEMPTED, Topic.JOB_REQUEUED):
            spans = self.spans.pop(job_id, None)
            if spans is not None:
                spans.close("PREEMPTED", None)
        self._on_event(event)

    # ---- effects -------------------------------------------------------------------------------

    def _carry_out(self, effect: Effect, delivery: Delivery | None) -> None:
        if isinstance(effect, Reply):
            self._reply(effect)
        elif isinstance(effect, StartRun):
            self._start(effect)
        elif isinstance(effect, StopRun):
            self.backend.cancel(effect.job_id)
        elif isinstance(effect, DeadLetter) and delivery is not None:
            dead_letter(self.publisher, self.topology, delivery, effect.error)

    def _reply(self, reply: Reply) -> None:
        message: Message | None = reply.message
        if message is None:  # a duplicate: answer it from the result, if we remember it
            message = self.results.get(reply.correlation_id)
        spans = self.spans.pop(reply.correlation_id, None)
        if message is None or not reply.reply_to:
            if spans is not None and isinstance(message, JobResult):
                spans.close(message.state.value, message.error)
            return
        if not isinstance(message, JobProgress):
            self._replies[reply.correlation_id] = reply.reply_to
        if spans is not None and isinstance(message, JobResult):
            with spans.publishing():
                self.publisher.reply(reply.reply_to, message, reply.correlation_id)
            spans.close(message.state.value, message.error)
        else:
            self.publisher.reply(reply.reply_to, message, reply.correlation_id)

    def _start(self, start: StartRun) -> None:
        job = start.job
        run = self.state.running
        epoch = run.epoch if run is not None else self.state.epoch
        try:
            sequence = self.store.fetch(
                job.job_id, self.connection, self.topology.events_stream, self._wait_offset
            )
        except SequenceMissing as exc:
            log.error("%s", exc)
            self.inbox.put(
                Finished(job.job_id, error=JobError(code=ErrorCode.INTERNAL, message=str(exc)))
            )
            return
        attributes = {
            "qsched.job_class": job.job_class,
            "qsched.shots": job.shots,
            "qsched.priority": job.priority,
            "qsched.backend": self.backend.name,
            "qsched.epoch": epoch,
            "qsched.attempt": start.attempt,
            "qsched.user": job.user,
        }
        self.spans[job.job_id] = JobSpans.open(
            job,
            self.topology.job_queue(job.job_class),
            job.trace,
            attributes,
            self.validated.pop(job.job_id, None),
        )
        self.backend.start(
            RunRequest(job.job_id, sequence, start.shots, start.attempt),
            Sink(self.inbox, self.connection),
        )
        self._warm_next()

    def _warm_next(self) -> None:
        """While a job runs, read the likely next job's sequence back from the log if it is
        not in memory, so the QPU does not wait for it."""
        now = self.clock()
        following, _ = best_indexed(view_of(self.state, self.policy, now), self.state.index, now)
        if following is None or self.store.in_memory(following.job_id):
            return
        try:
            sequence = self.store.fetch(
                following.job_id, self.connection, self.topology.events_stream, self._wait_offset
            )
        except SequenceMissing:
            return  # found missing again when it is about to start; reported then
        self.store.keep(following.job_id, sequence)

    def _wait_offset(self, job_id: str) -> int | None:
        return self.follower.wait_for_offset(job_id)

    # ---- inputs from the loop ------------------------------------------------------------------

    def job_delivery(
        self, parsed: Arrival | Refusal, delivery: Delivery, validated_ns: tuple[int, int]
    ) -> None:
        """Stage one decoded job delivery; it is acked at the next `commit`, once its events
        are confirmed."""
        if isinstance(parsed, Refusal):
            self._refuse(parsed, delivery)
        else:
            self.validated[parsed.job.job_id] = validated_ns
            if len(self.validated) > REMEMBERED_RESULTS:
                self.validated.popitem(last=False)
            self.stage(parsed, delivery)
        self._acks.append(delivery)

    def _refuse(self, refusal: Refusal, delivery: Delivery) -> None:
        """A delivery that is no job of its sender: log it unattached, answer, dead-letter."""
        error = refusal.error
        self.emit(
            [
                make_event(
                    Topic.JOB_REJECTED,
                    Refused(
                        code=error.code.value, message_id=refusal.message_id, queue=delivery.queue
                    ),
                    user=refusal.user,
                    reason=error.message,
                )
            ]
        )
        self._staged.append((DeadLetter(error), delivery))
        if refusal.reply_to and refusal.message_id:
            now = self.clock()
            result = JobResult(
                job_id=refusal.message_id,
                state=JobState.REJECTED,
                job_class=delivery.queue.rsplit(".", 1)[-1],
                shots=0,
                error=error,
                timings=Timings(queued_at=now, ended_at=now),
            )
            self._staged.append((Reply(refusal.reply_to, result, refusal.message_id), delivery))

    def dispatch(self) -> None:
        """Ask the core what the QPU does next; re-check a job's sequence after a calibration."""
        while True:
            events, effects = step(self.state, self.policy, Dispatch(), self.clock(), self.ctx)
            start = next((e for e in effects if isinstance(e, StartRun)), None)
            if start is not None and start.job.validated_epoch < self.state.epoch:
                problem = self._revalidate(start)
                if problem is not None:
                    self.handle(Invalidated(start.job.job_id, problem))
                    continue
            self.emit(events)
            self._staged.extend((effect, None) for effect in effects)
            self.commit()
            return

    def _revalidate(self, start: StartRun) -> JobError | None:
        """The job's problem with the device of the current epoch, or None."""
        try:
            sequence = self.store.fetch(
                start.job.job_id, self.connection, self.topology.events_stream, self._wait_offset
            )
        except SequenceMissing as exc:
            return JobError(code=ErrorCode.INTERNAL, message=str(exc))
        device = self.device()
        # Admission already held the job to its device (DEVICE_MISMATCH unless it opted in);
        # here only the new calibration's limits are checked.
        problem = validate_shots(start.shots, device) or self.sequences.check(
            sequence, device, allow_device_switch=True
        )
        if problem is None:
            return None
        message = f"after calibration epoch {self.state.epoch}: {problem.message}"
        return problem.model_copy(update={"message": message})

    def drain_inbox(self) -> bool:
        """Handle what the backend reported; True if anything was."""
        handled = False
        while True:
            try:
                given = self.inbox.get_nowait()
            except queue.Empty:
                return handled
            self.handle(given)
            handled = True

    def tick(self) -> None:
        """Deadlines, queue ages, run-time limits; a snapshot when one is due."""
        self.handle(Tick())

    def snapshot_if_due(self, every_events: int, due_by_time: bool) -> None:
        """Write an `owner.snapshot` when enough happened and the follower has caught up."""
        if self.events_since_snapshot < every_events and not (
            due_by_time and self.events_since_snapshot
        ):
            return
        if not self.follower.caught_up(self.state):
            return
        payload = snapshot_payload(self.state, self.store, to_data)
        event = make_event(Topic.OWNER_SNAPSHOT, payload)
        self.follower.my_snapshots.add(event.event_id)
        self.emit([event])
        self.commit()
        self.events_since_snapshot = 0

    def command(self, given: Command, delivery: Delivery) -> bool:
        """Handle one control command, ack it; True if the owner accepted it."""
        self._acks.append(delivery)
        effects = self.handle(given, delivery)
        replies = [e.message for e in effects if isinstance(e, Reply)]
        return bool(replies) and bool(getattr(replies[-1], "ok", False))
