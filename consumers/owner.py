"""The QPU owner process: standby until it holds the lease, then the scheduler (wiring only).

One thread owns the pika connection. A standby waits for the lease (an exclusive queue). Once
active it rebuilds its state from the log (`recovery`), writes `owner.activated` with a term one
higher than any before, puts back a run a dead owner left, and consumes the class queues with a
large window, the control queue, its own log, and the standbys' heartbeats (`standbys`). Pika callbacks only collect deliveries; the
loop hands them to the `Shell`, then backend reports, then timers, then dispatches. Losing the
broker (or the lease) stops local work; the owner reconnects with backoff and stands by again.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from brokers.connection import Connection, close_quietly, connect, translated
from brokers.errors import BrokerError
from brokers.settings import Settings
from brokers.topology import Topology, build_topology, declare
from consumers.backends.base import Backend
from consumers.batch_intake import is_batch, read_batch
from consumers.clock import FOLLOW_S, SteadyClock
from consumers.command_io import CommandIO
from consumers.control import Prepared, read_command
from consumers.core.inputs import Arrival
from consumers.core.step import Context, Recovered
from consumers.deliveries import Refusal, read_job
from consumers.errors import BackendFailure, OwnerError
from consumers.lanes import LanePool
from consumers.lease import acquire_lease
from consumers.metrics import OwnerMetrics
from consumers.parking import Kept
from consumers.plugins.gate import Gate
from consumers.plugins.loading import Plugins
from consumers.plugins.sinks import SinkFanout
from consumers.policylog import policy_in_force
from consumers.positions import PositionPusher, send_position
from consumers.publish import Publisher
from consumers.recovery import LogFollower
from consumers.sequences import SequenceStore
from consumers.settle import Delivery, collector, handle_safely
from consumers.shell import Shell
from consumers.standbys import Beacon, Roster
from schemas.events import OwnerActivated, Topic, make_event
from schemas.messages import DeviceSpecs, Event, new_id, utc_now
from schemas.policy import Policy
from schemas.sequence import load_device

log = logging.getLogger(__name__)

RECONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
CONFIRM_POLL_S = 0.0005


class Owner:
    """One QPU owner process."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        backend: Backend,
        owner_id: str,
        clock: Callable[[], datetime] | None = None,
        policy_path: Path | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.policy_path = policy_path
        self.backend = backend
        self.owner_id = owner_id
        # The steady clock by default: a jump of the system clock moves no duration the core
        # decides on (`consumers.clock`).
        self.clock: Callable[[], datetime] = clock if clock is not None else SteadyClock()
        self.topology: Topology = build_topology(settings, policy)
        self.active = threading.Event()
        self.shell: Shell | None = None
        self._stop = threading.Event()
        self._jobs: list[Delivery] = []
        self._commands: list[Delivery] = []
        self._device_override: Any = None
        self.metrics: OwnerMetrics | None = None  # `qsched owner` sets it when metrics are on
        self.plugins = plugins or Plugins()  # loaded at start; a policy reload keeps them
        self.gate = Gate(self.plugins)
        self.sinks = SinkFanout(self.plugins)
        self.lanes = LanePool(policy.lanes, settings.owner.progress_every_shots)
        self.roster = Roster(self.clock)
        self._jump_logged = 0.0
        self.command_io = CommandIO(self.topology, settings.max_message_bytes)

    # ---- life cycle ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end (thread-safe)."""
        self._stop.set()

    def run(self) -> None:
        """Serve until stopped; after losing the broker, stop local work and queue up again."""
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._serve()
            except (BrokerError, OwnerError) as exc:
                log.error("lost the broker or the lease (%r); standing by again", exc)
            except Exception:  # nothing may stop the owner for good; the log has the truth
                log.exception("unexpected failure; dropping the QPU and standing by again")
            finally:
                self._abandon()
            failures = 0 if time.monotonic() - started > 30 else failures + 1
            self._stop.wait(RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)])

    def _abandon(self) -> None:
        """Stop the local run: the next active owner puts it back from the log."""
        if self.shell is not None and self.shell.state.running is not None:
            job_id = self.shell.state.running.job.job_id
            self.backend.cancel(job_id)
        if self.shell is not None:
            self.shell.traces.abandon("owner lost the broker")
            self.lanes.cancel_all(self.lanes.running(self.shell))
        self.shell = None
        self.command_io.forget()
        self.active.clear()
        if self.metrics is not None:
            self.metrics.standby()
        self._jobs.clear()
        self._commands.clear()

    def _serve(self) -> None:
        settings = self.settings
        conn = connect(
            settings.amqp_url,
            heartbeat_s=settings.broker.heartbeat_s,
            name=f"qsched-owner {self.owner_id}",
            coalesce=True,
        )
        try:  # the broker's failures, pika's or the socket's, come out as BrokerError
            with translated(f"owner {self.owner_id}"):
                beacon = Beacon(conn, self.topology, self.owner_id, self.backend.name)
                lease = acquire_lease(
                    conn,
                    self.topology.lease_queue,
                    settings.owner.lease_retry_s,
                    self._stop.is_set,
                    beacon.beat,
                )
                if lease is None:
                    return
                shell = self._activate(conn)
                self._loop(conn, shell)
        finally:
            close_quietly(conn)

    # ---- activation ------------------------------------------------------------------------

    def device(self) -> Any:
        """The device jobs are validated against: the last calibration's specs, else the backend's."""
        return self._device_override if self._device_override is not None else self.backend.device()

    def _fetch_device(self, conn: Connection) -> None:
        """Learn the device before taking jobs; a QPU API that does not answer is waited for."""
        while not self._stop.is_set():
            try:
                self.backend.device()
                if self.backend.device_taken_at is None:  # a backend that does not say: now
                    self.backend.device_taken_at = utc_now()
                return
            except BackendFailure as exc:
                log.error(
                    "cannot read the device specs from %s: %s; retrying", self.backend.name, exc
                )
                conn.sleep(2.0)

    def _activate(self, conn: Connection) -> Shell:
        started = time.monotonic()
        self._fetch_device(conn)
        channel = conn.channel()
        declare(channel, self.topology)
        max_bytes = self.settings.max_message_bytes
        log_bytes = self.settings.log_max_bytes  # the log holds snapshots larger than messages
        publisher = Publisher(
            conn,
            channel,
            self.topology,
            self.settings.amqp_user,
            self.owner_id,
            max_bytes,
            self.settings.owner.snapshot_max_bytes,
            self.clock,
        )
        store = SequenceStore(self.settings.owner.sequence_cache_bytes, log_bytes)
        follower = LogFollower(conn, self.topology, publisher, store, log_bytes)
        pointer = follower.read_pointer(channel)
        state = follower.replay(self.policy.fair_share_half_life_s, pointer)
        self.policy, policy_logged = policy_in_force(self.policy, self.policy_path, state.policy)
        publisher.term = state.term + 1
        ctx = Context(self.owner_id, self.backend.name, new_id)
        shell = Shell(
            state,
            self.policy,
            self.backend,
            ctx,
            conn,
            publisher,
            follower,
            store,
            self.topology,
            self.clock,
            self.device,
            self._log_event,
        )
        self.shell = shell
        shell.sequences.deep = self.settings.owner.sequence_rebuild
        shell.lane_backends = dict(self.lanes.backends)
        if state.device:
            self._device_override = load_device(state.device)
        shell.emit(
            [
                make_event(
                    Topic.OWNER_ACTIVATED,
                    OwnerActivated(
                        term=publisher.term, backend=self.backend.name, policy=policy_logged
                    ),
                    reason=f"owner {self.owner_id} took the QPU lease",
                )
            ]
        )
        shell.handle(Recovered())
        shell.events_since_snapshot += follower.replayed  # a long replay: snapshot soon
        self._publish_device(shell)
        jobs = conn.channel()
        jobs.basic_qos(prefetch_count=self.settings.owner.prefetch)
        for job_class in self.topology.class_names:
            queue = self.topology.job_queue(job_class)
            jobs.basic_consume(queue, collector(self._jobs, queue))
        self.roster = Roster(self.clock)
        self.roster.listen(conn, self.topology, self.owner_id)
        control = conn.channel()
        control.basic_qos(prefetch_count=50)
        control.basic_consume(
            self.topology.control_queue, collector(self._commands, self.topology.control_queue)
        )
        self.active.set()
        log.info(
            "active owner %s (term %d) on backend %s: %d events (from %s) in %.2f s, %d waiting",
            self.owner_id,
            publisher.term,
            self.backend.name,
            follower.replayed,
            "a snapshot" if pointer is not None else "the start",
            time.monotonic() - started,
            len(state.waiting),
        )
        shell.dispatch()
        self.lanes.dispatch(shell)
        return shell

    def _publish_device(self, shell: Shell) -> None:
        """Append the device specs to their stream; its last record is what clients validate
        against before submitting (a stream: reading it removes nothing)."""
        specs = DeviceSpecs(
            device=self.device().to_abstract_repr(),
            epoch=shell.state.epoch,
            backend=self.backend.name,
        )
        shell.publisher.publish(
            "", self.topology.device_queue, specs, message_id=specs.published_at.isoformat()
        )

    # ---- the loop --------------------------------------------------------------------------

    def _loop(self, conn: Connection, shell: Shell) -> None:
        owner = self.settings.owner
        next_tick = time.monotonic()
        last_snapshot = time.monotonic()
        positions = PositionPusher(owner.position_every_s)  # a new owner tells everyone again
        tell = functools.partial(send_position, shell.publisher)
        while not self._stop.is_set():
            # A backend report may have come in (and used up its wake-up) while the last commit
            # waited for confirms: then only look at the socket. Confirms do not wake a blocked
            # wait (they arrive below pika's blocking wrapper): poll in short steps while some
            # effects wait for them.
            if not (shell.inbox.empty() and shell.lane_inbox.empty()):
                wait_s = 0.0
            else:
                wait_s = CONFIRM_POLL_S if shell.pending else owner.tick_s
            conn.process_data_events(time_limit=wait_s)
            shell.settle()
            intake = (len(self._jobs), time.monotonic())
            changed = (
                self._take_jobs(shell)
                | self._take_commands(shell)
                | self._take_kept(shell)
                | shell.drain_inbox()
            )
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + owner.tick_s
                self._note_clock_jump()
                shell.tick()
                self._plugin_upkeep(shell)
                changed = True
            if changed:
                shell.dispatch()
            if self.lanes.drain(shell) or changed:  # after the QPU's: lanes never delay it
                self.lanes.dispatch(shell)
            positions.push_if_due(shell.state, shell.policy, shell.clock(), tell, now)
            if self.metrics is not None:  # after the acks and the start, off the dispatch path
                self.metrics.intake_done(intake[0], time.monotonic() - intake[1])
                self.metrics.after_iteration(shell.state, shell.policy)
            due_by_time = now - last_snapshot > owner.snapshot_every_s
            before = shell.events_since_snapshot
            shell.snapshot_if_due(owner.snapshot_every_events, due_by_time)
            if shell.events_since_snapshot < before:
                last_snapshot = now

    def _note_clock_jump(self) -> None:
        """Log once per jump that the system clock jumped and the owner keeps its own time."""
        jump_s = getattr(self.clock, "jump_s", 0.0)
        if jump_s and abs(jump_s - self._jump_logged) > FOLLOW_S:
            log.warning(
                "the system clock jumped %+.0f s; the owner keeps its own time (monotonic) so "
                "no deadline, grace, aging or timeout misfires",
                jump_s,
            )
        self._jump_logged = jump_s

    def _plugin_upkeep(self, shell: Shell) -> None:
        """Held jobs asked again; plugin troubles (a failing sink) logged as events."""
        readmitted, failures = self.gate.recheck(shell.state)
        failures += self.sinks.take_reports()
        if failures:
            shell.emit(failures)
            shell.commit()
        for given in readmitted:
            shell.handle(given)

    def _take_jobs(self, shell: Shell) -> bool:
        batch, self._jobs[:] = list(self._jobs), []
        device = self.device() if batch else None
        with shell.intake_group():  # their events go as few records of the log
            for delivery in batch:
                handle_safely(
                    shell.publisher, self.topology, delivery, lambda d: self._job(shell, d, device)
                )
        return bool(batch)

    def _take_kept(self, shell: Shell) -> bool:
        """Job deliveries kept for their allocation's registration: stepped again once it is
        registered, or once the registration grace is over (`consumers.parking`)."""
        due = shell.parking.due(shell.state, self.policy.accounts.registration_grace_s)
        for kept in due:

            def again(delivery: Delivery, kept: Kept = kept) -> None:
                arrival, failures = self.gate.review(kept.arrival, shell.state, self.policy)
                shell.emit(failures)
                shell.job_delivery(arrival, delivery, kept.validated_ns, kept.since_s)

            handle_safely(shell.publisher, self.topology, kept.delivery, again)
        return bool(due)

    def _take_commands(self, shell: Shell) -> bool:
        batch, self._commands[:] = list(self._commands), []
        for delivery in batch:
            handle_safely(
                shell.publisher, self.topology, delivery, lambda d: self._command(shell, d)
            )
        return bool(batch)

    def _job(self, shell: Shell, delivery: Delivery, device: Any) -> None:
        began_ns = time.time_ns()
        if is_batch(delivery.properties):
            batch = read_batch(
                delivery.properties,
                delivery.body,
                delivery.queue.rsplit(".", 1)[-1],
                self.settings.namespace,
                self.settings.max_message_bytes,
                device,
                shell.sequences,
                shell.state,
            )
            shell.job_delivery(batch, delivery, (began_ns, time.time_ns()))
            return
        parsed = read_job(
            delivery.properties,
            delivery.body,
            delivery.queue.rsplit(".", 1)[-1],
            self.settings.namespace,
            self.settings.max_message_bytes,
            device,
            shell.sequences,
            self.policy.gateway_users,
        )
        if isinstance(parsed, Arrival):
            parsed, failures = self.gate.review(parsed, shell.state, self.policy)
            shell.emit(failures)
        shell.job_delivery(parsed, delivery, (began_ns, time.time_ns()))

    def _command(self, shell: Shell, delivery: Delivery) -> None:
        prepared = read_command(
            delivery.properties,
            delivery.body,
            self.settings.namespace,
            self.settings.max_message_bytes,
            self.policy,
            self.policy_path,
            now=self.clock(),
            max_age_s=self.settings.owner.control_max_age_s,
        )
        if not isinstance(prepared, Prepared):
            props = delivery.properties
            refusal = Refusal(prepared, props.user_id, None, props.message_id)
            shell.job_delivery(refusal, delivery, (0, 0))
            return
        given, resubmitted = self.command_io.prepare(prepared.command, delivery, shell, self.roster)
        if shell.command(given, delivery):
            if resubmitted is not None:
                self._job(shell, resubmitted, self.device())
            if prepared.policy is not None:
                self.policy = shell.policy = prepared.policy
            if prepared.device is not None:
                self._device_override = prepared.device
                self._publish_device(shell)

    def _log_event(self, event: Event) -> None:
        """One line per job start/end/preemption, per QPU change and per command; every event
        to the event sinks."""
        self.sinks.offer(event)
        if self.metrics is not None and self.shell is not None:
            self.metrics.seen(event, self.shell.state)
        topic = event.topic
        if topic in (Topic.JOB_PROGRESS, Topic.OWNER_SNAPSHOT):
            return
        level = (
            logging.DEBUG if topic in (Topic.JOB_ACCEPTED, Topic.JOB_DUPLICATE) else logging.INFO
        )
        who = f" by {event.user}" if event.user and topic.startswith("control.") else ""
        job = f" {event.job_id}" if event.job_id else ""
        reason = f": {event.reason}" if event.reason else ""
        log.log(level, "%s%s%s%s", topic, job, who, reason)
