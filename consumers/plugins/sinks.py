"""Event sinks: every event the owner writes also goes to site code, never on the owner's path.

Each sink has a bounded buffer and a daemon thread. `SinkFanout.offer` (called by the owner for
every event it applied) only appends to the buffers: it never waits. When a sink is slower than
the owner its buffer keeps the newest `sink_buffer` events and drops the oldest. The sink's
thread sends batches in order; a batch whose `send` raises is retried with backoff
(`RETRY_BACKOFF_S`), then dropped. What a sink lost, and a sink stuck inside `send` for longer
than `STUCK_FACTOR` times the plugin time limit, come back through `take_reports` as
``plugin.failed`` events, at most one per sink every `REPORT_EVERY_S` (a failing sink that is
sent its own failures cannot flood the log).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from consumers.plugins.gate import failure_event
from consumers.plugins.loading import Loaded, Plugins
from schemas.envelope import Event

RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
BATCH = 500
REPORT_EVERY_S = 30.0
STUCK_FACTOR = 10


@dataclass
class _Problem:
    error: str = ""
    dropped: int = 0
    reported_at: float = float("-inf")


class SinkWorker:
    """One sink: its buffer, its thread, its retries."""

    def __init__(self, loaded: Loaded, buffer: int, stuck_s: float) -> None:
        self.loaded = loaded
        self.stuck_s = stuck_s
        self.sent = 0
        self._buffer: deque[Event] = deque()
        self._max = buffer
        self._cond = threading.Condition()
        self._closing = False
        self._problem = _Problem()
        self._sending_since: float | None = None
        self._thread = threading.Thread(target=self._serve, name=f"sink-{loaded.name}", daemon=True)
        self._thread.start()

    def offer(self, event: Event) -> None:
        """Buffer one event (drops the oldest when full); never blocks on the sink."""
        with self._cond:
            if len(self._buffer) >= self._max:
                self._buffer.popleft()
                self._problem.dropped += 1
                self._problem.error = self._problem.error or "buffer full: the sink is too slow"
            self._buffer.append(event)
            self._cond.notify()

    def report(self, now_s: float) -> tuple[str, int] | None:
        """What went wrong since the last report (error, events lost), if it is time to say."""
        with self._cond:
            problem = self._problem
            since = self._sending_since
            if since is not None and now_s - since > self.stuck_s and not problem.error:
                problem.error = f"inside send() for {now_s - since:.0f} s"
            if not problem.error or now_s - problem.reported_at < REPORT_EVERY_S:
                return None
            said = (problem.error, problem.dropped)
            self._problem = _Problem(reported_at=now_s)
            return said

    def close(self, timeout_s: float) -> None:
        """Send what is buffered (within `timeout_s`), then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._buffer and not self._closing:
                    self._cond.wait()
                if not self._buffer:
                    return
                batch = [self._buffer.popleft() for _ in range(min(BATCH, len(self._buffer)))]
            self._deliver(batch)

    def _deliver(self, batch: list[Event]) -> None:
        error = ""
        for pause_s in (*RETRY_BACKOFF_S, None):
            with self._cond:
                self._sending_since = time.monotonic()
            try:
                self.loaded.plugin.send(batch)
            except BaseException as exc:  # the sink's failure is reported, never raised
                error = repr(exc)
            else:
                self.sent += len(batch)
                return
            finally:
                with self._cond:
                    self._sending_since = None
            if pause_s is None or self._closing:
                break
            time.sleep(pause_s)  # this sink's own thread: backing off delays nothing else
        with self._cond:
            self._problem.error = f"send() failed {len(RETRY_BACKOFF_S) + 1} times: {error}"
            self._problem.dropped += len(batch)


class SinkFanout:
    """Every sink the policy names; the owner's side of them."""

    def __init__(self, plugins: Plugins) -> None:
        settings = plugins.settings
        stuck_s = settings.timeout_s * STUCK_FACTOR
        self.workers = [SinkWorker(s, settings.sink_buffer, stuck_s) for s in plugins.event_sinks]

    def offer(self, event: Event) -> None:
        """Hand one event to every sink (no waiting)."""
        for worker in self.workers:
            worker.offer(event)

    def take_reports(self) -> list[Event]:
        """``plugin.failed`` events for the sinks that had trouble since they last said so."""
        now_s = time.monotonic()
        events = []
        for worker in self.workers:
            said = worker.report(now_s)
            if said is not None:
                error, dropped = said
                events.append(
                    failure_event("event_sinks", worker.loaded.name, error, None, dropped)
                )
        return events

    def close(self, timeout_s: float = 2.0) -> None:
        """Flush and stop every sink (a stuck one is left to its daemon thread)."""
        for worker in self.workers:
            worker.close(timeout_s)
