"""Reading a dead letter's headers: where it came from, who sent it, why it was refused."""

from __future__ import annotations

import pika

from brokers.topology import (
    dead_letter_origin,
    dead_letter_properties,
    dead_letter_reason,
    dead_letter_sender,
)


def test_a_letter_the_owner_refused_names_its_queue_sender_code_and_reason() -> None:
    original = pika.BasicProperties(user_id="alice", message_id="m1", type="qsched.JobRequest/1")
    props = dead_letter_properties(original, "too many shots", "TOO_MANY_SHOTS", "qpu.jobs.dev")
    assert props.user_id is None  # the owner re-published it
    assert dead_letter_origin(props) == "qpu.jobs.dev"
    assert dead_letter_sender(props) == "alice"
    assert dead_letter_reason(props) == ("TOO_MANY_SHOTS", "too many shots")


def test_a_letter_the_broker_dead_lettered_is_read_from_x_death() -> None:
    props = pika.BasicProperties(
        user_id="bob",
        headers={"x-death": [{"queue": b"qpu.control", "reason": b"expired", "count": 1}]},
    )
    assert dead_letter_origin(props) == "qpu.control"
    assert dead_letter_sender(props) == "bob"
    assert dead_letter_reason(props) == (None, "expired")


def test_a_letter_without_headers_is_read_as_unknown() -> None:
    props = pika.BasicProperties()
    assert dead_letter_origin(props) is None and dead_letter_sender(props) is None
    assert dead_letter_reason(props) == (None, None)
