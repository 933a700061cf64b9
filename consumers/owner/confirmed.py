"""The publish-then-confirm step: what waits for the confirms of the events sent, carried out
once they come.

The shell sends events pipelined (`consumers.owner.publish`) and hands what depends on them
here: an effect (a reply, a dead letter, an answer...) or a delivery's ack waits in `Pending` for
the publish tag of the last event sent so far. `carry_out_confirmed` takes the confirms that came
in (without waiting), carries out what they released (`consumers.owner.effects`) and acks
(`consumers.owner.settle`); a reply the broker refused becomes a `job.reply_failed` event, sent
through the shell like any other and itself confirmed later. `commit` waits for every confirm
first. A confirm that fails raises `PublishFailed`: the state is ahead of the log, and the
activation is dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from consumers.core.outcomes import Effect
from consumers.owner.effects import Effects
from consumers.owner.pending import Pending
from consumers.owner.publish import Publisher
from consumers.owner.settle import Delivery, ack
from schemas.envelope import Event
from schemas.events import Topic, make_event


class AfterConfirms:
    """What waits for confirms, and carrying it out once they come.

    Args:
        publisher: the events go out (and are confirmed) through it.
        pending: what waits for which publish tag (shared with `effects`).
        effects: carries out the effects.
        emit: sends and applies events (the shell's `emit`): a failed reply's event.
    """

    def __init__(
        self,
        publisher: Publisher,
        pending: Pending,
        effects: Effects,
        emit: Callable[[list[Event]], None],
    ) -> None:
        self.publisher = publisher
        self.pending = pending
        self.effects = effects
        self._emit = emit

    def wait_for(self, effect: Effect | None, delivery: Delivery | None) -> None:
        """Carry out `effect` (None: ack `delivery`) once the events sent so far are confirmed."""
        if effect is None:
            assert delivery is not None
            self.pending.ack(delivery, self.publisher.last_tag)
        else:
            self.pending.effect(effect, delivery, self.publisher.last_tag)

    def commit(self) -> None:
        """Wait for the confirms of everything sent, then carry out what was waiting for them.

        Raises:
            PublishFailed: an event was not confirmed (the state is ahead of the log).
        """
        self.publisher.wait_confirmed()
        self.carry_out_confirmed()

    def carry_out_confirmed(self) -> None:
        """Carry out the staged effects and acks whose events are confirmed, without waiting.

        A reply the broker refused becomes a `job.reply_failed` event (itself confirmed later,
        like the replies sent now).

        Raises:
            PublishFailed: an event was refused (the state is ahead of the log).
        """
        failed = self.publisher.pump()
        ready = self.pending.ready(self.publisher.confirmed_through(), failed)
        for effect, delivery in ready.effects:
            unwritten = self.effects.carry_out(effect, delivery)
            if unwritten:  # a reply that cannot be written: `job.reply_failed`
                self._emit(unwritten)
        for delivery in ready.acks:
            ack(delivery)
        if ready.failed_replies:
            self._emit(
                [
                    make_event(Topic.JOB_REPLY_FAILED, job_id=job_id, reason=f"{to}: {why}")
                    for job_id, (to, why) in ready.failed_replies.items()
                ]
            )
