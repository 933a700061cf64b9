"""The QPU owner process: standby until it holds the lease, then the scheduler (wiring only).

One thread owns the pika connection. A standby waits for the lease (an exclusive queue). Once
it holds it, the activation is wired (`activation`: state from the log, `owner.activated`, the
shell, its effects executor and the intake, the queues consumed). Pika callbacks only collect
deliveries; the loop hands them to the intake (`intake`), then backend reports to the shell
(`shell`), then timers, then dispatches (the QPU's, then the lanes'). Losing the broker (or the
lease) stops local work; the owner reconnects with backoff and stands by again.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from brokers.connection import Connection, close_quietly, connect, translated
from brokers.errors import BrokerError
from brokers.settings import Settings
from brokers.topology import Topology, build_topology
from consumers.backends.base import Backend
from consumers.errors import OwnerError
from consumers.owner.activation import OwnerParts, activate
from consumers.owner.clock import SteadyClock, note_jump
from consumers.owner.device import Devices
from consumers.owner.event_lines import log_event
from consumers.owner.intake import Intake
from consumers.owner.lanes import LanePool
from consumers.owner.lease import acquire_lease
from consumers.owner.metrics import OwnerMetrics
from consumers.owner.policylog import PolicyInForce
from consumers.owner.positions import PositionPusher, send_position
from consumers.owner.shell import Shell
from consumers.owner.standbys import Beacon, Roster
from consumers.plugins.gate import Gate
from consumers.plugins.loading import Plugins
from consumers.plugins.sinks import SinkFanout
from schemas.envelope import Event
from schemas.policy import Policy

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
        self.owner_id = owner_id
        # The steady clock by default: a jump of the system clock moves no duration the core
        # decides on (`consumers.owner.clock`).
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
        self.parts = OwnerParts(
            settings,
            self.topology,
            owner_id,
            backend,
            self.lanes.backends,
            self.clock,
            self.in_force,
            Devices(backend),
            self.gate,
            self.sinks.take_reports,
            self._observe,
            self.active,
            self._stop.is_set,
        )

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
        self.roster = Roster(self.clock)

        def adopt(shell: Shell) -> None:
            self.shell = shell

        shell, self.intake = activate(self.parts, conn, self.roster, adopt)
        return shell, self.intake

    # ---- the loop --------------------------------------------------------------------------

    def _loop(self, conn: Connection, shell: Shell, intake: Intake) -> None:
        owner = self.settings.owner
        next_tick = time.monotonic()
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
            shell.confirms.carry_out_confirmed()
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
            shell.snapshots.write_if_due(shell, now)

    def _observe(self, event: Event) -> None:
        """Every applied event: to the event sinks, the metrics and the owner's log."""
        self.sinks.offer(event)
        if self.metrics is not None and self.shell is not None:
            self.metrics.seen(event, self.shell.state)
        log_event(event)
