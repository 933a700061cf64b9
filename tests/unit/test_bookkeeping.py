"""The owner's bookkeeping headers are believed only from the owner, and only when well formed;
reply queues are recognised by owner user."""

from __future__ import annotations

from typing import Any

import pika
import pytest

from brokers.topology import Topology
from consumers.bookkeeping import Bookkeeping, read_bookkeeping

OWNER = "qsched-owner"


def props(user: str | None, headers: Any) -> pika.BasicProperties:
    return pika.BasicProperties(user_id=user, headers=headers)


def test_the_owners_own_headers_round_trip() -> None:
    marks = Bookkeeping(3, 1, {"01": 4}, "alice", "qpu.reply.alice.abc")
    assert read_bookkeeping(props(OWNER, marks.headers()), OWNER, shots=10) == marks


def test_headers_from_another_user_are_ignored() -> None:
    forged = Bookkeeping(7, 99, {"11": 9}, "guest", "qpu.device").headers()
    assert read_bookkeeping(props("mallory", forged), OWNER, shots=10) == Bookkeeping()


@pytest.mark.parametrize(
    "headers",
    [
        {"x-qsched-attempt": "abc"},
        {"x-qsched-attempt": -5},
        {"x-qsched-attempt": True},
        {"x-qsched-attempt": 10**12},
        {"x-qsched-preemptions": "x"},
        {"x-qsched-counts": "zz"},
        {"x-qsched-counts": {"00": "many"}},
        {"x-qsched-counts": {"00": -1}},
        {"x-qsched-counts": {"00": 11}},
        {"x-qsched-counts": [1, 2]},
        {"x-qsched-user": {"a": 1}, "x-qsched-reply-to": 5},
        "not a table",
        None,
    ],
)
def test_malformed_values_fall_back_to_a_fresh_job(headers: Any) -> None:
    marks = read_bookkeeping(props(OWNER, headers), OWNER, shots=10)
    assert marks == Bookkeeping()


@pytest.mark.parametrize(
    ("name", "user", "mine"),
    [
        ("qpu.reply.alice.abc123", "alice", True),
        ("qpu.reply.alice.abc123", "bob", False),
        ("qpu.reply.a.b.abc123", "a", False),  # user "a.b"'s queue, not user "a"'s
        ("qpu.reply.a.b.abc123", "a.b", True),
        ("qpu.reply.alice.", "alice", False),
        ("qpu.device", "alice", False),
        ("qpu.jobs.production", "alice", False),
        ("other.reply.alice.abc", "alice", False),
        (None, "alice", False),
        ("qpu.reply.alice.abc", None, False),
    ],
)
def test_reply_queues_belong_to_the_user_in_their_name(
    name: str | None, user: str | None, mine: bool
) -> None:
    assert Topology("qpu", ("production",)).is_reply_queue_of(name, user) is mine
