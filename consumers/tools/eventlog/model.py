"""The event log folded into a neutral picture: runs, lane runs, QPU periods, waiting counts.

Everything else in `consumers.tools.eventlog` that draws the log (Perfetto and HTML export,
`qsched simulate`'s comparison) reads the neutral `Timeline` built here; the topics and fields
it interprets are named in `consumers.tools.eventlog.topics`, so a change of topics or payloads
is a change there and here. Words for one event and a job's history are in
`consumers.tools.eventlog.describe`.

Theory of operation: `build_timeline` folds events in log order. A ``job.started`` opens a run;
the job's final event (``job.done|error|canceled|rejected|timed_out``) closes it with that state,
``job.preempted`` closes it as PREEMPTED where the QPU stopped, and a new owner's activation (or
``job.requeued``, or another start) while a run is open closes it as INTERRUPTED: its owner
died (or `qsched requeue` sent it back; the event's reason says which); ``job.retrying`` closes it
as ERROR (the run failed, the job waits for another run). Arrivals (``job.accepted``; ``job.queued`` in logs of the owner before the event-sourced
one) put a job in its class's waiting set; a start or a final event takes it out, a preemption or
requeue puts it back. Operator and QPU events open and close periods (calibration, pause, drain,
maintenance, down); ``session.opened`` and ``session.ended`` open and close a session's span
(`consumers.tools.eventlog.sessions`); budgets are marked where set, topped up, past their warning
share and spent (`consumers.tools.eventlog.budgets`). A start that names an emulator lane opens a lane run instead, closed the same
ways, kept apart from the QPU's runs (`Timeline.lane_runs`). Events of a stale term (an owner that lost the lease and wrote on) are
skipped, as the owner's own `apply` does. Pure: events in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from consumers.tools.eventlog.budgets import BudgetLog
from consumers.tools.eventlog.sessions import SessionLog
from consumers.tools.eventlog.shapes import Period, Run, Timeline, WaitingSample
from consumers.tools.eventlog.topics import (
    ACTIVATED_TOPICS,
    ARRIVAL_TOPICS,
    BACK_STATES,
    FINAL_TOPICS,
    INTERRUPTED,
    MAINTENANCE,
    MODE_TOPIC,
    PERIOD_CLOSE,
    PERIOD_OPEN,
    PREEMPTED_TOPIC,
    REQUEUED_TOPIC,
    RESERVATION,
    RESERVATION_DELETE,
    RESERVATION_SET,
    RESUBMITTED_TOPIC,
    RETRYING_TOPIC,
    RUNNING,
    START_TOPIC,
    job_field,
)
from schemas.envelope import Event
from schemas.events import Topic


def build_timeline(events: Iterable[Event], budget_marks: bool = False) -> Timeline:
    """Fold events, in log order, into runs, periods and waiting counts (see module docstring);
    with `budget_marks`, the budgets' moments too (a second fold, the owner's: the HTML page)."""
    return _Folder(BudgetLog() if budget_marks else None).fold(events)


@dataclass
class _Arrival:
    at: datetime
    job_class: str
    shots: int


class _Folder:
    """The fold behind `build_timeline`; one instance per call."""

    def __init__(self, budgets: BudgetLog | None = None) -> None:
        self.timeline = Timeline()
        self.open_run: Run | None = None
        self.open_lanes: dict[str, Run] = {}  # job id -> its run on an emulator lane
        self.open_periods: dict[str, Period] = {}
        self.arrivals: dict[str, _Arrival] = {}
        self.waiting: dict[str, set[str]] = {}
        self.epoch = 0
        self.term = 0
        self.sessions = SessionLog()
        self.budgets = budgets
        self.reservations: dict[str, Period] = {}  # name -> its window, as last set

    def fold(self, events: Iterable[Event]) -> Timeline:
        timeline = self.timeline
        for event in events:
            timeline.events += 1
            timeline.first_at = timeline.first_at or event.at
            timeline.last_at = event.at
            self._apply(event)
            if self.budgets is not None:
                self.budgets.see(event)
        end = timeline.last_at
        if self.open_run is not None and end is not None:
            self._close_run(end, RUNNING, None)
        for job_id in list(self.open_lanes):
            if end is not None:
                self._close_lane(job_id, end, RUNNING, None)
        for period in self.open_periods.values():
            if end is not None:
                period.ended_at, period.open = end, True
            timeline.periods.append(period)
        for band in self.reservations.values():  # the history's span: later windows left out
            if end is not None and band.started_at <= end:
                band.ended_at, band.open = min(band.ended_at, end), band.ended_at > end
                timeline.periods.append(band)
        timeline.sessions = self.sessions.finish(end)
        timeline.budget_marks = self.budgets.marks if self.budgets is not None else []
        timeline.runs.sort(key=lambda r: r.started_at)
        timeline.lane_runs.sort(key=lambda r: r.started_at)
        timeline.periods.sort(key=lambda p: p.started_at)
        return timeline

    def _apply(self, event: Event) -> None:
        topic, job_id = event.topic, event.job_id
        if event.data.get("ok") is False:
            return  # a refused command changed nothing
        if event.term is not None and event.term < self.term:
            return  # written by an owner that had lost the lease
        if topic in ACTIVATED_TOPICS:
            self.term = max(self.term, int(event.data.get("term") or 0))
            if self.open_run is not None:
                self._close_run(event.at, INTERRUPTED, "its owner stopped; a new owner took over")
            for lane_job in list(self.open_lanes):
                self._close_lane(lane_job, event.at, INTERRUPTED, "its owner stopped")
        elif topic in ARRIVAL_TOPICS and job_id:
            shots = int(job_field(event, "shots") or 0)
            self.arrivals.setdefault(job_id, _Arrival(event.at, event.job_class or "", shots))
            self._set_waiting(event.at, event.job_class or "", job_id, True)
        elif topic == START_TOPIC and job_id:
            self._start(event, job_id)
        elif (
            topic in (PREEMPTED_TOPIC, REQUEUED_TOPIC, RETRYING_TOPIC, RESUBMITTED_TOPIC) and job_id
        ):
            if job_id in self.open_lanes:
                self._close_lane(job_id, event.at, BACK_STATES[topic], event.reason)
            elif self.open_run is not None and self.open_run.job_id == job_id:
                state = BACK_STATES[topic]
                self._close_run(event.at, state, event.reason)
            self._set_waiting(event.at, event.job_class or "", job_id, True)
        elif topic in FINAL_TOPICS and job_id:
            if job_id in self.open_lanes:
                self._close_lane(job_id, event.at, FINAL_TOPICS[topic], event.reason)
            elif self.open_run is not None and self.open_run.job_id == job_id:
                if event.result is not None:
                    self.open_run.shots = self.open_run.shots or event.result.shots
                    if event.result.epoch is not None:
                        self.open_run.epoch = event.result.epoch
                self._close_run(event.at, FINAL_TOPICS[topic], event.reason)
            arrival = self.arrivals.get(job_id)
            job_class = event.job_class or (arrival.job_class if arrival else "")
            self._set_waiting(event.at, job_class, job_id, False)
        elif topic == Topic.CALIBRATION_COMPLETE.value:
            self.epoch = int(event.data.get("epoch", self.epoch))
        self.sessions.see(event)
        self._periods(event)

    def _start(self, event: Event, job_id: str) -> None:
        lane = event.data.get("lane")
        if self.open_run is not None and not lane:
            self._close_run(event.at, INTERRUPTED, "a new run started before this one ended")
        arrival = self.arrivals.get(job_id)
        job_class = event.job_class or (arrival.job_class if arrival else "")
        run = Run(
            job_id=job_id,
            job_class=job_class,
            user=event.user,
            started_at=event.at,
            ended_at=event.at,
            state=RUNNING,
            shots=int(event.data.get("shots") or (arrival.shots if arrival else 0)),
            epoch=int(event.data.get("epoch", self.epoch)),
            attempt=int(event.data.get("attempt", 1)),
            reason=event.reason,
            arrived_at=arrival.at if arrival else None,
            lane=str(lane) if lane else None,
        )
        if run.lane is not None:
            self.open_lanes[job_id] = run
        else:
            self.open_run = run
        self._set_waiting(event.at, job_class, job_id, False)

    def _close_lane(self, job_id: str, at: datetime, state: str, reason: str | None) -> None:
        run = self.open_lanes.pop(job_id)
        run.ended_at, run.state, run.end_reason = max(at, run.started_at), state, reason
        self.timeline.lane_runs.append(run)

    def _close_run(self, at: datetime, state: str, reason: str | None) -> None:
        run = self.open_run
        assert run is not None
        run.ended_at, run.state, run.end_reason = max(at, run.started_at), state, reason
        self.timeline.runs.append(run)
        self.open_run = None

    def _set_waiting(self, at: datetime, job_class: str, job_id: str, waiting: bool) -> None:
        members = self.waiting.setdefault(job_class, set())
        if (job_id in members) == waiting:
            return
        if waiting:
            members.add(job_id)
        else:
            members.discard(job_id)
        counts = {c: len(m) for c, m in sorted(self.waiting.items())}
        samples = self.timeline.waiting
        if samples and samples[-1].at == at:
            samples[-1] = WaitingSample(at, counts)
        else:
            samples.append(WaitingSample(at, counts))

    def _periods(self, event: Event) -> None:
        topic = event.topic
        if topic in RESERVATION_SET and isinstance(event.data.get("reservation"), dict):
            window = event.data["reservation"]
            start, end = (
                datetime.fromisoformat(window["start"]),
                datetime.fromisoformat(window["end"]),
            )
            owners = ",".join(window.get("accounts") or window.get("users") or ["maintenance"])
            reason = f"{window['name']} for {owners}"
            self.reservations[window["name"]] = Period(RESERVATION, start, end, reason)
        elif topic == RESERVATION_DELETE and event.data.get("deleted"):
            self.reservations.pop(str(event.data["deleted"]), None)
        elif topic == MODE_TOPIC:
            if event.data.get("mode") == MAINTENANCE:
                self._open(MAINTENANCE, event)
            else:
                self._close((MAINTENANCE,), event.at)
        elif topic in PERIOD_OPEN:
            self._open(PERIOD_OPEN[topic], event)
        elif topic in PERIOD_CLOSE:
            self._close(PERIOD_CLOSE[topic], event.at)

    def _open(self, kind: str, event: Event) -> None:
        message = event.data.get("message")
        by = event.user if event.topic.startswith("control.") else None
        period = Period(kind, event.at, event.at, event.reason or message, by=by, message=message)
        self.open_periods.setdefault(kind, period)

    def _close(self, kinds: tuple[str, ...], at: datetime) -> None:
        for kind in kinds:
            period = self.open_periods.pop(kind, None)
            if period is not None:
                period.ended_at = max(at, period.started_at)
                self.timeline.periods.append(period)
