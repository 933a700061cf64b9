"""Reading a test's whole event log, however slowly the broker hands it over.

AMQP 0.9.1 has no end-of-stream signal. Reading "until nothing came for half a second" returns
a prefix whenever the broker pauses longer than that between deliveries, as a loaded machine
does: the invariant checker then calls every job after the cut lost (the fuzz test on the lead's
run under load ~20: "96 of 100 jobs sent and never reached the log", accepted=4, while its live
tap had seen each of them end). So the end is fixed first, as `qsched events` fixes it
(`brokers.stream.fetch_end_offset`: the offset of the stream's last record now), and the read goes
on until it has that record, waiting for each delivery as long as a loaded broker may take.
Tests read the log once what they check has happened (results received, owners stopped), so
the end they fix holds every event they are about.
"""

from __future__ import annotations

from collections.abc import Iterator

from pika.adapters.blocking_connection import BlockingChannel

from brokers.stream import StreamRecord, events_of, fetch_end_offset, read_stream
from schemas.envelope import Event

WAIT_S = 60.0  # for the last chunk, and for each delivery: generous on a loaded machine
QUIET_S = 0.5  # quiet time that ends the last chunk (what the old whole read cost at its end)


def whole_log(channel: BlockingChannel, stream: str, strict: bool = True) -> list[Event]:
    """Every event of `stream` up to its last record now, in order.

    Args:
        channel: a channel this read may use (its connection opens one more for the end).
        stream: the event stream.
        strict: fail on a record that holds no event (False: skip it, for logs with junk).
    """
    found: list[Event] = []
    for record in records_to_end(channel, stream):
        decoded = events_of(record)  # one event, or several written as one record
        assert decoded or not strict, f"record {record.offset} holds no event"
        found += decoded
    return found


def records_to_end(channel: BlockingChannel, stream: str) -> Iterator[StreamRecord]:
    """The stream's records from the first to the last one now (none when it is empty)."""
    end = fetch_end_offset(channel.connection, stream, first_wait_s=WAIT_S, quiet_s=QUIET_S)
    if end is None:
        return
    last = -1
    for record in read_stream(
        channel, stream, "first", stop=lambda r: r.offset >= end, max_wait_s=WAIT_S
    ):
        last = record.offset
        yield record
    assert last >= end, f"the log's records after offset {last} never came (its end is {end})"
