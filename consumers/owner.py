"""The QPU owner process: standby until it holds the lease, then the scheduler (wiring only).

One thread owns the pika connection. A standby waits for the lease (an exclusive queue). Once
active it rebuilds its state from the log (`recovery`), writes `owner.activated` with a term one
higher than any before, puts back a run a dead owner left, and consumes the class queues with a
large window, the control queue, its own log, and the standbys' heartbeats (`standbys`). Pika
callbacks only collect deliveries; the loop hands them to the intake (`intake`), then backend
reports to the shell (`shell`), then timers, then dispatches (the QPU's, then the lanes').
Effects are carried out by `effects`, given the publisher, the sequences, the backends and the
answer channel. Losing the broker (or the lease) stops local work; the owner reconnects with
backoff and stands by again.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from brokers.connection import Connection, close_quietly, connect, translated
from brokers.errors import BrokerError
from brokers.settings import Settings
from brokers.topology import Topology, build_topology, declare
from consumers.backends.base import Backend
from consumers.clock import SteadyClock, note_jump
from consumers.command_io import CommandIO
from consumers.core.session_view import SessionPhases
from consumers.core.state import OwnerState
from consumers.core.step import Context, Recovered
from consumers.device import Devices
from consumers.effects import Backends, Effects
from consumers.errors import OwnerError
from consumers.event_lines import log_event
from consumers.intake import Intake
from consumers.joblog import JobAnswers
from consumers.lanes import LanePool
from consumers.lease import acquire_lease
from consumers.metrics import OwnerMetrics
from consumers.pending import Pending
from consumers.plugins.gate import Gate
from consumers.plugins.loading import Plugins
from consumers.plugins.sinks import SinkFanout
from consumers.policylog import PolicyInForce
from consumers.positions import PositionPusher, send_position
from consumers.publish import Publisher
from consumers.recovery import LogFollower
from consumers.run_sequences import RunSequences
from consumers.sequences import SequenceStore
from consumers.settle import collector
from consumers.shell import Shell
from consumers.spans import JobTraces
from consumers.standbys import Beacon, Roster
from schemas.events import OwnerActivated, Topic, make_event
from schemas.messages import Event, JobResult, new_id
from schemas.policy import Policy
from schemas.sequence import SequenceChecker

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
        self.in_force = PolicyInForce(policy, policy_path)
        self.backend = backend
        self.devices = Devices(backend)
        self.owner_id = owner_id
        # The steady clock by default: a jump of the system clock moves no duration the core
        # decides on (`consumers.clock`).
        self.clock: Callable[[], datetime] = clock if clock is not None else SteadyClock()
        self.topology: Topology = build_topology(settings, policy)
        self.active = threading.Event()
        self.shell: Shell | None = None
        self.intake: Intake | None = None
        self._stop = threading.Event()
        self.metrics: OwnerMetrics | None = None  # `qsched owner` sets it when metrics are on
        self.plugins = plugins or Plugins()  # loaded at start; a policy reload keeps them
        self.gate = Gate(self.plugins)
        self.sinks = SinkFanout(self.plugins)
        self.lanes = LanePool(policy.lanes, settings.owner.progress_every_shots)
        self.roster = Roster(self.clock)
        self._jump_logged = 0.0

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
        """Stop the local runs: the next active owner puts them back from the log."""
        if self.shell is not None:
            self.shell.backends.abandon(self.shell.state)
            self.shell.effects.traces.abandon("owner lost the broker")
        self.shell = self.intake = None
        self.active.clear()
        if self.metrics is not None:
            self.metrics.standby()

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
                shell, intake = self._activate(conn)
                self._loop(conn, shell, intake)
        finally:
            close_quietly(conn)

    # ---- activation ------------------------------------------------------------------------

    def _activate(self, conn: Connection) -> tuple[Shell, Intake]:
        started = time.monotonic()
        settings, topology = self.settings, self.topology
        self.devices.wait_for_backend(conn, self._stop.is_set)
        channel = conn.channel()
        declare(channel, topology)
        log_bytes = settings.log_max_bytes  # the log holds snapshots larger than messages
        publisher = Publisher(
            conn,
            channel,
            topology,
            settings.amqp_user,
            self.owner_id,
            settings.max_message_bytes,
            settings.owner.snapshot_max_bytes,
            self.clock,
        )
        store = SequenceStore(settings.owner.sequence_cache_bytes, log_bytes)
        follower = LogFollower(conn, topology, publisher, store, log_bytes)
        pointer = follower.read_pointer(channel)
        state = follower.replay(self.in_force.policy.fair_share_half_life_s, pointer)
        policy_logged = self.in_force.activate(state.policy)
        publisher.term = state.term + 1
        shell = self._shell(conn, state, publisher, follower, store)
        self.shell = shell
        activated = OwnerActivated(
            term=publisher.term, backend=self.backend.name, policy=policy_logged
        )
        reason = f"owner {self.owner_id} took the QPU lease"
        shell.emit([make_event(Topic.OWNER_ACTIVATED, activated, reason=reason)])
        shell.handle(Recovered())
        shell.events_since_snapshot += follower.replayed  # a long replay: snapshot soon
        self.devices.publish(publisher, topology, state)
        runs, results = shell.effects.runs, shell.effects.results
        self.roster = Roster(self.clock)
        command_io = CommandIO(topology, settings.max_message_bytes, self.roster, runs, results)
        intake = Intake(
            shell,
            settings,
            topology,
            self.in_force,
            self.devices,
            self.gate,
            command_io,
            self.sinks.take_reports,
        )
        self.intake = intake
        jobs = conn.channel()
        jobs.basic_qos(prefetch_count=settings.owner.prefetch)
        for job_class in topology.class_names:
            queue = topology.job_queue(job_class)
            jobs.basic_consume(queue, collector(intake.jobs, queue))
        self.roster.listen(conn, topology, self.owner_id)
        control = conn.channel()
        control.basic_qos(prefetch_count=50)
        control.basic_consume(
            topology.control_queue, collector(intake.commands, topology.control_queue)
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
        shell.dispatch_lanes()
        return shell, intake

    def _shell(
        self,
        conn: Connection,
        state: OwnerState,
        publisher: Publisher,
        follower: LogFollower,
        store: SequenceStore,
    ) -> Shell:
        """The shell of one activation, and the effects executor it is given."""
        settings, topology, clock = self.settings, self.topology, self.clock
        device = functools.partial(self.devices.current, state)
        checker = SequenceChecker(deep=settings.owner.sequence_rebuild)
        runs = RunSequences(store, conn, topology.events_stream, checker)
        results: OrderedDict[str, JobResult] = OrderedDict()
        answers = JobAnswers(
            follower.jobs,
            results,
            publisher.reply,
            conn,
            topology.events_stream,
            follower.max_bytes,
            lambda session: SessionPhases(state, self.in_force.policy, clock()).summary(session),
        )
        backends = Backends(self.backend, self.lanes.backends, conn)
        pending = Pending()
        effects = Effects(
            state,
            self.in_force,
            clock,
            device,
            publisher,
            topology,
            runs,
            backends,
            answers,
            JobTraces(topology),
            pending,
        )
        ctx = Context(self.owner_id, self.backend.name, new_id)
        return Shell(
            state,
            self.in_force,
            ctx,
            clock,
            device,
            publisher,
            follower,
            effects,
            pending,
            self._observe,
        )

    # ---- the loop --------------------------------------------------------------------------

    def _loop(self, conn: Connection, shell: Shell, intake: Intake) -> None:
        owner = self.settings.owner
        next_tick = time.monotonic()
        last_snapshot = time.monotonic()
        positions = PositionPusher(owner.position_every_s)  # a new owner tells everyone again
        tell = functools.partial(send_position, shell.publisher)
        backends = shell.backends
        while not self._stop.is_set():
            # A backend report may have come in (and used up its wake-up) while the last commit
            # waited for confirms: then only look at the socket. Confirms do not wake a blocked
            # wait (they arrive below pika's blocking wrapper): poll in short steps while some
            # effects wait for them.
            if not (backends.inbox.empty() and backends.lane_inbox.empty()):
                wait_s = 0.0
            else:
                wait_s = CONFIRM_POLL_S if shell.pending else owner.tick_s
            conn.process_data_events(time_limit=wait_s)
            shell.settle()
            taken = (len(intake.jobs), time.monotonic())
            changed = intake.take() | shell.drain_inbox()
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + owner.tick_s
                self._jump_logged = note_jump(self.clock, self._jump_logged)
                shell.tick()
                intake.upkeep()
                changed = True
            if changed:
                shell.dispatch()
            if shell.drain_inbox(lanes=True) or changed:  # after the QPU's: never delay it
                shell.dispatch_lanes()
            positions.push_if_due(shell.state, shell.policy, shell.clock(), tell, now)
            if self.metrics is not None:  # after the acks and the start, off the dispatch path
                self.metrics.intake_done(taken[0], time.monotonic() - taken[1])
                self.metrics.after_iteration(shell.state, shell.policy)
            due_by_time = now - last_snapshot > owner.snapshot_every_s
            before = shell.events_since_snapshot
            shell.snapshot_if_due(owner.snapshot_every_events, due_by_time)
            if shell.events_since_snapshot < before:
                last_snapshot = now

    def _observe(self, event: Event) -> None:
        """Every applied event: to the event sinks, the metrics and the owner's log."""
        self.sinks.offer(event)
        if self.metrics is not None and self.shell is not None:
            self.metrics.seen(event, self.shell.state)
        log_event(event)
