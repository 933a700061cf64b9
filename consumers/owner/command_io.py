"""What a control command needs from the broker before the pure core sees it.

The core decides every command from the state alone, except three that need I/O first: `status`
reports the standbys heard on the roster, `requeue` of a job that ended ERROR needs its request
read back from the log, and `dead-requeue` (operators only) takes the dead letter it names off
the dead-letter queue. `CommandIO.prepare` does that I/O and hands the core a completed
`Command`, plus the delivery of a job to feed in again when the core agrees. A job id prefix is
resolved here as the core will resolve it (`resolve_prefix`), so the right request is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from brokers.connection import Channel
from brokers.topology import Topology
from consumers.core.command_types import is_operator
from consumers.core.commands import Command
from consumers.core.joblookup import resolve_prefix
from consumers.core.state import OwnerState
from consumers.owner import deadletters
from consumers.owner.run_sequences import RunSequences
from consumers.owner.settle import Delivery
from consumers.owner.standbys import Roster
from schemas.enums import CommandName, JobState
from schemas.events import JobAccepted
from schemas.jobs import JobResult
from schemas.policy import Policy


class CommandIO:
    """The broker reads of `status`, `requeue` and `dead-requeue`, for one activation.

    Args:
        topology: the owner's queue names.
        max_bytes: the message size limit for dead letters read back.
        roster: the standbys heard (`status`).
        runs: where a job's request is read back from the log (`requeue`).
        results: the results the owner remembers (a requeued job's attempts).
    """

    def __init__(
        self,
        topology: Topology,
        max_bytes: int,
        roster: Roster,
        runs: RunSequences,
        results: Mapping[str, JobResult],
    ) -> None:
        self.topology = topology
        self.max_bytes = max_bytes
        self.roster = roster
        self.runs = runs
        self.results = results
        self._dead: Channel | None = None

    def prepare(
        self, given: Command, delivery: Delivery, state: OwnerState, policy: Policy
    ) -> tuple[Command, Delivery | None]:
        """`given` completed with what it needs from the broker, and a job delivery to feed in
        if the core accepts the command (a requeued dead letter)."""
        name = given.command.command
        if name is CommandName.STATUS:
            return replace(given, standbys=self.roster.current()), None
        if name is CommandName.REQUEUE:
            everyone = is_operator(policy, given)
            found = resolve_prefix(state, given.command.job_id or "", given.user, everyone)
            job_id = found if isinstance(found, str) else ""  # the core refuses a bad prefix
            return replace(given, resubmit=self.resubmission(state, job_id)), None
        if name is CommandName.DEAD_REQUEUE and given.problem is None and given.operator:
            return deadletters.prepare(
                given, self._channel(delivery), self.topology, self.max_bytes
            )
        return given, None

    def resubmission(self, state: OwnerState, job_id: str) -> JobAccepted | None:
        """The request of a job that ended ERROR, read back from the log, with its next attempt
        when this owner saw the job end (after a failover its runs count from 1 again; `qsched
        show` counts them from the log). None for any other job: the core answers those."""
        if state.finished.get(job_id) is not JobState.ERROR:
            return None
        accepted = self.runs.accepted(job_id)
        if accepted is None:
            return None
        ended = self.results.get(job_id)
        return accepted.model_copy(update={"attempt": ended.attempts + 1 if ended else None})

    def _channel(self, delivery: Delivery) -> Channel:
        """The channel dead letters are taken on (kept open: they are acked when settled)."""
        if self._dead is None or not self._dead.is_open:
            self._dead = delivery.channel.connection.channel()
        return self._dead
