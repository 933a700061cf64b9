"""An owner's activation, wired: what runs from taking the QPU lease to the first dispatch.

The state is rebuilt from the log (`recovery`: last snapshot + tail), the policy in force is
decided (`policylog`), then the activation's parts are built: the effects executor, given the
publisher, the run sequences, the backends and the answer channel (`effects`), the shell given
that executor (`shell`), and the intake given the shell (`intake`). `owner.activated` is written
with a term one higher than any before, a run a dead owner left is put back (`Recovered`), the
device published, and the class queues, the standbys' heartbeats and the control queue
consumed. Then the owner is active and dispatches once.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from brokers.connection import Connection
from brokers.settings import Settings
from brokers.topology import Topology, declare
from consumers.backends.base import Backend
from consumers.core.session_view import SessionPhases
from consumers.core.state import OwnerState
from consumers.core.step import Context, Recovered
from consumers.owner.command_io import CommandIO
from consumers.owner.device import Devices
from consumers.owner.effects import Backends, Effects
from consumers.owner.intake import Intake
from consumers.owner.joblog import JobAnswers
from consumers.owner.pending import Pending
from consumers.owner.policylog import PolicyInForce
from consumers.owner.publish import Publisher
from consumers.owner.recovery import LogFollower
from consumers.owner.run_sequences import RunSequences
from consumers.owner.sequences import SequenceStore
from consumers.owner.settle import collector
from consumers.owner.shell import Shell
from consumers.owner.snapshots import Snapshots
from consumers.owner.spans import JobTraces
from consumers.owner.standbys import Roster
from consumers.plugins.gate import Gate
from schemas.envelope import Event
from schemas.events import OwnerActivated, Topic, make_event
from schemas.jobs import JobResult
from schemas.sequence import SequenceChecker
from schemas.wire import new_id

log = logging.getLogger("consumers.owner")


@dataclass(frozen=True)
class OwnerParts:
    """What an owner process keeps across activations; each activation is built from it."""

    settings: Settings
    topology: Topology
    owner_id: str
    backend: Backend
    lanes: Mapping[str, Backend]  # the emulator lanes' backends (`consumers.owner.lanes`)
    clock: Callable[[], datetime]
    in_force: PolicyInForce
    devices: Devices
    gate: Gate
    sink_reports: Callable[[], list[Event]]  # the event sinks' troubles (`Intake.upkeep`)
    observe: Callable[[Event], None]  # told of every applied event
    active: threading.Event  # set once the owner is active
    stopped: Callable[[], bool]


def activate(
    parts: OwnerParts, conn: Connection, roster: Roster, adopt: Callable[[Shell], None]
) -> tuple[Shell, Intake]:
    """Activate on `conn` (the lease is held): the shell and the intake, consuming.

    Args:
        parts: the owner process's parts.
        conn: the owner's connection.
        roster: where the standbys' heartbeats are kept (`status`).
        adopt: given the shell as soon as it exists (the owner stops its runs if the
            activation fails past that point).
    """
    started = time.monotonic()
    settings, topology = parts.settings, parts.topology
    parts.devices.wait_for_backend(conn, parts.stopped)
    channel = conn.channel()
    declare(channel, topology)
    log_bytes = settings.log_max_bytes  # the log holds snapshots larger than messages
    publisher = Publisher(
        conn,
        channel,
        topology,
        settings.amqp_user,
        parts.owner_id,
        settings.max_message_bytes,
        settings.owner.snapshot_max_bytes,
        parts.clock,
    )
    store = SequenceStore(settings.owner.sequence_cache_bytes, log_bytes)
    follower = LogFollower(conn, topology, publisher, store, log_bytes)
    pointer = follower.read_pointer(channel)
    state = follower.replay(parts.in_force.policy.fair_share_half_life_s, pointer)
    policy_logged = parts.in_force.activate(state.policy)
    publisher.term = state.term + 1
    shell = build_shell(parts, conn, state, publisher, follower, store)
    adopt(shell)
    activated = OwnerActivated(
        term=publisher.term, backend=parts.backend.name, policy=policy_logged
    )
    reason = f"owner {parts.owner_id} took the QPU lease"
    shell.emit([make_event(Topic.OWNER_ACTIVATED, activated, reason=reason)])
    shell.handle(Recovered())
    shell.snapshots.seen(follower.replayed)  # a long replay: snapshot soon
    parts.devices.publish(publisher, topology, state)
    effects = shell.effects
    command_io = CommandIO(
        topology, settings.max_message_bytes, roster, effects.runs, effects.results
    )
    intake = Intake(
        shell,
        settings,
        topology,
        parts.in_force,
        parts.devices,
        parts.gate,
        command_io,
        parts.sink_reports,
    )
    jobs = conn.channel()
    jobs.basic_qos(prefetch_count=settings.owner.prefetch)
    for job_class in topology.class_names:
        queue = topology.job_queue(job_class)
        jobs.basic_consume(queue, collector(intake.jobs, queue))
    roster.listen(conn, topology, parts.owner_id)
    control = conn.channel()
    control.basic_qos(prefetch_count=50)
    control.basic_consume(
        topology.control_queue, collector(intake.commands, topology.control_queue)
    )
    parts.active.set()
    log.info(
        "active owner %s (term %d) on backend %s: %d events (from %s) in %.2f s, %d waiting",
        parts.owner_id,
        publisher.term,
        parts.backend.name,
        follower.replayed,
        "a snapshot" if pointer is not None else "the start",
        time.monotonic() - started,
        len(state.waiting),
    )
    shell.dispatch()
    shell.dispatch_lanes()
    return shell, intake


def build_shell(
    parts: OwnerParts,
    conn: Connection,
    state: OwnerState,
    publisher: Publisher,
    follower: LogFollower,
    store: SequenceStore,
) -> Shell:
    """The shell of one activation, and the effects executor it is given."""
    settings, topology, clock, in_force = (
        parts.settings,
        parts.topology,
        parts.clock,
        parts.in_force,
    )
    device = functools.partial(parts.devices.current, state)
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
        lambda session: SessionPhases(state, in_force.policy, clock()).summary(session),
    )
    backends = Backends(parts.backend, parts.lanes, conn)
    pending = Pending()
    traces = JobTraces(topology)
    effects = Effects(
        state,
        in_force,
        clock,
        device,
        publisher,
        topology,
        runs,
        backends,
        answers,
        traces,
        pending,
    )
    ctx = Context(parts.owner_id, parts.backend.name, new_id)
    snapshots = Snapshots(
        settings.owner.snapshot_every_events, settings.owner.snapshot_every_s, time.monotonic()
    )
    return Shell(
        state,
        in_force,
        ctx,
        clock,
        device,
        publisher,
        follower,
        effects,
        pending,
        parts.observe,
        snapshots,
    )
