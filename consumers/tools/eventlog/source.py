"""Reading the event log for a command: one connection, the namespace's stream, two bounds.

`qsched events replay` and `qsched simulate` read the log the same way `events export` does
(`consumers.tools.eventlog.reader.read_log`); this module gives them the connection and the stream
name, and turns the readers' errors into the one-line failures the CLI prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from brokers.connection import connect
from brokers.settings import Settings
from brokers.topology import build_topology
from consumers.tools.eventlog.errors import EventLogError
from consumers.tools.eventlog.reader import Bound, LogRecord, read_log
from schemas.policy import load_policy


class LogUnreadable(Exception):
    """The event log could not be read; what the CLI prints (exit 1)."""

    hint = "check QSCHED_AMQP_URL / QSCHED_NAMESPACE and that you may read the event log"
    exit_code = 1


@contextmanager
def log_records(
    settings: Settings, name: str, start: Bound | None = None, end: Bound | None = None
) -> Iterator[Iterator[LogRecord]]:
    """The namespace's events from `start` to `end` (default: all up to now), while open.

    Args:
        settings: broker URL, namespace and policy file (the policy names the class queues).
        name: the connection's name, as the broker's management UI shows it.
        start, end: stream offsets or event times (`consumers.tools.eventlog.reader.parse_bound`).

    Raises:
        LogUnreadable: the stream is missing or may not be read, or a bound is wrong.
    """
    stream = build_topology(settings, load_policy(settings.policy_file)).events_stream
    conn = connect(settings.amqp_url, name=name)
    try:
        yield _translated(read_log(conn, stream, start, end, max_bytes=settings.log_max_bytes))
    finally:
        if conn.is_open:
            conn.close()


def _translated(records: Iterator[LogRecord]) -> Iterator[LogRecord]:
    try:
        yield from records
    except EventLogError as exc:
        raise LogUnreadable(str(exc)) from None
