"""Hostile messages for the fuzz tests: hypothesis strategies, publishing, and the tally.

A `Fuzzed` message is a body (raw bytes, msgpack of arbitrary data, a valid job or command with
fields broken, deep msgpack nesting) plus AMQP properties a client may set (content type, type,
priority, user id, reply_to, headers of any shape, ...) and the input it goes to: a class queue
(through the jobs exchange) or the control queue. Every message carries a tracking id: its
``message_id``, the ``job_id``/``command_id`` of a body built from a model, and an ``x-fuzz-id``
header, so `Tally` can find where each one went: dead-lettered with a reason, or handled (a
job's final event, a command's control event, a refusal naming the message, or a reply).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pika
from hypothesis import strategies as st
from pika.adapters.blocking_connection import BlockingChannel

from brokers.topology import CODE_HEADER, REASON_HEADER, Topology
from schemas import Event, decode_any
from schemas.codec import CONTENT_TYPE
from schemas.control import ControlCommand
from schemas.enums import CommandName
from schemas.jobs import JobPosition, JobRequest, JobResult
from schemas.records import EventRecord
from tests.support.sequences import analog_sequence

ID = "@ID@"  # replaced by the message's tracking id when it is published
CLASS = "@CLASS@"  # replaced by the class queue the message is routed to
FUZZ_HEADER = "x-fuzz-id"
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SHORT_TEXT = st.text(max_size=40)

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | INT64
    | st.floats(allow_nan=True)
    | SHORT_TEXT
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(SHORT_TEXT, inner, max_size=5),
    max_leaves=25,
)
# What pika can put in a header table (no floats of every kind, no unbounded ints).
HEADER_VALUE = st.recursive(
    st.none() | st.booleans() | INT64 | SHORT_TEXT | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=20), inner, max_size=4)
    ),
    max_leaves=15,
)
FORGED = st.fixed_dictionaries(
    {},
    optional={
        "x-qsched-attempt": HEADER_VALUE,
        "x-qsched-counts": HEADER_VALUE,
        "x-qsched-user": HEADER_VALUE,
        "x-qsched-reply-to": HEADER_VALUE,
        "x-qsched-error-code": HEADER_VALUE,
        "traceparent": HEADER_VALUE,
        "tracestate": HEADER_VALUE,
        "x-death": HEADER_VALUE,
    },
)


@dataclass(frozen=True)
class Fuzzed:
    """One hostile message before publishing (see the module docstring)."""

    target: str  # "jobs", "control", "events" (the log) or "snapshot" (the snapshot queue)
    routing: str  # a class name, ``control.<something>``, or an event topic
    body: Any  # bytes, or data to msgpack (with ID/CLASS placeholders)
    props: dict[str, Any]
    kind: str

    def _replace_target(self, target: str) -> Fuzzed:
        return Fuzzed(target, self.routing, self.body, self.props, self.kind)


def valid_job() -> dict[str, Any]:
    """A valid job as plain data (placeholders for its id and class)."""
    job = JobRequest(job_class="production", shots=5, sequence=analog_sequence(2))
    return job.model_dump(mode="json") | {"job_id": ID, "job_class": CLASS}


def valid_command(name: CommandName) -> dict[str, Any]:
    """A valid command that changes nothing as plain data (placeholder for its id)."""
    return ControlCommand(command=name).model_dump(mode="json") | {"command_id": ID}


@st.composite
def broken(draw: st.DrawFn, base: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    """`base` with fields replaced by anything, deleted, or added (never those in `keep`)."""
    data = dict(base)
    names = [n for n in data if n not in keep]
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "add":
            data[draw(SHORT_TEXT)] = draw(JSONISH)
        elif names:
            name = draw(st.sampled_from(names))
            if action == "delete":
                data.pop(name, None)
            else:
                data[name] = draw(JSONISH)
    return data


def deep(depth: int, kind: str) -> bytes:
    """msgpack nesting `depth` levels deep (arrays or maps), ending in nil."""
    level = b"\x91" if kind == "array" else b"\x81\xa1a"
    return level * depth + b"\xc0"


def bodies(kind_of_input: str) -> st.SearchStrategy[tuple[str, Any]]:
    """(kind, body) for a class queue ("jobs") or the control queue."""
    common = [
        st.tuples(st.just("raw"), st.binary(max_size=4096)),
        st.tuples(st.just("msgpack-any"), JSONISH),
        st.tuples(
            st.just("deep"),
            st.builds(
                deep,
                st.sampled_from([50, 500, 5000, 100_000]),
                st.sampled_from(["array", "map"]),
            ),
        ),
    ]
    if kind_of_input == "jobs":
        return st.one_of(
            *common,
            st.tuples(st.just("job-broken"), broken(valid_job(), ("job_id",))),
            st.tuples(st.just("job-valid"), st.just(valid_job())),
        )
    harmless = st.sampled_from([CommandName.STATUS, CommandName.QUEUE])
    return st.one_of(
        *common,
        st.tuples(
            st.just("command-broken"),
            harmless.map(valid_command).flatmap(lambda c: broken(c, ("command_id", "command"))),
        ),
        st.tuples(st.just("command-valid"), harmless.map(valid_command)),
    )


def properties(
    own_reply: str, device_queue: str, namespace: str
) -> st.SearchStrategy[dict[str, Any]]:
    """AMQP properties a client may set (user_id only as the broker lets it: its own or none)."""
    schema_types = [JobRequest.type_name(), ControlCommand.type_name(), "qsched.JobResult/1"]
    return st.fixed_dictionaries(
        {
            "content_type": st.sampled_from([CONTENT_TYPE] * 4 + [None, "text/plain"]) | SHORT_TEXT,
            "type": st.sampled_from([*schema_types, None, "qsched.JobRequest/99", "x/1"])
            | SHORT_TEXT,
            "priority": st.none() | st.integers(0, 255),
            "user_id": st.sampled_from(["guest"] * 6 + [None]),
            "reply_to": st.sampled_from(
                [own_reply] * 4 + [None, device_queue, f"{namespace}.reply.alice.x"]
            )
            | SHORT_TEXT,
            "headers": st.none()
            | FORGED
            | st.dictionaries(st.text(min_size=1, max_size=20), HEADER_VALUE, max_size=5),
        },
        optional={
            "correlation_id": SHORT_TEXT,
            "delivery_mode": st.sampled_from([1, 2]),
            "timestamp": st.integers(0, 2**63 - 1),
            "app_id": SHORT_TEXT,
            "content_encoding": st.sampled_from(["gzip", "utf-8"]) | SHORT_TEXT,
        },
    )


def messages(
    classes: tuple[str, ...], own_reply: str, device_queue: str, namespace: str
) -> st.SearchStrategy[Fuzzed]:
    """Hostile messages for every input the owner reads."""
    props = properties(own_reply, device_queue, namespace)
    jobs = st.builds(
        lambda cls, kb, p: Fuzzed("jobs", cls, kb[1], p, kb[0]),
        st.sampled_from(classes),
        bodies("jobs"),
        props,
    )
    commands = [c.value for c in CommandName]
    # A query (status, queue) with no reply_to is read and dropped: nothing outside the owner
    # could show it was handled, so control messages always name some reply_to.
    control = st.builds(
        lambda key, kb, p: Fuzzed("control", f"control.{key}", kb[1], p, kb[0]),
        st.sampled_from(commands) | st.from_regex(r"[a-z.#*]{1,20}", fullmatch=True),
        bodies("control"),
        props.filter(lambda p: bool(p.get("reply_to"))),
    )
    return st.one_of(jobs, control)


def _fill(data: Any, tracking_id: str, job_class: str) -> Any:
    if isinstance(data, dict):
        return {
            k: (tracking_id if v == ID else job_class if v == CLASS else v) for k, v in data.items()
        }
    return data


def publish(
    channel: BlockingChannel, topology: Topology, message: Fuzzed, tracking_id: str
) -> bool:
    """Publish one message (not confirmed one by one); False when pika cannot encode it."""
    body = message.body
    if not isinstance(body, bytes):
        body = msgpack.packb(_fill(body, tracking_id, message.routing), use_bin_type=True)
    headers = message.props.get("headers")
    headers = dict(headers) if isinstance(headers, dict) else {}
    props = pika.BasicProperties(
        **(
            message.props
            | {"message_id": tracking_id, "headers": headers | {FUZZ_HEADER: tracking_id}}
        )
    )
    exchange, routing = {
        "jobs": (topology.jobs_exchange, message.routing),
        "control": (topology.control_exchange, message.routing),
        "events": (topology.events_exchange, message.routing),
        "snapshot": ("", topology.snapshot_queue),
    }[message.target]
    try:
        channel.basic_publish(exchange, routing, body, props)
    except (TypeError, ValueError, OverflowError, UnicodeError, AssertionError):
        return False  # the client library refused to encode it: never sent
    return True


@dataclass
class Tally:
    """Where each tracked message went: dead letters (with reasons), events, replies."""

    tracked: set[str]
    dead: dict[str, dict[str, Any]] = field(default_factory=dict)
    untracked_dead: int = 0
    handled: dict[str, str] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)  # logged as no job of its sender

    def missing(self) -> set[str]:
        """Tracked messages neither dead-lettered nor handled yet. A message the owner logged
        as refused (no job of its sender: the event names its message id) is dead-lettered
        too: it is missing until its dead letter came (a large body's dead letter can arrive
        well after the event; counting it handled early made it a job the log never had)."""
        return self.tracked - set(self.dead) - (set(self.handled) - self.refused)

    def on_dead(self, props: Any) -> None:
        headers = props.headers if isinstance(props.headers, dict) else {}
        key = headers.get(FUZZ_HEADER) or props.message_id
        if isinstance(key, bytes):
            key = key.decode(errors="replace")
        if key in self.tracked:
            self.dead[key] = headers
        else:
            self.untracked_dead += 1

    def on_event(self, body: bytes, type_name: str | None) -> None:
        """A job is handled once it has ended (a final event: done, error, refused, ...), not
        at its first event: an accepted job that never ends is not handled. A command is
        handled by its ``control.<command>`` event; a message refused as no job of its sender
        by the event naming its message id."""
        message = decode_any(body, type_name)  # one event, or a record of several
        events = list(message.events) if isinstance(message, EventRecord) else [message]
        for event in events:
            assert isinstance(event, Event), f"{type_name} on the log: {event!r}"
            keys = [event.data.get("command_id"), event.data.get("message_id")]
            if event.result is not None and event.result.state.is_final:
                keys.append(event.job_id)
            for key in keys:
                if isinstance(key, str) and key in self.tracked:
                    self.handled.setdefault(key, event.topic)
            refusal = event.data.get("message_id")
            if event.job_id is None and isinstance(refusal, str) and refusal in self.tracked:
                self.refused.add(refusal)

    def on_reply(self, props: Any, body: bytes) -> None:
        """A reply answers a message when it is a command's reply or a job's final result (a
        position push names its job too, and answers nothing)."""
        key = props.correlation_id
        if key not in self.tracked or props.type == JobPosition.type_name():
            return
        reply = decode_any(body, props.type)
        if isinstance(reply, JobResult) and not reply.state.is_final:
            return
        self.handled.setdefault(key, "reply")


def collect(channel: BlockingChannel, tally: Tally, timeout_s: float) -> Tally:
    """Take what arrives on the channel's consumers until nothing is missing or `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while tally.missing() and time.monotonic() < deadline:
        channel.connection.process_data_events(time_limit=0.5)
    return tally


def without_reason(tally: Tally) -> list[str]:
    """Tracked dead letters that carry no reason and code (should be none)."""
    return [
        key
        for key, headers in tally.dead.items()
        if not (headers.get(REASON_HEADER) and headers.get(CODE_HEADER))
    ]
