"""`PositionPusher`: which jobs are told their place in line, and when they are told again."""

from __future__ import annotations

import pytest

from consumers.core.step import Dispatch
from consumers.core.view import queue_entries
from consumers.owner import positions
from consumers.owner.positions import COST_FACTOR, PositionPusher
from schemas.enums import JobState
from schemas.jobs import JobPosition
from tests.unit.core_harness import Harness


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, JobPosition]] = []

    def __call__(self, reply_to: str, message: JobPosition) -> None:
        self.sent.append((reply_to, message))

    def take(self) -> dict[str, tuple[str, JobPosition]]:
        taken = {m.job_id: (to, m) for to, m in self.sent}
        self.sent.clear()
        return taken


def test_a_job_without_a_reply_queue_is_told_nothing() -> None:
    h = Harness()
    h.submit(position_updates=True)
    assert PositionPusher(1.0).push(h.state, h.policy, h.now, Outbox()) == 0


def test_only_jobs_that_asked_are_told_their_position_on_their_own_reply_queue() -> None:
    h = Harness()
    quiet = h.submit(reply_to="qpu.reply.alice.a")
    watcher = h.submit(reply_to="qpu.reply.bob.b", user="bob", position_updates=True)
    out = Outbox()
    assert PositionPusher(1.0).push(h.state, h.policy, h.now, out) == 1
    told = out.take()
    assert quiet not in told
    reply_to, message = told[watcher]
    assert reply_to == "qpu.reply.bob.b"
    assert message.entry.position == 2 and message.entry.state is JobState.QUEUED


def test_a_job_is_told_again_only_when_its_position_changes_then_once_when_it_starts() -> None:
    h = Harness()
    ahead = [h.submit() for _ in range(3)]
    watcher = h.submit(position_updates=True, reply_to="qpu.reply.alice.a")
    pusher, out = PositionPusher(1.0), Outbox()
    pusher.push(h.state, h.policy, h.now, out)
    assert out.take()[watcher][1].entry.position == 4
    pusher.push(h.state, h.policy, h.now, out)
    assert out.take() == {}  # nothing changed: nothing sent
    h.feed(Dispatch())  # the first job starts: the watcher moves up
    pusher.push(h.state, h.policy, h.now, out)
    assert out.take()[watcher][1].entry.position == 3
    for _ in ahead:
        h.finish_running()
        h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == watcher
    pusher.push(h.state, h.policy, h.now, out)
    entry = out.take()[watcher][1].entry
    assert (entry.position, entry.state) == (0, JobState.RUNNING)
    pusher.push(h.state, h.policy, h.now, out)
    assert out.take() == {}  # told once that it runs; progress messages follow


def test_a_hold_is_told_with_its_reason() -> None:
    h = Harness()
    watcher = h.submit(position_updates=True, min_epoch=5, reply_to="qpu.reply.alice.a")
    out = Outbox()
    PositionPusher(1.0).push(h.state, h.policy, h.now, out)
    entry = out.take()[watcher][1].entry
    assert entry.position is None and entry.held is not None and "epoch" in entry.held


def test_pushes_are_spaced_by_the_interval() -> None:
    h = Harness()
    h.submit(position_updates=True, reply_to="qpu.reply.alice.a")
    pusher, out = PositionPusher(every_s=1.0), Outbox()
    assert pusher.push_if_due(h.state, h.policy, h.now, out, monotonic=100.0) == 1
    h.submit()  # no change for the watcher (it stays first), and not due anyway
    watcher2 = h.submit(position_updates=True, reply_to="qpu.reply.alice.a")
    assert pusher.push_if_due(h.state, h.policy, h.now, out, monotonic=100.5) == 0
    assert pusher.push_if_due(h.state, h.policy, h.now, out, monotonic=101.0 + 1e-6) == 1
    assert watcher2 in out.take()
    assert COST_FACTOR >= 20  # a push costs the owner at most 1/COST_FACTOR of its time


def test_one_push_tells_at_most_max_told_jobs_nearest_the_front_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(positions, "MAX_TOLD", 2)
    h = Harness()
    jobs = [h.submit(position_updates=True, reply_to="qpu.reply.alice.a") for _ in range(3)]
    pusher, out = PositionPusher(1.0), Outbox()
    pusher.push(h.state, h.policy, h.now, out)
    assert set(out.take()) == set(jobs[:2])
    pusher.push(h.state, h.policy, h.now, out)
    assert set(out.take()) == {jobs[2]}


def test_a_position_goes_out_under_its_own_message_id_and_an_unwritable_one_is_skipped() -> None:
    """A push failing (its queue gone) must never be taken for the job's result reply, which
    uses the job id as message id; a push that cannot be written is logged, never fatal."""
    from consumers.owner.positions import send_position
    from schemas.errors import EncodeError
    from schemas.reports import QueueEntry

    sent: list[dict[str, object]] = []

    class Publisher:
        def send(self, exchange: str, routing_key: str, message: object, **kw: object) -> None:
            if routing_key == "broken":
                raise EncodeError("cannot publish to broken")
            sent.append({"to": routing_key, **kw})

    h = Harness()
    job = h.submit(position_updates=True, reply_to="qpu.reply.alice.a")
    entry = next(e for e in queue_entries(h.state, h.policy, h.now) if e.job_id == job)
    message = JobPosition(job_id=job, entry=QueueEntry.model_validate(entry.model_dump()))
    send_position(Publisher(), "qpu.reply.alice.a", message)  # type: ignore[arg-type]
    send_position(Publisher(), "broken", message)  # type: ignore[arg-type]
    assert sent == [
        {"to": "qpu.reply.alice.a", "message_id": f"{job}:position", "correlation_id": job}
    ]
