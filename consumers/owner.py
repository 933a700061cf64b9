"""The QPU owner's imperative shell: deliveries, timers and backend reports in, decisions out.

One thread owns the pika connection. It consumes every class queue with a small prefetch and
holds those deliveries as candidates; backend threads report through `_Sink`, which hands the
call to the connection thread with ``add_callback_threadsafe``. After every change the shell asks
the pure core (`consumers.core.policy.decide`) what to do and carries it out.

Delivery semantics. Prefetch defeats priority (a better job published after the window filled
is not delivered), so before deciding, the shell looks past every full window with one
``basic.get`` and hands back what it does not start. When a job starts, its delivery is replaced
by a record in ``<ns>.inflight`` (published and confirmed first, then the delivery is acked), so
no delivery stays unacked for the length of a job and RabbitMQ's ``consumer_timeout`` cannot fire
on it; held candidates are handed back (nack + requeue) before a third of that timeout. A job's
final event and reply are confirmed before its in-flight record is removed; a new owner re-runs
the job of a record it finds, and answers a job that already finished from the event log.

This module is longer than most: it is the one place that sequences deliveries, decisions and
backend reports on the connection thread. Policy (`core`), intake checks (`intake`), control
(`control`), the running job and its spans (`running`, `spans`) and log reading (`events`) live
in their own modules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from brokers.connection import connect
from brokers.settings import Settings
from brokers.topology import Topology, build_topology, declare
from consumers.backends.base import Backend, RunOutcome, RunRequest
from consumers.core.fairshare import Usage
from consumers.core.history import History
from consumers.core.machine import QPUEvent, transition
from consumers.core.policy import Action, Calibration, Decision, OwnerView, decide, order_key
from consumers.errors import BackendFailure, LeaseLost
from consumers.events import rebuild_history
from consumers.holdings import Held, Holdings
from consumers.intake import (
    SequenceChecker,
    allocation_ended,
    canceled_by,
    check_job,
    decode_error,
    refuse,
)
from consumers.lease import acquire_lease
from consumers.publish import Publisher
from consumers.running import Running, Sink, merge_counts, result_of
from consumers.spans import JobSpans
from schemas.codec import decode, encode
from schemas.enums import JobState, QPUState
from schemas.errors import DecodeError
from schemas.messages import (
    DeviceSpecs,
    Event,
    JobError,
    JobProgress,
    JobRequest,
    JobResult,
    Timings,
    utc_now,
)
from schemas.policy import Policy
from schemas.sequence import load_device, validate_shots

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-qsched-attempt"
PREEMPTIONS_HEADER = "x-qsched-preemptions"
COUNTS_HEADER = "x-qsched-counts"
USER_HEADER = "x-qsched-user"
REPLY_HEADER = "x-qsched-reply-to"
LOOP_TICK_S = 0.2


class Owner:
    """One QPU owner process: standby until it holds the lease, then the scheduler."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        backend: Backend,
        owner_id: str,
        clock: Callable[[], datetime] = utc_now,
        policy_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.policy_path = policy_path
        self.backend = backend
        self.owner_id = owner_id
        self.clock = clock
        self.topology: Topology = build_topology(settings, policy)
        self.state = QPUState.IDLE
        self.history = History()
        self.holdings = Holdings()
        self.running: Running | None = None
        self.sequences = SequenceChecker()
        self._stop = threading.Event()
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._refresh_s = settings.broker.consumer_timeout_s / 3
        self.connection: BlockingConnection | None = None
        self.jobs: BlockingChannel | None = None
        self.publisher: Publisher | None = None
        self.active = threading.Event()
        self._wants_dispatch = False
        self.device_override: Any = None  # specs installed by calibration-complete
        self.usage = Usage(policy.fair_share_half_life_s)
        self.class_usage = Usage(policy.fair_share_half_life_s)
        self.sessions: dict[str, datetime] = {}
        self.calibration_pending = False
        self._due_announced: int | None = None

    # ---- life cycle -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end (thread-safe)."""
        self._stop.set()

    def run(self) -> None:
        """Serve until stopped; after losing the broker, cancel local work and queue up again."""
        while not self._stop.is_set():
            try:
                self._serve()
            except (pika.exceptions.AMQPError, LeaseLost, OSError) as exc:
                log.error("lost the broker (%r); giving up the QPU and retrying", exc)
                self._abandon_running()
                self._stop.wait(1.0)
        self._abandon_running()

    def _abandon_running(self) -> None:
        self.active.clear()
        if self.running is not None:
            self.backend.cancel(self.running.job.job_id)
            if self.running.spans is not None:
                self.running.spans.abandon("owner lost the broker")
            self.running = None
        self.holdings = Holdings()
        self.state = QPUState.IDLE

    def _serve(self) -> None:
        settings = self.settings
        conn = connect(
            settings.amqp_url,
            heartbeat_s=settings.broker.heartbeat_s,
            name=f"qsched-owner {self.owner_id}",
        )
        self.connection = conn
        try:
            if (
                acquire_lease(
                    conn, self.topology.lease_queue, settings.owner.lease_retry_s, self._stop.is_set
                )
                is None
            ):
                return
            self._activate(conn)
            while not self._stop.is_set():
                conn.process_data_events(time_limit=LOOP_TICK_S)
                self._drain_inbox()
                self._refresh_holdings()
                if self._wants_dispatch:
                    self.dispatch()
        finally:
            if conn.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    conn.close()

    def _fetch_device(self, conn: BlockingConnection) -> None:
        """Learn the device before taking jobs; a QPU API that does not answer is waited for."""
        while not self._stop.is_set():
            try:
                self.backend.device()
                return
            except BackendFailure as exc:
                log.error(
                    "cannot read the device specs from %s: %s; retrying", self.backend.name, exc
                )
                conn.sleep(2.0)

    def _activate(self, conn: BlockingConnection) -> None:
        self._fetch_device(conn)
        pub_channel = conn.channel()
        declare(pub_channel, self.topology)
        self.publisher = Publisher(
            pub_channel,
            self.topology,
            self.settings.amqp_user,
            self.owner_id,
            self.settings.max_message_bytes,
        )
        self.history = self._rebuild(conn)
        self._restore_from_history()
        self._publish_device()
        self.state = self.history.dispatch
        self._recover_inflight()
        jobs = conn.channel()
        jobs.basic_qos(prefetch_count=self.settings.owner.prefetch)
        self.jobs = jobs
        for job_class in self.topology.class_names:
            jobs.basic_consume(self.topology.job_queue(job_class), self._job_callback(job_class))
        control = conn.channel()
        control.basic_qos(prefetch_count=1)
        control.basic_consume(self.topology.control_queue, self._on_control)
        self.active.set()
        log.info("active owner %s on backend %s", self.owner_id, self.backend.name)
        self.dispatch()

    def _restore_from_history(self) -> None:
        """Specs of the last calibration, decayed usage and the mode, as the log has them
        (the policy's mode until an operator changed it)."""
        if not self.history.mode_from_log:
            self.history.mode, self.history.mode_message = (
                self.policy.mode,
                self.policy.mode_message,
            )
        if self.history.device is not None:
            self.device_override = load_device(self.history.device)
        for user, job_class, seconds, at in self.history.runs:
            self.usage.add(user or "", seconds, at)
            self.class_usage.add(job_class, seconds, at)

    def _publish_device(self) -> None:
        """Replace the last-value device specs that clients validate against before submitting."""
        assert self.publisher is not None
        specs = DeviceSpecs(
            device=self.device().to_abstract_repr(),
            epoch=self.history.epoch,
            backend=self.backend.name,
        )
        self.publisher.publish(
            "", self.topology.device_queue, specs, message_id=specs.published_at.isoformat()
        )

    def _rebuild(self, conn: BlockingConnection) -> History:
        """Fold the whole event log, up to a marker event published now, into a History."""
        assert self.publisher is not None
        marker = self.publisher.event(
            Event(
                topic="owner.active",
                reason=f"owner {self.owner_id} took the QPU lease",
                data={"backend": self.backend.name},
            )
        )
        reader = conn.channel()
        history = rebuild_history(
            reader, self.topology.events_stream, marker.event_id, self.settings.max_message_bytes
        )
        reader.close()
        log.info("rebuilt from %d events: %d finished jobs", history.events, len(history.finished))
        return history

    def _recover_inflight(self) -> None:
        """Answer or re-run the job that was on the QPU when the previous owner died."""
        assert self.publisher is not None
        channel = self.publisher.channel
        while True:
            method, props, body = channel.basic_get(self.topology.inflight_queue)
            if method is None:
                return
            try:
                job = decode(body, props.type, JobRequest, self.settings.max_message_bytes)
            except DecodeError:
                channel.basic_ack(method.delivery_tag)
                continue
            headers = dict(props.headers or {})
            done = self.history.finished.get(job.job_id)
            if done is not None or self.running is not None:
                if done is not None:
                    self.publisher.reply(headers.get(REPLY_HEADER), done, job.job_id)
                else:  # a second record should not exist; put the job back in its queue
                    self.publisher.channel.basic_publish(
                        self.topology.jobs_exchange, job.job_class, body, props
                    )
                channel.basic_ack(method.delivery_tag)
                continue
            held = Held(
                tag=0,
                job=job,
                properties=props,
                user=headers.get(USER_HEADER),
                received_s=time.monotonic(),
                attempt=int(headers.get(ATTEMPT_HEADER, 1)) + 1,
                preemptions=int(headers.get(PREEMPTIONS_HEADER, 0)),
                prior_counts=_counts(headers),
            )
            held.properties.reply_to = headers.get(REPLY_HEADER)
            self._start(
                held,
                "re-run: it was on the QPU when the previous owner stopped",
                ack=functools.partial(channel.basic_ack, method.delivery_tag),
            )

    # ---- jobs in --------------------------------------------------------------------------

    def _job_callback(self, job_class: str) -> Callable[..., None]:
        def on_job(channel: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
            self._admit(channel, method.delivery_tag, props, body, job_class, via_get=False)
            self.request_dispatch()

        return on_job

    def _admit(
        self,
        channel: BlockingChannel,
        tag: int,
        props: Any,
        body: bytes,
        job_class: str,
        via_get: bool,
    ) -> Held | None:
        """Check one delivery; hold it as a candidate, or answer it, or refuse it."""
        publisher = self.publisher
        assert publisher is not None
        origin = self.topology.job_queue(job_class)

        def reject(error: JobError, job: JobRequest | None = None) -> None:
            refuse(
                channel,
                publisher,
                self.topology,
                tag,
                props,
                body,
                error,
                origin,
                self.clock(),
                job,
            )

        try:
            job = decode(body, props.type, JobRequest, self.settings.max_message_bytes)
        except DecodeError as exc:
            reject(decode_error(exc))
            return None
        done = self.history.finished.get(job.job_id)
        if done is not None:
            publisher.reply(props.reply_to, done, job.job_id)
            publisher.event(
                Event(
                    topic="job.duplicate",
                    job_id=job.job_id,
                    job_class=job_class,
                    reason="already finished: answered from the event log",
                )
            )
            channel.basic_ack(tag)
            return None
        if (
            self.running is not None and self.running.job.job_id == job.job_id
        ) or self.holdings.find(job.job_id):
            channel.basic_ack(tag)  # a second copy of a job already in hand
            return None
        headers = dict(props.headers or {})
        user = props.user_id
        if user == self.settings.amqp_user and headers.get(USER_HEADER):
            user = str(headers[USER_HEADER])  # a job this owner put back (preempted)
        validate_begin_ns = time.time_ns()
        problem = check_job(job, job_class, user, self.policy, self.device(), self.sequences)
        validated_ns = (validate_begin_ns, time.time_ns())
        if problem is not None:
            reject(problem, job)
            return None
        held = Held(
            tag=tag,
            job=job,
            properties=props,
            user=user,
            received_s=time.monotonic(),
            via_get=via_get,
            attempt=int(headers.get(ATTEMPT_HEADER, 1)),
            preemptions=int(headers.get(PREEMPTIONS_HEADER, 0)),
            validated_ns=validated_ns,
            validated_epoch=self.history.epoch,
            prior_counts=_counts(headers),
        )
        self.holdings.add(held)
        allocation = job.slurm.job_id if job.slurm else None
        if allocation is not None and allocation in self.history.ended_allocations:
            error = allocation_ended(allocation)
            self.finish_held(held, JobState.CANCELED, error)
            return None
        if job.job_id in self.history.pending_cancels:
            self.finish_held(
                held,
                JobState.CANCELED,
                canceled_by(job.job_id, self.history.pending_cancels[job.job_id]),
            )
            return None
        if job.job_id not in self.history.seen:
            self.history.seen.add(job.job_id)
            publisher.event(
                Event(
                    topic="job.queued",
                    job_id=job.job_id,
                    job_class=job_class,
                    user=props.user_id,
                    data={
                        "priority": job.priority,
                        "shots": job.shots,
                        "session_id": job.session_id,
                        "slurm_job_id": job.slurm.job_id if job.slurm else None,
                        "slurm_rank": job.slurm.rank if job.slurm else None,
                    },
                )
            )
        return held

    def _peek_heads(self) -> None:
        """Look past every full prefetch window: the queue may hold a better job than we do.

        What the look finds is held like any delivery (marked `via_get`)."""
        assert self.jobs is not None
        for job_class in self.topology.class_names:
            if self.holdings.window(job_class) < self.settings.owner.prefetch:
                continue
            method, props, body = self.jobs.basic_get(self.topology.job_queue(job_class))
            if method is not None:
                self._admit(self.jobs, method.delivery_tag, props, body, job_class, via_get=True)

    # ---- deciding -------------------------------------------------------------------------

    def device(self) -> Any:
        """The device jobs are validated against: the last calibration's specs, else the backend's."""
        return self.device_override if self.device_override is not None else self.backend.device()

    def calibration(self) -> Calibration:
        """The epoch and until when it is valid (no window before the first calibration)."""
        valid_s = self.policy.calibration_valid_s
        calibrated_at = self.history.calibrated_at
        if valid_s is None or calibrated_at is None:
            return Calibration(self.history.epoch, None)
        return Calibration(self.history.epoch, calibrated_at + timedelta(seconds=valid_s))

    def view(self) -> OwnerView:
        """What the core sees of this owner."""
        running = None
        if self.running is not None:
            running = Held(
                0,
                self.running.job,
                None,
                self.running.user,
                0.0,
                preemptions=self.running.preemptions,
            ).candidate()
        now = self.clock()
        return OwnerView(
            self.state,
            self.history.mode,
            self.policy,
            running,
            calibration=self.calibration(),
            usage=self.usage.snapshot(now),
            class_usage=self.class_usage.snapshot(now),
            sessions_in_grace=frozenset(s for s, until in self.sessions.items() if until > now),
            ended_allocations=frozenset(self.history.ended_allocations),
        )

    def current_decision(self) -> Decision:
        """What the core would decide now, without acting on it (for `status`)."""
        return decide(self.view(), [h.candidate() for h in self.holdings], self.clock())

    def request_dispatch(self) -> None:
        """Decide once pika has handed over every delivery already received (see `dispatch`)."""
        self._wants_dispatch = True

    def dispatch(self) -> None:
        """Ask the core what to do and do it.

        Called from the loop, never from inside a pika callback: deliveries that arrived while a
        callback ran are dispatched by pika only after it returns, and deciding without them
        could start a worse job than one already received.
        """
        self._wants_dispatch = False
        if self.publisher is None or self.jobs is None or not self.jobs.is_open:
            return
        if self.state in (QPUState.IDLE, QPUState.RUNNING, QPUState.CALIBRATING):
            self._peek_heads()
        if self.calibration_pending and self.running is None:
            self.enter_calibration()
        while True:
            decision = decide(self.view(), [h.candidate() for h in self.holdings], self.clock())
            if decision.action is Action.START and decision.job is not None:
                held = self.holdings.pop(decision.job.key)
                if not self._still_valid(held):
                    continue  # refused against the new specs; decide again
                self._start(
                    held, decision.reason, ack=functools.partial(self.jobs.basic_ack, held.tag)
                )
            elif decision.action is Action.PREEMPT and self.running is not None:
                self.preempt(decision.reason)
            elif decision.calibration_due and self._due_announced != self.history.epoch:
                self._due_announced = self.history.epoch
                self.publisher.event(
                    Event(
                        topic="calibration.due",
                        reason=decision.reason,
                        data={"epoch": self.history.epoch},
                    )
                )
            break
        self._trim_looked_past()

    def _still_valid(self, held: Held) -> bool:
        """Re-check a job validated before the latest calibration; refuse it if it no longer fits."""
        if held.validated_epoch == self.history.epoch:
            return True
        device = self.device()
        problem = validate_shots(held.job.shots, device) or self.sequences.check(
            held.job.sequence, device, held.job.allow_device_switch
        )
        if problem is None:
            held.validated_epoch = self.history.epoch
            return True
        assert self.jobs is not None and self.publisher is not None
        changed = problem.model_copy(
            update={"message": f"after calibration epoch {self.history.epoch}: {problem.message}"}
        )
        refuse(
            self.jobs,
            self.publisher,
            self.topology,
            held.tag,
            held.properties,
            encode(held.job),
            changed,
            self.topology.job_queue(held.job.job_class),
            self.clock(),
            held.job,
        )
        return False

    def complete_calibration(self, epoch: int, specs: str | None, device: Any) -> None:
        """A new calibration epoch (and new specs, when given): log it and dispatch again."""
        assert self.publisher is not None
        event = self.publisher.event(
            Event(
                topic="calibration.complete",
                reason=f"epoch {epoch}",
                data={"epoch": epoch, "device": specs},
            )
        )
        self.history.apply(event)
        if device is not None:
            self.device_override = device
        self.state = transition(self.state, QPUEvent.CALIBRATION_DONE, busy=False)
        self._publish_device()
        self.request_dispatch()

    def enter_calibration(self) -> None:
        """Hold dispatching (except calibration jobs) until calibration-complete."""
        assert self.publisher is not None
        self.calibration_pending = False
        self.state = transition(self.state, QPUEvent.CALIBRATION_START, busy=False)
        self.publisher.event(
            Event(
                topic="calibration.started",
                qpu_state=self.state,
                reason="dispatching held for calibration",
                data={"epoch": self.history.epoch},
            )
        )

    def _trim_looked_past(self) -> None:
        """Keep at most one looked-past job per class; hand back the weaker ones.

        A job handed back is only needed after the one kept, so it is back in our window long
        before the core could want it.
        """
        assert self.jobs is not None
        view, now = self.view(), self.clock()
        for job_class in self.topology.class_names:
            extra = sorted(
                (h for h in self.holdings if h.via_get and h.job.job_class == job_class),
                key=lambda h: order_key(view, h.candidate(), now),
            )[1:]
            for held in extra:
                self.holdings.pop(held.tag)
                self.jobs.basic_nack(held.tag, requeue=True)

    def _start(self, held: Held, reason: str, ack: Callable[[], Any]) -> None:
        """Record the job in flight, release its delivery, and hand it to the backend."""
        assert self.publisher is not None and self.connection is not None
        job = held.job
        reply_to = held.properties.reply_to if held.properties is not None else None
        headers = {
            ATTEMPT_HEADER: held.attempt,
            PREEMPTIONS_HEADER: held.preemptions,
            USER_HEADER: held.user or "",
            REPLY_HEADER: reply_to or "",
            COUNTS_HEADER: held.prior_counts,
        }
        trace = {
            k: v
            for k, v in dict(getattr(held.properties, "headers", None) or {}).items()
            if k in ("traceparent", "tracestate")
        }
        self.publisher.publish(
            "",
            self.topology.inflight_queue,
            job,
            message_id=job.job_id,
            priority=job.priority,
            headers=headers | trace,
        )
        ack()
        self.state = transition(self.state, QPUEvent.START, busy=False)
        self.running = Running(
            job,
            held.user,
            reply_to,
            self.clock(),
            held.attempt,
            held.preemptions,
            trace,
            prior_counts=dict(held.prior_counts),
            epoch=self.history.epoch,
        )
        self.running.spans = self._open_spans(held, trace)
        self.publisher.event(
            Event(
                topic="job.started",
                job_id=job.job_id,
                job_class=job.job_class,
                user=held.user,
                reason=reason,
                qpu_state=self.state,
                data={"attempt": held.attempt, "backend": self.backend.name},
            )
        )
        sink = Sink(self.connection, self._inbox, self._drain_inbox)
        remaining = job.shots - sum(held.prior_counts.values())
        self.backend.start(RunRequest(job.job_id, job.sequence, remaining, held.attempt), sink)

    def _open_spans(self, held: Held, trace_headers: dict[str, Any]) -> JobSpans:
        """The job's spans, continuing the trace that came with it."""
        job = held.job
        attributes = {
            "qsched.job_class": job.job_class,
            "qsched.shots": job.shots,
            "qsched.priority": job.priority,
            "qsched.backend": self.backend.name,
            "qsched.epoch": self.history.epoch,
            "qsched.attempt": held.attempt,
            "qsched.user": held.user or "",
        }
        return JobSpans.open(
            job,
            self.topology.job_queue(job.job_class),
            trace_headers,
            attributes,
            held.validated_ns,
        )

    # ---- backend reports ------------------------------------------------------------------

    def _drain_inbox(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            kind = item[0]
            if kind == "progress":
                self._on_progress(*item[1:])
            elif kind == "finished":
                self._on_finished(item[1])
            elif kind == "operational":
                self._on_operational(*item[1:])
            else:
                self._on_note(*item[1:])

    def _on_operational(self, up: bool, reason: str) -> None:
        assert self.publisher is not None
        event = QPUEvent.BACKEND_UP if up else QPUEvent.BACKEND_DOWN
        self.state = transition(self.state, event, busy=self.running is not None)
        self.publisher.event(
            Event(topic=f"qpu.{'up' if up else 'down'}", qpu_state=self.state, reason=reason)
        )
        self.request_dispatch()

    def _on_note(self, job_id: str, message: str) -> None:
        assert self.publisher is not None
        self.publisher.event(Event(topic="job.note", job_id=job_id, reason=message))

    def _on_progress(self, job_id: str, shots_done: int, counts: dict[str, int]) -> None:
        running = self.running
        if running is None or running.job.job_id != job_id or self.publisher is None:
            return
        counts = merge_counts(running.prior_counts, counts)
        shots_done = sum(counts.values())
        progress = JobProgress(
            job_id=job_id,
            shots=running.job.shots,
            shots_done=min(shots_done, running.job.shots),
            counts=counts,
        )
        self.publisher.reply(running.reply_to, progress, job_id)
        self.publisher.event(
            Event(
                topic="job.progress",
                job_id=job_id,
                job_class=running.job.job_class,
                progress=progress,
            )
        )

    def _on_finished(self, outcome: RunOutcome) -> None:
        running = self.running
        if running is None or running.job.job_id != outcome.job_id or self.publisher is None:
            return
        outcome = dataclasses.replace(
            outcome, counts=merge_counts(running.prior_counts, outcome.counts)
        )
        if outcome.canceled and running.preempt_reason is not None:
            self._put_back(running, outcome)
            return
        result = result_of(running, outcome, self.backend.name, self.clock())
        self._account(running, result.timings.ended_at)
        if running.job.session_id:
            grace = timedelta(seconds=self.policy.session_grace_s)
            self.sessions[running.job.session_id] = result.timings.ended_at + grace
        state = result.state
        if running.spans is None:
            self._publish_final(result, running.user, running.reply_to)
        else:
            with running.spans.publishing():
                self._publish_final(result, running.user, running.reply_to)
            running.spans.close(state.value, result.error)
        self._release_qpu(f"{running.job.job_id} ended {state.value}")

    def _account(self, running: Running, ended_at: datetime) -> None:
        """Charge the run's QPU time to its submitter and class (fair share, class weights)."""
        seconds = max((ended_at - running.started_at).total_seconds(), 0.0)
        self.usage.add(running.user or "", seconds, ended_at)
        self.class_usage.add(running.job.job_class, seconds, ended_at)

    def _release_qpu(self, reason: str) -> None:
        """The job left the QPU: drop its in-flight record, free the QPU, decide again."""
        assert self.publisher is not None
        self.publisher.channel.queue_purge(self.topology.inflight_queue)
        self.running = None
        self.state = transition(self.state, QPUEvent.FINISH, busy=True)
        self.publisher.event(
            Event(topic=f"qpu.{self.state.value.lower()}", qpu_state=self.state, reason=reason)
        )
        self.request_dispatch()

    def preempt(self, reason: str) -> None:
        """Stop the running job for a better one; it goes back to its queue when the backend
        confirms the stop (`_put_back`), keeping the shots already measured."""
        running = self.running
        assert running is not None and self.publisher is not None
        if running.preempt_reason is not None:
            return
        running.preempt_reason = reason
        self.state = transition(self.state, QPUEvent.PREEMPT, busy=True)
        self.publisher.event(
            Event(
                topic="job.preempting",
                job_id=running.job.job_id,
                job_class=running.job.job_class,
                reason=reason,
                qpu_state=self.state,
            )
        )
        self.backend.cancel(running.job.job_id)

    def _put_back(self, running: Running, outcome: RunOutcome) -> None:
        """Requeue a preempted job with its priority, its counts so far and one more preemption.

        The copy is published (confirmed) before the in-flight record is dropped, so a crash in
        between leaves the job recorded twice at worst, and the owner never runs a job twice.
        """
        assert self.publisher is not None
        job = running.job
        headers = {
            ATTEMPT_HEADER: running.attempt + 1,
            PREEMPTIONS_HEADER: running.preemptions + 1,
            USER_HEADER: running.user or "",
            COUNTS_HEADER: outcome.counts,
        } | running.headers
        self.publisher.publish(
            self.topology.jobs_exchange,
            job.job_class,
            job,
            message_id=job.job_id,
            priority=job.priority,
            reply_to=running.reply_to,
            headers=headers,
        )
        shots_done = sum(outcome.counts.values())
        now = self.clock()
        self._account(running, now)
        self.publisher.event(
            Event(
                topic="job.preempted",
                job_id=job.job_id,
                job_class=job.job_class,
                user=running.user,
                reason=running.preempt_reason,
                data={
                    "preemptions": running.preemptions + 1,
                    "shots_done": shots_done,
                    "shots": job.shots,
                    "execution_s": (now - running.started_at).total_seconds(),
                },
            )
        )
        if running.spans is not None:
            running.spans.close("PREEMPTED", None)
        self._release_qpu(f"{job.job_id} preempted after {shots_done} of {job.shots} shots")

    def _publish_final(self, result: JobResult, user: str | None, reply_to: str | None) -> None:
        """Log the final event, then answer: the log is what a later redelivery is answered from."""
        assert self.publisher is not None
        self.publisher.event(
            Event(
                topic=f"job.{result.state.value.lower()}",
                job_id=result.job_id,
                job_class=result.job_class,
                user=user,
                reason=result.error.message if result.error else None,
                result=result,
            )
        )
        self.history.finished[result.job_id] = result
        self.publisher.reply(reply_to, result, result.job_id)

    def finish_held(self, held: Held, state: JobState, error: JobError) -> None:
        """End a job that never reached the QPU (canceled while queued), then ack it."""
        now = self.clock()
        result = JobResult(
            job_id=held.job.job_id,
            state=state,
            job_class=held.job.job_class,
            shots=held.job.shots,
            error=error,
            timings=Timings(queued_at=held.job.submitted_at, ended_at=now),
            attempts=held.attempt - 1,
            preemptions=held.preemptions,
        )
        self._publish_final(result, held.user, held.properties.reply_to)
        self.holdings.pop(held.tag)
        assert self.jobs is not None
        self.jobs.basic_ack(held.tag)

    # ---- upkeep ---------------------------------------------------------------------------

    def _refresh_holdings(self) -> None:
        """Hand back deliveries held for a third of consumer_timeout; the broker re-sends them."""
        if self.jobs is None:
            return
        for held in self.holdings.older_than(time.monotonic() - self._refresh_s):
            self.holdings.pop(held.tag)
            self.jobs.basic_nack(held.tag, requeue=True)

    def _on_control(self, channel: BlockingChannel, method: Any, props: Any, body: bytes) -> None:
        from consumers.control import handle_control

        handle_control(self, channel, method.delivery_tag, props, body)

    def queue_depth(self) -> dict[str, int]:
        """Jobs waiting per class: ready in the queue plus held here."""
        assert self.publisher is not None
        held = self.holdings.per_class()
        depth = {}
        for job_class in self.topology.class_names:
            ok = self.publisher.channel.queue_declare(
                self.topology.job_queue(job_class), passive=True
            )
            depth[job_class] = ok.method.message_count + held.get(job_class, 0)
        return depth


def _counts(headers: dict[str, Any]) -> dict[str, int]:
    """Counts measured by earlier runs of a job, carried in its headers."""
    raw = headers.get(COUNTS_HEADER) or {}
    return {str(k): int(v) for k, v in dict(raw).items()}
