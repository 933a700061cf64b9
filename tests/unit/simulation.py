"""Deterministic simulation of the owner: the production `step`/`apply` under seeded faults.

A seeded schedule drives the pure core as the shell would, with what the real world does to it:
jobs put into intake and delivered later, redelivered jobs (an ack lost), deliveries the broker
gives back because the owner died before acking them, confirms lost when an owner dies (the
broker may have kept any prefix of what it was sent), owner kills (the next owner folds the log),
frozen owners that come back and write with their old term, invalid sequences refused at intake,
backend failures and stops, and operators' commands. Every job put into intake is tracked, and
after each run the one invariant checker (`tests.support.invariants.check`) verifies the log against it:
every job ends (accepted then final, or refused), never two runs at once, no superseded owner
started anything, nothing ran before its epoch. `World.stale_changed_state` adds the core's own
promise: events of a stale term change nothing in the folded state.

Everything a run does comes from its seed: the schedule, the fault rates (`Rates`, printed), the
job, command and event ids (the core stamps its events with the simulated `now` and ids from the
seeded source it is given), so one seed writes the same log byte for byte.

`World(seed, step=...)` takes the function it drives, so a test can wrap the production `step`
with a mutation and show that the checker catches it.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from consumers.core.commands import Command
from consumers.core.outcomes import Recheck
from consumers.core.snapshot import to_data
from consumers.core.state import OwnerState
from consumers.core.step import (
    Arrival,
    Context,
    Dispatch,
    Finished,
    Progress,
    Recovered,
    Tick,
    step,
)
from schemas.control import ControlCommand
from schemas.enums import CommandName, ErrorCode, QPUState
from schemas.envelope import Event
from schemas.events import OwnerActivated, QPUStatus, Topic, is_stamped, make_event, stamp
from schemas.jobs import JobError, JobRequest
from schemas.policy import parse_policy
from schemas.wire import seeded_ids
from tests.support.invariants import Verdict, check

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEQ = json.dumps({"register": []})
POLICY = parse_policy("aging_step_s = 20\nmax_preemptions = 2\n")
Step = Callable[..., Any]


@dataclass(frozen=True)
class Rates:
    """How often each fault happens in one run (drawn from its seed, printed with it)."""

    owner_deaths: float  # per input: the owner dies before its confirms
    confirms: float  # per input: the broker's confirms of the window come in
    redeliveries: float
    invalid_sequences: float
    backend_errors: float
    stops: float

    @classmethod
    def draw(cls, rng: random.Random) -> Rates:
        return cls(
            owner_deaths=rng.uniform(0.0, 0.02),
            confirms=rng.uniform(0.2, 0.8),
            redeliveries=rng.uniform(0.0, 0.6),
            invalid_sequences=rng.uniform(0.0, 0.1),
            backend_errors=rng.uniform(0.0, 0.2),
            stops=rng.uniform(0.0, 0.4),
        )


class World:
    """The broker's log, the intake queue and the owners, all in memory."""

    def __init__(self, seed: int, step: Step = step) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.rates = Rates.draw(self.rng)
        self.ids = seeded_ids(self.rng.getrandbits(64))  # the owners' event ids
        print(f"simulation seed {seed}: {self.rates}")  # shown with -s and on failure
        self.step = step
        self.log: list[Event] = []  # what the broker confirmed
        self.window: list[Event] = []  # published and applied, confirms not yet in
        self.now = T0
        self.intake: list[Arrival] = []  # ready, in order
        self.unacked: list[Arrival] = []  # delivered, acked once the window is confirmed
        self.sent: list[str] = []  # every job put into intake
        self.state = OwnerState.for_half_life(POLICY.fair_share_half_life_s)
        self.term = 0
        self.frozen: tuple[int, OwnerState] | None = None
        self.prefixes_kept = 0  # owners that died with part of their window in the log
        self.activate()

    # ---- owners ------------------------------------------------------------------------------

    def fold(self) -> OwnerState:
        state = OwnerState.for_half_life(POLICY.fair_share_half_life_s)
        for event in self.log:
            state.apply(event)
        return state

    def activate(self) -> None:
        """A (new) owner folds the log, takes a higher term, and puts back a dead owner's run
        (its activation is confirmed before it does anything else)."""
        self.state = self.fold()
        self.term = self.state.term + 1
        activated = make_event(Topic.OWNER_ACTIVATED, OwnerActivated(term=self.term, backend="sim"))
        self.publish([activated])
        self.publish(self.step(self.state, POLICY, Recovered(), self.now, self.ctx())[0])
        self.confirm()

    def ctx(self, owner_id: str | None = None) -> Context:
        return Context(owner_id or f"owner-{self.term}", "sim", self.ids)

    def new_id(self) -> str:
        """A job or command id drawn from the seed."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def stamped(self, event: Event, term: int) -> Event:
        """The event as the broker has it: the core's stamp (the world's own events get theirs
        here, as the owner's publisher stamps the shell's) and the writer's term."""
        if not is_stamped(event):
            event = stamp(event, self.now, self.ids())
        return event.model_copy(update={"term": term})

    def control(self, name: CommandName, job_id: str | None = None) -> Command:
        """An operator's command, its id and time from the seed and the simulated clock."""
        command = ControlCommand(
            command=name, job_id=job_id, command_id=self.new_id(), issued_at=self.now
        )
        return Command(command, "guest")

    def publish(self, events: list[Event]) -> None:
        """Publish (pipelined) and apply at once, as the shell does."""
        for event in events:
            stamped = self.stamped(event, self.term)
            self.window.append(stamped)
            self.state.apply(stamped)

    def confirm(self) -> None:
        """The broker confirms the whole window: the deliveries it came from are acked."""
        self.log += self.window
        self.window = []
        self.unacked = []

    def kill(self) -> None:
        """The owner dies (kill -9, or confirms that never come): the broker kept some prefix of
        its window and gives its unacked deliveries back; the next owner takes over."""
        kept = self.rng.randint(0, len(self.window))
        self.prefixes_kept += 0 < kept < len(self.window)
        self.log += self.window[:kept]
        self.window = []
        self.intake[:0] = self.unacked
        self.unacked = []
        self.activate()

    def feed(self, given: object) -> list[object] | None:
        """Step one input; None when the owner died before its confirms (a new one took over)."""
        events, effects = self.step(self.state, POLICY, given, self.now, self.ctx())
        recheck = next((e for e in effects if isinstance(e, Recheck)), None)
        if recheck is not None:  # the shell's check of the sequence passes: decide again
            return self.feed(replace(given, checked=recheck.job.job_id))  # type: ignore[type-var]
        self.publish(list(events))
        roll = self.rng.random()
        if roll < self.rates.owner_deaths:
            self.kill()
            return None
        if roll < self.rates.confirms:
            self.confirm()
        return list(effects)

    # ---- the schedule ------------------------------------------------------------------------

    def run(self, steps: int = 250) -> None:
        for _ in range(steps):
            self.now += timedelta(seconds=self.rng.uniform(0, 3))
            self.act(self.rng.random())
        for _ in range(2000):  # drain: operators release the QPU, everything accepted ends
            self.deliver_all()
            self.release()
            self.feed(Dispatch())
            if self.state.running is None:
                if not self.state.waiting and not self.intake:
                    break
                if all((j.min_epoch or 0) > self.state.epoch for j in self.state.waiting.values()):
                    self.feed(self.control(CommandName.CALIBRATION_START))
                continue
            run = self.state.running
            self.now += timedelta(seconds=1)
            self.feed(Finished(run.job.job_id, {"1": run.job.remaining_shots}))
        self.confirm()  # the last owner stops cleanly

    def release(self) -> None:
        """What operators do at the end: resume a held QPU, complete a calibration."""
        qpu = self.state.qpu
        if qpu in (QPUState.PAUSED, QPUState.DRAINING):
            self.feed(self.control(CommandName.RESUME))
        elif qpu is QPUState.CALIBRATING and self.state.running is None:
            self.feed(self.control(CommandName.CALIBRATION_COMPLETE))

    def deliver(self, twice: bool = False) -> None:
        """The broker delivers the first ready message; it is acked once the owner's events are
        confirmed; if the owner dies first the broker gives it back. `twice`: a copy of it is
        delivered again (a client that sent it again, or an ack lost with its channel)."""
        arrival = self.intake.pop(0)
        self.unacked.append(arrival)
        if self.feed(arrival) is not None and twice:
            self.feed(arrival)

    def deliver_all(self) -> None:
        for _ in range(1000):
            if not self.intake:
                return
            self.deliver()

    def submit(self) -> None:
        """A client puts a job into intake (5% of them with a sequence the shell refuses)."""
        rng = self.rng
        job = JobRequest(
            job_id=self.new_id(),
            job_class=rng.choice(["production", "development", "calibration"]),
            shots=rng.randint(1, 200),
            priority=rng.randint(0, 9),
            sequence=SEQ,
            min_epoch=1 if rng.random() < 0.05 else None,
            submitted_at=self.now,
        )
        problem = None
        if rng.random() < self.rates.invalid_sequences:
            problem = JobError(code=ErrorCode.INVALID_SEQUENCE, message="bad register")
        self.intake.append(Arrival(job, rng.choice(["alice", "bob"]), problem=problem))
        self.sent.append(job.job_id)

    def act(self, roll: float) -> None:
        rng = self.rng
        run = self.state.running
        if roll < 0.25:
            self.submit()
        elif roll < 0.40 and self.intake:
            self.deliver(twice=rng.random() < self.rates.redeliveries)
        elif roll < 0.55:
            self.feed(Dispatch())
        elif roll < 0.65 and run is not None:
            failed = rng.random() < self.rates.backend_errors
            error = JobError(code=ErrorCode.BACKEND_ERROR, message="x") if failed else None
            canceled = error is None and rng.random() < self.rates.stops
            self.feed(Finished(run.job.job_id, {"1": 1}, error=error, canceled=canceled))
        elif roll < 0.70 and run is not None:
            self.feed(Progress(run.job.job_id, {"0": 1}))
        elif roll < 0.76:
            self.command()
        elif roll < 0.80:
            self.feed(Tick())
        elif roll < 0.84:
            self.kill()  # kill -9: the next owner takes over
        elif roll < 0.87:
            frozen = (self.term, self.state)  # this owner freezes; a new one takes over
            self.kill()
            self.frozen = frozen
        elif roll < 0.90 and self.frozen is not None:
            self.ghost()

    def command(self) -> None:
        rng = self.rng
        run = self.state.running
        name = rng.choice(
            [
                CommandName.PAUSE,
                CommandName.RESUME,
                CommandName.DRAIN,
                CommandName.CALIBRATION_START,
                CommandName.CALIBRATION_COMPLETE,
                CommandName.PREEMPT,
                CommandName.CANCEL,
            ]
        )
        target = None
        if name is CommandName.PREEMPT and run is not None:
            target = run.job.job_id
        elif name is CommandName.CANCEL and self.state.waiting:
            target = rng.choice(sorted(self.state.waiting))
        if name in (CommandName.PREEMPT, CommandName.CANCEL) and target is None:
            return
        self.feed(self.control(name, target))

    def ghost(self) -> None:
        """The frozen owner wakes up and what it had in hand reaches the log under its old term:
        its run's progress and end, and a QPU report. It starts nothing (it finds its lease gone
        before it would start a run); a start here is the split brain the checker must catch."""
        assert self.frozen is not None
        term, old = self.frozen
        ghost: list[Event] = []
        ctx = self.ctx("ghost")
        if old.running is not None:
            job_id = old.running.job.job_id
            for given in (Progress(job_id, {"0": 1}), Finished(job_id, {"0": 1})):
                ghost += self.step(old, POLICY, given, self.now, ctx)[0]
        ghost.append(make_event(Topic.QPU_DOWN, QPUStatus(up=False), reason="ghost"))
        for event in ghost:
            self.log.append(self.stamped(event, term))
        self.frozen = None

    # ---- verdicts ----------------------------------------------------------------------------

    def verdict(self) -> Verdict:
        """The invariant checker over the log, against every job put into intake."""
        return check(self.log, self.sent, None)

    def stale_changed_state(self) -> bool:
        """Whether folding the log differs from folding only its events of a current term."""
        top_term = 0
        clean = OwnerState.for_half_life(POLICY.fair_share_half_life_s)
        for event in self.log:
            if event.topic == Topic.OWNER_ACTIVATED:
                top_term = max(top_term, event.data["term"])
            if event.term is None or event.term >= top_term:
                clean.apply(event)
        ignore = {"ignored": 0, "events": 0}
        return bool(to_data(clean) | ignore != to_data(self.fold()) | ignore)


def problems_of(seed: int, step: Step = step, world_type: type[World] = World) -> list[str]:
    """Run the world of `seed` and return what broke (empty: every invariant held)."""
    world = world_type(seed, step)
    world.run()
    found = list(world.verdict().problems)
    if world.stale_changed_state():
        found.append("an event of a stale term changed the folded state")
    return found
