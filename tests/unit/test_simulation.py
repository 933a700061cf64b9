"""Deterministic simulation of the owner: the production `step`/`apply` under seeded faults.

A seeded schedule drives the pure core as the shell would, with what the real world does to it:
redelivered jobs, confirms lost before the owner dies (events that never reached the log),
owner kills (the next owner folds the log), frozen owners that come back and write with their
old term, backend failures and stops, and operators' commands. After each run the checker
verifies the invariants over the log: every accepted job ends exactly once, never two runs at
once, nothing runs before its epoch, no event of a stale term took effect. A failure prints its
seed; ``SIM_SEED=<n> pytest tests/unit/test_simulation.py`` replays it.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from consumers.core.commands import Command
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
from schemas.enums import CommandName, ErrorCode, QPUState
from schemas.events import OwnerActivated, Topic, make_event
from schemas.messages import ControlCommand, Event, JobError, JobRequest
from schemas.policy import parse_policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEQ = json.dumps({"register": []})
POLICY = parse_policy("aging_step_s = 20\nmax_preemptions = 2\n")
RUNS = int(os.environ.get("SIM_RUNS", "100"))


class World:
    """The broker's log, the intake queue and the owners, all in memory."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.log: list[Event] = []
        self.now = T0
        self.intake: list[tuple[JobRequest, str]] = []  # unacked deliveries
        self.state = OwnerState.for_half_life(POLICY.fair_share_half_life_s)
        self.term = 0
        self.frozen: tuple[int, OwnerState] | None = None
        self.activate()

    # ---- owners ------------------------------------------------------------------------------

    def fold(self) -> OwnerState:
        state = OwnerState.for_half_life(POLICY.fair_share_half_life_s)
        for event in self.log:
            state.apply(event)
        return state

    def activate(self) -> None:
        """A (new) owner folds the log, takes a higher term, and puts back a dead owner's run."""
        self.state = self.fold()
        self.term = self.state.term + 1
        ctx = Context(f"owner-{self.term}", "sim")
        self.commit(
            [make_event(Topic.OWNER_ACTIVATED, OwnerActivated(term=self.term, backend="sim"))]
        )
        self.feed(Recovered(), ctx)

    def commit(self, events: list[Event], lose: bool = False) -> bool:
        """Publish events; with `lose`, the confirms never come and the owner dies."""
        for event in events:
            stamped = event.model_copy(update={"term": self.term, "at": self.now})
            if lose:
                return False
            self.log.append(stamped)
            self.state.apply(stamped)
        return True

    def feed(self, given: object, ctx: Context | None = None) -> list[object]:
        ctx = ctx or Context(f"owner-{self.term}", "sim")
        events, effects = step(self.state, POLICY, given, self.now, ctx)  # type: ignore[arg-type]
        if not self.commit(events, lose=self.rng.random() < 0.01):
            self.activate()  # the owner died before its confirms: the log is the truth
            return []
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
                if not self.state.waiting:
                    break
                if all((j.min_epoch or 0) > self.state.epoch for j in self.state.waiting.values()):
                    self.feed(
                        Command(ControlCommand(command=CommandName.CALIBRATION_START), "guest")
                    )
                continue
            run = self.state.running
            self.now += timedelta(seconds=1)
            self.feed(Finished(run.job.job_id, {"1": run.job.remaining_shots}))

    def release(self) -> None:
        """What operators do at the end: resume a held QPU, complete a calibration."""
        qpu = self.state.qpu
        if qpu in (QPUState.PAUSED, QPUState.DRAINING):
            self.feed(Command(ControlCommand(command=CommandName.RESUME), "guest"))
        elif qpu is QPUState.CALIBRATING and self.state.running is None:
            self.feed(Command(ControlCommand(command=CommandName.CALIBRATION_COMPLETE), "guest"))

    def deliver_all(self) -> None:
        while self.intake:
            job, user = self.intake.pop(0)
            self.feed(Arrival(job, user))

    def act(self, roll: float) -> None:
        rng = self.rng
        run = self.state.running
        if roll < 0.25:
            job = JobRequest(
                job_class=rng.choice(["production", "development", "calibration"]),
                shots=rng.randint(1, 200),
                priority=rng.randint(0, 9),
                sequence=SEQ,
                min_epoch=1 if rng.random() < 0.05 else None,
                submitted_at=self.now,
            )
            self.intake.append((job, rng.choice(["alice", "bob"])))
        elif roll < 0.40 and self.intake:
            job, user = self.intake[0]
            self.feed(Arrival(job, user))
            if rng.random() < 0.3:
                self.feed(Arrival(job, user))  # redelivered: the ack was lost
            self.intake.pop(0)
        elif roll < 0.55:
            self.feed(Dispatch())
        elif roll < 0.65 and run is not None:
            error = (
                JobError(code=ErrorCode.BACKEND_ERROR, message="x") if rng.random() < 0.1 else None
            )
            canceled = error is None and rng.random() < 0.2
            self.feed(Finished(run.job.job_id, {"1": 1}, error=error, canceled=canceled))
        elif roll < 0.70 and run is not None:
            self.feed(Progress(run.job.job_id, {"0": 1}))
        elif roll < 0.76:
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
            self.feed(Command(ControlCommand(command=name, job_id=target), "guest"))
        elif roll < 0.80:
            self.feed(Tick())
        elif roll < 0.84:
            self.activate()  # kill -9: the next owner takes over
        elif roll < 0.87:
            self.frozen = (self.term, self.fold())  # this owner freezes; a new one takes over
            self.activate()
        elif roll < 0.90 and self.frozen is not None:
            term, old = self.frozen  # the frozen owner wakes up and writes with its old term
            ghost = step(old, POLICY, Dispatch(), self.now, Context("ghost", "sim"))[0]
            ghost += [make_event(Topic.QPU_DOWN, None, reason="ghost")]
            for event in ghost:
                self.log.append(event.model_copy(update={"term": term, "at": self.now}))
            self.frozen = None


def check(world: World) -> None:
    """The invariants, over the log the run wrote."""
    seed, log = world.seed, world.log
    accepted = [e.job_id for e in log if e.topic == Topic.JOB_ACCEPTED]
    assert len(accepted) == len(set(accepted)), f"seed {seed}: a job accepted twice"
    top_term = 0
    effective: list[Event] = []
    for event in log:
        if event.topic == Topic.OWNER_ACTIVATED:
            top_term = max(top_term, event.data["term"])
        if event.term is not None and event.term < top_term:
            continue  # a stale owner's event: must have no effect (checked below)
        effective.append(event)
    finals = Counter(e.job_id for e in effective if e.result is not None and e.job_id)
    assert all(n == 1 for n in finals.values()), f"seed {seed}: a job ended twice"
    assert set(accepted) <= set(finals), f"seed {seed}: accepted jobs never ended"
    running: str | None = None
    epoch = 0
    min_epochs = {
        e.job_id: e.data["job"].get("min_epoch") for e in effective if e.topic == Topic.JOB_ACCEPTED
    }
    for event in effective:
        if event.topic == Topic.CALIBRATION_COMPLETE:
            epoch = event.data["epoch"]
        if event.topic == Topic.JOB_STARTED:
            assert running is None, f"seed {seed}: {event.job_id} started while {running} ran"
            assert (min_epochs.get(event.job_id) or 0) <= epoch, (
                f"seed {seed}: ran before its epoch"
            )
            running = event.job_id
        elif running == event.job_id and (
            event.topic in (Topic.JOB_PREEMPTED, Topic.JOB_REQUEUED) or event.result is not None
        ):
            running = None
    clean = OwnerState.for_half_life(POLICY.fair_share_half_life_s)
    for event in effective:
        clean.apply(event)
    assert to_data(clean) | {"ignored": 0, "events": 0} == to_data(world.fold()) | {
        "ignored": 0,
        "events": 0,
    }, f"seed {seed}: a stale-term event changed the state"


def test_seeded_simulations_keep_every_invariant() -> None:
    seeds = [int(os.environ["SIM_SEED"])] if "SIM_SEED" in os.environ else range(RUNS)
    for seed in seeds:
        world = World(seed)
        try:
            world.run()
            check(world)
        except Exception as exc:
            raise AssertionError(
                f"simulation seed {seed} failed (SIM_SEED={seed} replays it): {exc}"
            ) from exc


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_thousands_of_seeded_simulations_keep_every_invariant() -> None:
    """The same, over 2,000 more seeds (`tox -e slow`)."""
    for seed in range(RUNS, RUNS + 2000):
        world = World(seed)
        try:
            world.run()
            check(world)
        except Exception as exc:
            raise AssertionError(f"simulation seed {seed} failed (SIM_SEED={seed}): {exc}") from exc
