"""What waits for publisher confirms (`consumers.owner.pending`): released in order, by tag; a refused
event is fatal, a refused reply is reported."""

from __future__ import annotations

from typing import Any, cast

import pytest

from consumers.core.outcomes import StopRun
from consumers.owner.pending import Pending
from consumers.owner.publish import PublishFailed
from consumers.owner.settle import Delivery


def delivery(name: str) -> Delivery:
    return cast(Delivery, name)  # only passed through here


def test_effects_and_acks_wait_for_the_confirm_of_their_tag_and_keep_their_order() -> None:
    pending = Pending()
    pending.event("e1", 1)
    pending.effect(StopRun("a"), None, 1)
    pending.ack(delivery("d1"), 1)
    pending.event("e2", 2)
    pending.effect(StopRun("b"), delivery("d2"), 2)
    pending.ack(delivery("d2"), 2)
    assert pending.ready(0, {}).effects == []
    first = pending.ready(1, {})
    assert [e.job_id for e, _ in first.effects] == ["a"]  # type: ignore[union-attr]
    assert first.acks == ["d1"]
    second = pending.ready(5, {})
    assert [(e.job_id, d) for e, d in second.effects] == [("b", "d2")]  # type: ignore[union-attr]
    assert second.acks == ["d2"]
    assert not pending


def test_a_refused_event_is_fatal_and_a_refused_reply_is_reported() -> None:
    pending = Pending()
    pending.reply("job-1", "q.reply.alice.x", 3)
    pending.event("e1", 4)
    ready = pending.ready(3, {"job-1": "refused"})
    assert ready.failed_replies == {"job-1": ("q.reply.alice.x", "refused")}
    with pytest.raises(PublishFailed, match="e1"):
        pending.ready(4, cast(Any, {"e1": "nacked"}))
