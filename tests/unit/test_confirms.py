"""ConfirmedPublisher's bookkeeping: acks and nacks resolve the right messages, in any grouping."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from producers.confirms import ConfirmedPublisher


class _Channel:
    channel_id = 1
    is_open = True

    def __init__(self) -> None:
        self.events: dict[str, set[Any]] = defaultdict(set)

    def confirm_select(self) -> None:
        pass


class _Connection:
    class connection:  # stands for kombu's `connection.connection` (py-amqp's)
        frame_max = 131072
        transport = None


def _publisher(published: int) -> ConfirmedPublisher:
    publisher = ConfirmedPublisher(_Connection(), _Channel(), "alice", "reply", 1 << 20)  # type: ignore[arg-type]
    for tag in range(1, published + 1):
        publisher.unconfirmed[tag] = f"job-{tag}"
    publisher.next_tag = published + 1
    return publisher


def test_given_a_multiple_ack_then_every_older_tag_is_confirmed_and_stamped() -> None:
    publisher = _publisher(5)
    publisher._on_ack(3, True)
    assert list(publisher.unconfirmed) == [4, 5]
    assert set(publisher.confirmed_at) == {"job-1", "job-2", "job-3"}


def test_given_single_acks_out_of_order_then_a_later_multiple_ack_resolves_the_rest() -> None:
    publisher = _publisher(5)
    publisher._on_ack(2, False)
    publisher._on_ack(4, False)
    assert list(publisher.unconfirmed) == [1, 3, 5]
    publisher._on_ack(5, True)
    assert not publisher.unconfirmed
    assert len(publisher.confirmed_at) == 5


def test_given_a_multiple_nack_then_those_jobs_are_nacked_not_confirmed() -> None:
    publisher = _publisher(4)
    publisher._on_ack(1, False)
    publisher._on_nack(3, True)
    assert publisher.nacked == {"job-2", "job-3"}
    assert set(publisher.confirmed_at) == {"job-1"}
    assert list(publisher.unconfirmed) == [4]


def test_a_window_published_by_a_callback_while_the_first_waits_keeps_both_windows_acks() -> None:
    """A progress or position callback that submits while `publish_window` waits for confirms
    must not take the outer window's acks with it (`QPUClient.submit_many` reads them)."""
    from producers.confirms import Outgoing
    from schemas.jobs import JobProgress

    class Transport:
        def write(self, data: bytes) -> None:
            pass

    class Connection:
        class connection:
            frame_max = 131072
            transport = Transport()

        nested: dict[str, Any] | None = None
        drained = 0

        def drain_events(self, timeout: float) -> None:
            publisher._on_ack(publisher.next_tag - 1, True)  # everything sent so far is acked
            self.drained += 1
            if self.drained == 1:  # a callback run by this drain publishes a window itself
                self.nested = publisher.publish_window([outgoing("inner")], 5)

    def outgoing(job_id: str) -> Outgoing:
        return Outgoing(JobProgress(job_id=job_id, shots=1, shots_done=0), "", "q", job_id)

    connection = Connection()
    publisher = ConfirmedPublisher(connection, _Channel(), "alice", "reply", 1 << 20)  # type: ignore[arg-type]
    outer = publisher.publish_window([outgoing("outer")], 5)
    assert set(outer) == {"outer"}
    assert connection.nested is not None and set(connection.nested) == {"inner"}
    assert publisher.confirmed_at == {}
