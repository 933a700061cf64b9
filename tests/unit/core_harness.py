"""`Harness`: drives the owner's pure core (`step` and `apply`) as the shell does, without a
broker, and keeps the log it wrote. Shared by the core's unit tests."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from consumers.core.outcomes import Recheck
from consumers.core.state import OwnerState
from consumers.core.step import Arrival, Command, Context, Dispatch, Finished, Recovered, step
from schemas.control import ControlCommand
from schemas.enums import CommandName
from schemas.envelope import Event
from schemas.events import OwnerActivated, Topic, is_stamped, make_event
from schemas.jobs import JobRequest
from schemas.policy import Policy, parse_policy
from schemas.wire import seeded_ids

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CTX = Context("owner-1", "synthetic", seeded_ids(0))
SEQ = json.dumps({"register": []})
POLICY = parse_policy("aging_step_s = 60\nshot_rate_hz = 100\njob_overhead_s = 0\n")


class Harness:
    """Drives `step` and `apply` as the shell does, and keeps the log it wrote."""

    def __init__(
        self,
        policy: Policy = POLICY,
        now: datetime = T0,
        seed: int = 0,
        *,
        register_claims: bool = True,
    ) -> None:
        """`register_claims`: an allocation a submitted job names is first registered, for
        the job's user, with the account and end the job claims (as an honest prolog would)."""
        self.policy = policy
        self.ctx = Context("owner-1", "synthetic", seeded_ids(seed))
        self.register_claims = register_claims
        self.state = OwnerState.for_half_life(policy.fair_share_half_life_s)
        self.log: list[Event] = []
        self.now = now
        self.started: list[str] = []
        self.term = 0
        self.activate()

    def activate(self) -> None:
        self.term = self.state.term + 1
        self.emit([make_event(Topic.OWNER_ACTIVATED, OwnerActivated(term=self.term, backend="s"))])
        self.feed(Recovered())

    def emit(self, events: list[Event]) -> None:
        for event in events:  # `step` stamped its events; the harness's own are stamped here
            event_id = event.event_id if is_stamped(event) else self.ctx.ids()
            update = {"term": self.term, "at": self.now, "event_id": event_id}
            stamped = event.model_copy(update=update)
            self.log.append(stamped)
            self.state.apply(stamped)
            if stamped.topic == Topic.JOB_STARTED:
                self.started.append(stamped.job_id or "")

    def feed(self, given: object) -> list[object]:
        events, effects = step(self.state, self.policy, given, self.now, self.ctx)  # type: ignore[arg-type]
        self.emit(events)
        recheck = next((e for e in effects if isinstance(e, Recheck)), None)
        if recheck is not None:  # the shell's check passes: decide again
            return self.feed(replace(given, checked=recheck.job.job_id))  # type: ignore[type-var]
        return list(effects)

    def submit(
        self,
        user: str = "alice",
        hold: str | None = None,
        site_term: float | None = None,
        reply_to: str | None = None,
        **fields: object,
    ) -> str:
        """A job arrives; `hold` and `site_term` are the site plugins' answers on it."""
        self.now += timedelta(milliseconds=1)  # submissions keep their order
        defaults = {"job_class": "production", "shots": 100, "submitted_at": self.now}
        job = JobRequest(sequence=SEQ, **(defaults | fields))  # type: ignore[arg-type]
        slurm = job.slurm
        if (
            self.register_claims
            and slurm is not None
            and slurm.job_id not in self.state.allocations
        ):
            self.register(slurm.job_id, user, slurm.account, slurm.allocation_end)
        self.feed(Arrival(job, user, reply_to=reply_to, hold=hold, site_term=site_term))
        return job.job_id

    def register(
        self,
        allocation: str,
        user: str,
        account: str | None = None,
        end: datetime | None = None,
        by: str = "guest",
    ) -> list[object]:
        """The prolog (or operator `by`) registers a Slurm allocation of `user`."""
        command = ControlCommand(
            command=CommandName.ALLOCATION_STARTED,
            allocation=allocation,
            user=user,
            account=account,
            end=end,
            issued_at=self.now,
        )
        return self.feed(Command(command, by))

    def finish_running(self) -> str | None:
        run = self.state.running
        if run is None:
            return None
        self.now += timedelta(seconds=1)
        self.feed(Finished(run.job.job_id, {"0": run.job.remaining_shots}))
        return run.job.job_id

    def run_all(self, limit: int = 10_000) -> list[str]:
        for _ in range(limit):
            self.feed(Dispatch())
            if self.finish_running() is None:
                break
        return self.started
