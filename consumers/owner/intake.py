"""Intake: job deliveries and control commands turned into the core's inputs, for one activation.

Pika callbacks only collect deliveries (`jobs`, `commands`); the owner's loop hands them here in
arrival order. A job delivery is decoded and validated against the current device
(`consumers.owner.deliveries`, `consumers.owner.batch_intake`), put to the admission plugins
(`consumers.plugins.gate`), and staged on the shell: acked once its events are confirmed, kept
unacked while its Slurm allocation is not registered (`consumers.owner.parking`), or refused (logged
unattached, answered, dead-lettered). A command is decoded and checked (`consumers.owner.control`),
completed with what it needs from the broker (`consumers.owner.command_io`), and handled; an accepted
one may reload the policy, give new device specs (published), or feed a requeued job in again.
Each delivery is handled safely: a failure dead-letters it, never the owner (`consumers.owner.settle`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from brokers.settings import Settings
from brokers.topology import Topology
from consumers.core.batches import BatchArrival
from consumers.core.inputs import Arrival
from consumers.core.outcomes import AwaitAllocation
from consumers.owner.batch_intake import is_batch, read_batch
from consumers.owner.command_io import CommandIO
from consumers.owner.control import Prepared, read_command
from consumers.owner.deliveries import Refusal, read_job, refused
from consumers.owner.device import Devices
from consumers.owner.parking import Kept, Parking
from consumers.owner.policylog import PolicyInForce
from consumers.owner.settle import Delivery, handle_safely
from consumers.owner.shell import Shell
from consumers.plugins.gate import Gate
from schemas.envelope import Event


class Intake:
    """The deliveries of one activation, into the shell.

    Args:
        shell: the activation's shell (inputs are staged on it).
        settings: the namespace, size limits and the control commands' maximum age.
        topology: the owner's queue names (dead letters).
        in_force: the policy (a reload changes it there).
        devices: the device (published again when a calibration gives new specs).
        gate: the admission plugins.
        command_io: the broker reads commands need.
        sink_reports: the event sinks' troubles since last asked (logged at upkeep).
    """

    def __init__(
        self,
        shell: Shell,
        settings: Settings,
        topology: Topology,
        in_force: PolicyInForce,
        devices: Devices,
        gate: Gate,
        command_io: CommandIO,
        sink_reports: Callable[[], list[Event]],
    ) -> None:
        self.shell = shell
        self.settings = settings
        self.topology = topology
        self.in_force = in_force
        self.devices = devices
        self.gate = gate
        self.command_io = command_io
        self.sink_reports = sink_reports
        self.jobs: list[
            Delivery
        ] = []  # filled by the pika callbacks (`consumers.owner.settle.collector`)
        self.commands: list[Delivery] = []
        self.parking = Parking()  # job deliveries waiting for their allocation's registration

    def take(self) -> bool:
        """Handle the collected job deliveries, commands and kept deliveries now due; True if
        there were any."""
        return self._take_jobs() | self._take_commands() | self._take_kept()

    def upkeep(self) -> None:
        """Held jobs asked again; plugin troubles (a failing sink) logged as events."""
        shell = self.shell
        readmitted, failures = self.gate.recheck(shell.state)
        failures += self.sink_reports()
        if failures:
            shell.emit(failures)
            shell.commit()
        for given in readmitted:
            shell.handle(given)

    # ---- jobs ----------------------------------------------------------------------------------

    def _take_jobs(self) -> bool:
        batch, self.jobs[:] = list(self.jobs), []
        shell = self.shell
        device = shell.device() if batch else None
        with shell.intake_group():  # their events go as few records of the log
            for delivery in batch:
                handle_safely(
                    shell.publisher, self.topology, delivery, lambda d: self._job(d, device)
                )
        return bool(batch)

    def _take_kept(self) -> bool:
        """Job deliveries kept for their allocation's registration: stepped again once it is
        registered, or once the registration grace is over (`consumers.owner.parking`)."""
        shell = self.shell
        policy = self.in_force.policy
        due = self.parking.due(shell.state, policy.accounts.registration_grace_s)
        for kept in due:

            def again(delivery: Delivery, kept: Kept = kept) -> None:
                arrival, failures = self.gate.review(
                    kept.arrival, shell.state, self.in_force.policy
                )
                shell.emit(failures)
                self.job_delivery(arrival, delivery, kept.validated_ns, kept.since_s)

            handle_safely(shell.publisher, self.topology, kept.delivery, again)
        return bool(due)

    def _job(self, delivery: Delivery, device: Any) -> None:
        began_ns = time.time_ns()
        shell = self.shell
        job_class = delivery.queue.rsplit(".", 1)[-1]
        if is_batch(delivery.properties):
            batch = read_batch(
                delivery.properties,
                delivery.body,
                job_class,
                self.settings.namespace,
                self.settings.max_message_bytes,
                device,
                shell.effects.runs.checker,
                shell.state,
            )
            self.job_delivery(batch, delivery, (began_ns, time.time_ns()))
            return
        parsed = read_job(
            delivery.properties,
            delivery.body,
            job_class,
            self.settings.namespace,
            self.settings.max_message_bytes,
            device,
            shell.effects.runs.checker,
            self.in_force.policy.gateway_users,
        )
        if isinstance(parsed, Arrival):
            parsed, failures = self.gate.review(parsed, shell.state, self.in_force.policy)
            shell.emit(failures)
        self.job_delivery(parsed, delivery, (began_ns, time.time_ns()))

    def job_delivery(
        self,
        parsed: Arrival | BatchArrival | Refusal,
        delivery: Delivery,
        validated_ns: tuple[int, int],
        since_s: float | None = None,
    ) -> None:
        """Stage one decoded job delivery; it is acked at the next commit, once its events
        are confirmed, or kept unacked while its Slurm allocation is not registered
        (`consumers.owner.parking`; `since_s`: kept since then already)."""
        shell = self.shell
        if isinstance(parsed, Refusal):
            self._refuse(parsed, delivery)
        elif isinstance(parsed, BatchArrival):
            shell.stage(parsed, delivery)
        else:
            shell.effects.traces.took(parsed.job.job_id, validated_ns)
            parsed = self.parking.prepared(parsed, since_s)
            effects = shell.stage(parsed, delivery)
            wait = next((e for e in effects if isinstance(e, AwaitAllocation)), None)
            if wait is not None:
                self.parking.keep(parsed, delivery, validated_ns, wait.allocation, since_s)
                return
        shell.after_confirms(None, delivery)

    def _refuse(self, refusal: Refusal, delivery: Delivery) -> None:
        """A delivery that is no job of its sender: log it unattached, answer, dead-letter."""
        events, effects = refused(refusal, delivery.queue, self.shell.clock())
        self.shell.emit(events)
        for effect in effects:
            self.shell.after_confirms(effect, delivery)

    # ---- commands ------------------------------------------------------------------------------

    def _take_commands(self) -> bool:
        batch, self.commands[:] = list(self.commands), []
        for delivery in batch:
            handle_safely(self.shell.publisher, self.topology, delivery, self._command)
        return bool(batch)

    def _command(self, delivery: Delivery) -> None:
        shell = self.shell
        prepared = read_command(
            delivery.properties,
            delivery.body,
            self.settings.namespace,
            self.settings.max_message_bytes,
            self.in_force.policy,
            self.in_force.path,
            now=shell.clock(),
            max_age_s=self.settings.owner.control_max_age_s,
        )
        if not isinstance(prepared, Prepared):
            props = delivery.properties
            refusal = Refusal(prepared, props.user_id, None, props.message_id)
            self.job_delivery(refusal, delivery, (0, 0))
            return
        given, resubmitted = self.command_io.prepare(
            prepared.command, delivery, shell.state, self.in_force.policy
        )
        if shell.command(given, delivery):
            if resubmitted is not None:
                self._job(resubmitted, shell.device())
            if prepared.policy is not None:
                self.in_force.policy = prepared.policy
            if prepared.device is not None:  # the state has the new specs: publish them
                self.devices.publish(shell.publisher, self.topology, shell.state)
