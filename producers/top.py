"""`qsched top`: a live view of the QPU for a terminal, like ``top`` for the QPU.

Each refresh asks the owner for its `status` and its `queue` (the same control commands as
`qsched status` and `qsched queue`, so positions and ETAs are the owner's, and a submitter sees
other users' jobs without their details). The last events come from the event log, read live
from a few minutes back (operators only: others see a note instead). The view is drawn on the
terminal's alternate screen and replaced in place (no scrolling, no flicker), sized to the
terminal (80x24 and up), and keys are read without echo: ``q`` or Ctrl-C quits and gives the
terminal back as it was. ``--once`` prints one frame and exits (for scripts and tests).
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections import deque
from collections.abc import Iterator
from datetime import timedelta

import click
from rich.console import Console
from rich.live import Live

from brokers.cli import settings_of
from brokers.connection import (
    ACCESS_REFUSED,
    Connection,
    close_quietly,
    connect,
    translated,
)
from brokers.errors import BrokerError, ChannelClosed, QschedError
from brokers.munge import MungeError, connection_url
from brokers.settings import Settings
from brokers.stream import StreamRecord, consume, events_of
from producers.budgets import fetch_budgets
from producers.client import QPUClient
from producers.top_view import EVENT_LINES, Frame, render
from schemas.enums import CommandName
from schemas.envelope import Event
from schemas.wire import utc_now

EVENTS_BACK = timedelta(minutes=10)
QUIT_KEYS = (b"q", b"Q")


class EventFeed:
    """The newest events of the log, read live by a stream consumer (operators only)."""

    def __init__(self, settings: Settings, stream: str, keep: int = EVENT_LINES) -> None:
        self.settings = settings
        self.stream = stream
        self.events: deque[Event] = deque(maxlen=keep)
        self.note: str | None = None
        self._conn: Connection | None = None

    def open(self) -> None:
        """Start reading from a few minutes back; a refusal becomes `note`, not an error."""
        try:
            url = connection_url(
                self.settings.amqp_url.split(";")[0], self.settings.auth, self.settings.munge_socket
            )
            self._conn = connect(url, name="qsched-top-events")
            with translated(f"read {self.stream}"):
                consume(self._conn, self.stream, utc_now() - EVENTS_BACK, self._on_record, 200)
        except ChannelClosed as exc:
            self.note = (
                "the event log is for operators only"
                if exc.code == ACCESS_REFUSED
                else f"event log unavailable: {exc}"
            )
        except (BrokerError, MungeError) as exc:
            self.note = f"event log unavailable: {exc}"

    def _on_record(self, record: StreamRecord) -> None:
        for event in events_of(record, self.settings.log_max_bytes):
            if event.topic not in ("job.progress", "owner.snapshot", "owner.activating"):
                self.events.append(event)

    def poll(self) -> None:
        """Take what arrived (does not block)."""
        if self._conn is None or not self._conn.is_open:
            return
        try:
            with translated("read the event log"):
                self._conn.process_data_events(time_limit=0)
        except BrokerError as exc:
            self.note = f"event log lost: {exc}"
            self._conn = None

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            close_quietly(self._conn)


def fetch_frame(client: QPUClient, feed: EventFeed, rows: int, timeout_s: float) -> Frame:
    """One refresh: the owner's status and the first `rows` jobs of its queue, the last events."""
    frame = Frame(at=utc_now(), events=list(feed.events), events_note=feed.note)
    try:
        frame.status = client.control(CommandName.STATUS, timeout=timeout_s).status
        frame.queue = client.queue(limit=rows + 1, timeout=timeout_s)  # +1: the running job
        frame.budgets = fetch_budgets(client, timeout_s)
    except QschedError as exc:
        frame.error = f"{exc}"
    frame.at = utc_now()
    return frame


@contextlib.contextmanager
def keys() -> Iterator[int | None]:
    """Standard input in cbreak mode (keys come one at a time, unechoed; Ctrl-C still
    interrupts); restored on exit. Yields its descriptor, None when it is no terminal."""
    if not sys.stdin.isatty():
        yield None
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def wait_for_quit(fd: int | None, feed: EventFeed, seconds: float) -> bool:
    """Wait up to `seconds`, taking events; True when a quit key was pressed."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if fd is None:
            time.sleep(min(left, 0.1))
        else:
            ready, _, _ = select.select([fd], [], [], min(left, 0.1))
            if ready and os.read(fd, 1) in QUIT_KEYS:
                return True
        feed.poll()
    return False


def run_live(client: QPUClient, feed: EventFeed, console: Console, interval_s: float) -> None:
    """Redraw every `interval_s` until q or Ctrl-C."""
    with keys() as fd, Live(console=console, screen=True, auto_refresh=False) as live:
        while True:
            feed.poll()
            frame = fetch_frame(client, feed, console.height, timeout_s=max(interval_s, 2.0))
            live.update(render(frame, console.width, console.height), refresh=True)
            if wait_for_quit(fd, feed, interval_s):
                return


@click.command("top")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.pass_context
def top(ctx: click.Context, once: bool, interval: float) -> None:
    """Live view of the QPU: state, running job, next jobs with ETA, waiting counts, events.

    Works in any terminal of 80x24 or more (over ssh too); q or Ctrl-C quits.
    """
    settings = settings_of(ctx)
    console = Console(highlight=False)
    try:
        client = QPUClient(settings=settings)
        feed = EventFeed(settings, client.topology.events_stream)
        interrupted = False  # Ctrl-C may leave the connection mid-frame: drop it unspoken to
        try:
            feed.open()
            if once:
                feed_wait_s = 0.5 if feed.note is None else 0.0
                wait_for_quit(None, feed, feed_wait_s)  # the recent events arrive
                frame = fetch_frame(client, feed, console.height, timeout_s=10.0)
                console.print(render(frame, console.width, console.height), crop=True)
                if frame.status is None:
                    sys.exit(3)
                return
            run_live(client, feed, console, interval)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            feed.close()
            client.close(delete_reply_queue=True, interrupted=interrupted)
    except KeyboardInterrupt:
        return
    except QschedError as exc:
        click.echo(f"qsched: {exc}", err=True)
        sys.exit(1)
