"""The active owner's imperative shell: inputs in, `step`, events out (confirmed), effects done.

Every change goes the same way: ask the pure core what an input means (`stage`), publish its
events (pipelined) and fold each into the state with `OwnerState.apply`, then `commit`: wait for
the events' confirms, then carry out what depends on them (replies, acks, dead letters:
`consumers.owner.confirmed`). The shell decides *when* an effect is carried out;
`consumers.owner.effects` carries it out. Deliveries come in through `consumers.owner.intake`,
each acked once its events are confirmed. Dispatch (the QPU's, then the lanes', through one
decision loop, `decide`) runs after every batch of inputs. The shell counts the events it applies
for the snapshot policy (`consumers.owner.snapshots`), which writes the snapshots.

The dispatch fast path: nothing about the QPU waits for a confirm. A backend's report is staged
(no wait), dispatch decides at once, and a start or a stop is carried out right after its event
is sent, before the confirms (start it, then confirm). A confirm that fails drops the activation
(`PublishFailed`), which stops the run; the log, where only confirmed events are, decides again,
so a run whose `job.started` never reached the log is simply started again by the next owner.
Replies' confirms are checked at the next commit (a failed one becomes `job.reply_failed`).
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from consumers.core.batches import BatchArrival
from consumers.core.outcomes import AwaitAllocation, Effect, Recheck, Reply, StartRun, StopRun
from consumers.core.state import OwnerState
from consumers.core.step import (
    Command,
    Context,
    Dispatch,
    Input,
    Invalidated,
    LaneDispatch,
    Tick,
    step,
)
from consumers.owner.confirmed import AfterConfirms
from consumers.owner.effects import Effects
from consumers.owner.pending import Pending
from consumers.owner.policylog import PolicyInForce
from consumers.owner.publish import RECORD_EVENTS, Publisher, records
from consumers.owner.recovery import LogFollower
from consumers.owner.settle import Delivery
from consumers.owner.snapshots import Snapshots
from schemas.envelope import Event
from schemas.policy import Policy
from schemas.sequence import SpecsDigest


class Shell:
    """The state and the one path of one activation: step, events out (confirmed), effects done.

    Args:
        state: the state rebuilt from the log.
        in_force: where the policy is held (a reload changes it there).
        ctx: the owner's identity and ids for the core.
        clock: the owner's clock.
        device: the device of the current epoch (`consumers.owner.device`).
        publisher: events go out (and are confirmed) through it.
        follower: where each event landed in the log (and the snapshot pointer).
        effects: carries out the effects (`consumers.owner.effects`).
        pending: what waits for confirms (shared with `effects`, whose replies wait too).
        on_event: told of every applied event (sinks, metrics, log lines).
        snapshots: counts the applied events (`consumers.owner.snapshots` writes snapshots).
    """

    def __init__(
        self,
        state: OwnerState,
        in_force: PolicyInForce,
        ctx: Context,
        clock: Callable[[], datetime],
        device: Callable[[], Any],
        publisher: Publisher,
        follower: LogFollower,
        effects: Effects,
        pending: Pending,
        on_event: Callable[[Event], None],
        snapshots: Snapshots,
    ) -> None:
        self.state = state
        self.in_force = in_force
        self.ctx = ctx
        self.clock = clock
        self.device = device
        self.publisher = publisher
        self.follower = follower
        self.effects = effects
        self.backends = effects.backends
        self.pending = pending
        self._on_event = on_event
        self.snapshots = snapshots
        self.confirms = AfterConfirms(publisher, pending, effects, self.emit)
        self._specs = SpecsDigest()
        self._group: list[Event] | None = None  # events of an `intake_group`, to send
        self._deferred: list[tuple[Effect | None, Delivery | None]] = []

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return self.in_force.policy

    # ---- the one path --------------------------------------------------------------------------

    def handle(self, given: Input, delivery: Delivery | None = None) -> list[Effect]:
        """Step one input, then commit: its events confirmed, then its effects carried out."""
        effects = self.stage(given, delivery)
        self.commit()
        return effects

    def stage(self, given: Input, delivery: Delivery | None = None) -> list[Effect]:
        """Step one input: send and apply its events; keep its effects for `commit`. A batch's
        events (its creation and every job's acceptance) go as few records of the log."""
        events, effects = step(self.state, self.policy, given, self.clock(), self.ctx)
        self.emit(events, together=isinstance(given, BatchArrival))
        for effect in effects:
            if not isinstance(effect, AwaitAllocation):  # the caller keeps the delivery
                self.after_confirms(effect, delivery)
        return effects

    def emit(self, events: list[Event], together: bool = False) -> None:
        """Send each event (`together`: up to `RECORD_EVENTS` to a stream record) and apply it
        (confirmed at the next `commit`). Inside `intake_group`, events are applied at once and
        sent as few records when the group ends."""
        if self._group is not None:
            for event in events:
                stamped = self.publisher.stamp(event)
                self._apply(stamped)
                self._group.append(stamped)
            return
        size = RECORD_EVENTS if together else 1
        for first in range(0, len(events), size):
            self._send(events[first : first + size])

    def _send(self, events: list[Event]) -> None:
        """Publish events as one record, with the bookkeeping of where and when it lands."""
        for stamped in self.publisher.events(events):
            self.follower.learn(stamped, self.publisher.last_offset)
            self.pending.event(stamped.event_id, self.publisher.last_tag)
            if self._group is None:
                self._apply(stamped)

    def _apply(self, stamped: Event) -> None:
        """Fold a sent event into the state and the effects' memory; tell the observers."""
        self.state.apply(stamped)
        self.snapshots.seen()
        self.effects.remember(stamped)
        self._on_event(stamped)

    @contextmanager
    def intake_group(self) -> Iterator[None]:
        """Deliveries taken together: their events (already applied) are sent as records of up
        to `RECORD_EVENTS` events and `RECORD_BYTES` of sequences, then their effects and acks
        wait for those records' confirms (one publish and confirm per record, not per job)."""
        self._group, self._deferred = [], []
        try:
            yield
        finally:
            events, self._group = self._group, []
            for record in records(events):
                self._send(record)
            self._group = None
            deferred, self._deferred = self._deferred, []
            for effect, delivery in deferred:
                self.after_confirms(effect, delivery)

    def after_confirms(self, effect: Effect | None, delivery: Delivery | None) -> None:
        """Carry out `effect` (None: ack `delivery`) once the events sent so far are confirmed."""
        if self._group is not None:
            self._deferred.append((effect, delivery))
        else:
            self.confirms.wait_for(effect, delivery)

    def commit(self) -> None:
        """Wait for the confirms of everything sent, then carry out what was waiting for them
        (`AfterConfirms.commit`; raises `PublishFailed` if an event was not confirmed)."""
        self.confirms.commit()

    def dispatch(self) -> None:
        """Ask the core what the QPU does next (`decide`)."""
        self.decide(Dispatch(specs=self._specs(self.device())))

    def dispatch_lanes(self) -> None:
        """Start the best lane-eligible jobs on the free emulator lanes (after the QPU's
        dispatch, never before it: `consumers.owner.lanes`)."""
        if not self.backends.lanes:
            return
        specs = self._specs(self.device())
        for lane in self.backends.lanes:
            if lane not in self.state.lanes and not self.decide(LaneDispatch(lane, specs)):
                return  # nothing may run on a lane now: the other lanes neither

    def decide(self, given: Dispatch | LaneDispatch) -> bool:
        """Step a decision (the QPU's or a lane's) and carry it out: a start or a stop at once,
        before the confirms; a re-check the core asks for (`Recheck`) here, then the decision
        again. True if a run started.
        """
        while True:
            events, effects = step(self.state, self.policy, given, self.clock(), self.ctx)
            recheck = next((e for e in effects if isinstance(e, Recheck)), None)
            if recheck is not None:
                problem = self.effects.recheck(recheck)
                if problem is None:
                    given = replace(given, checked=recheck.job.job_id)
                else:
                    self.handle(Invalidated(recheck.job.job_id, problem))
                    given = replace(given, checked=None)
                continue
            self.emit(events)
            for effect in effects:
                if isinstance(effect, StartRun | StopRun):  # a run waits for no confirm
                    self.effects.carry_out(effect, None)
                else:
                    self.confirms.wait_for(effect, None)
            self.confirms.carry_out_confirmed()
            return any(isinstance(e, StartRun) for e in effects)

    def drain_inbox(self, lanes: bool = False) -> bool:
        """Stage what the QPU's backend reported (committed by the dispatch that follows, which
        may start the next job first), or with `lanes` what the lanes reported (committed
        here, one confirm for all); True if anything was."""
        inbox = self.backends.lane_inbox if lanes else self.backends.inbox
        handled = False
        while True:
            try:
                given = inbox.get_nowait()
            except queue.Empty:
                break
            self.stage(given)
            handled = True
        if handled and lanes:
            self.commit()
        return handled

    def tick(self) -> None:
        """Deadlines, queue ages, run-time limits."""
        self.handle(Tick())

    def command(self, given: Command, delivery: Delivery) -> bool:
        """Handle one control command, ack it; True if the owner accepted it."""
        effects = self.stage(given, delivery)
        self.confirms.wait_for(None, delivery)
        self.commit()
        replies = [e.message for e in effects if isinstance(e, Reply)]
        return bool(replies) and bool(getattr(replies[-1], "ok", False))
