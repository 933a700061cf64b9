"""The simulation loop: recorded inputs through the owner's pure `step`, on a modelled QPU.

Theory of operation. The simulator is the owner's shell with the world replaced by the record,
the clock by simulated time and the owner's random event ids by ids drawn from a seed: each
input is stepped at its recorded time with the given policy (whatever `step` takes: a policy
with an ordering plugin is the same object), `step` stamps its events with that time, they are
folded with `OwnerState.apply` (as the owner and `qsched events replay` fold them), and its effects are
carried out on the model: `StartRun` puts the job on the QPU (or the emulator lane it names) for
its modelled time (`history.JobRuns`), `StopRun` stops it at once with the shots measured so far.
After each input (or intake batch), run end and timer, the simulator decides as the owner does
(`Dispatch`) until nothing more happens, then, as the owner's lane pool does after the QPU's
dispatch, fills the policy's free emulator lanes (`LaneDispatch`). A lane run takes the job's
recorded lane seconds per shot (a job never run on a lane: the log's lane average, else the
policy's lane pace). Timers fire when a deadline, queue age or run-time limit falls due, not
every tick. Time jumps from one happening to the next, so a day of history takes seconds.

Not modelled: owner failovers (the simulated owner runs throughout), progress reports, the
owner's own latencies (a freed QPU or lane starts the next job at once), the re-check of a
sequence against new device specs (the core's `Recheck` always passes here; the record's own
invalidations come back as `Invalidated` inputs), and run-time limits of lane runs. Reservations
and budgets are the log's (their commands are replayed); a reservation's start and end are
timers like a deadline. `hook` lets site code annotate
an arrival before `step` sees it, as the owner's shell does with its plugins.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from consumers.core.inputs import Arrival, Context, Dispatch, Finished, Input, LaneDispatch, Tick
from consumers.core.order import EPOCH
from consumers.core.outcomes import Recheck, StartRun, StopRun
from consumers.core.reservations import in_force
from consumers.core.state import OwnerState
from consumers.core.step import step
from consumers.tools.simulate.history import Recorded
from schemas.envelope import Event
from schemas.jobs import JobError
from schemas.policy import Policy
from schemas.wire import seeded_ids

ArrivalHook = Callable[[Arrival, OwnerState, Policy], Arrival]
OWNER_ID = "simulator"
BACKEND = "model"
TIMER_SLACK = timedelta(milliseconds=1)  # a limit is checked just after it falls due
MAX_DECISIONS = 16  # dispatches in a row after one happening (each must change something)
MODEL_BITSTRING = "model"
MODEL_SPECS = "simulated"  # the device-specs digest a simulated lane run is stamped with


class SimulationError(Exception):
    """The recorded history cannot be simulated under this policy (the CLI prints it, exit 1)."""

    hint = "start the window where no job of that class waits, or add the class to the policy"
    exit_code = 1


@dataclass
class _OnQPU:
    """A run on the modelled QPU or on a modelled emulator lane."""

    job_id: str
    shots: int
    started: datetime
    ends: datetime
    error: JobError | None

    def measured(self, now: datetime) -> int:
        """Shots measured by `now` (a stopped run keeps them)."""
        length_s = (self.ends - self.started).total_seconds()
        if length_s <= 0 or self.error is not None:
            return 0
        done = (now - self.started).total_seconds() / length_s * self.shots
        return max(0, min(self.shots, int(done)))


class Simulation:
    """One simulated history; `run` returns its events (what the simulated owner logged)."""

    def __init__(
        self, policy: Policy, recorded: Recorded, hook: ArrivalHook | None = None, seed: int = 0
    ) -> None:
        self.policy = policy
        self.seed = seed
        self.ctx = Context(OWNER_ID, BACKEND, seeded_ids(seed))
        self.recorded = recorded
        self.hook = hook
        self.state = copy.deepcopy(recorded.start)
        self.events: list[Event] = []
        self.qpu: _OnQPU | None = None
        self.lanes: dict[str, _OnQPU] = {}
        self.now = recorded.first_at or recorded.start.calibrated_at or EPOCH
        self._soon: deque[Input] = deque()
        self._default_s = recorded.default_s_per_shot(policy)
        self._default_lane_s = recorded.default_lane_s_per_shot(policy)
        self._until = recorded.last_at or self.now
        self._ticked_at = EPOCH

    def run(self) -> list[Event]:
        """Step every recorded input, run ends and timers in time order; the events logged."""
        if self.recorded.first_at is None:
            return self.events  # an empty window
        self._check_classes()
        if self.state.running is not None:  # running when the window opened: finish it
            run = self.state.running
            self._put_on_qpu(run.job.job_id, run.job.remaining_shots, run.started_at)
        for name, run in self.state.lanes.items():  # the same for the lanes' runs
            self._put_on_lane(name, run.job.job_id, run.job.remaining_shots, run.started_at)
        self._decide()
        inputs = deque(self.recorded.inputs)
        while True:
            ends = self.qpu.ends if self.qpu is not None else None
            lane = min(self.lanes, key=lambda name: self.lanes[name].ends, default=None)
            lane_ends = self.lanes[lane].ends if lane is not None else None
            timer = self._next_timer()
            given_at = inputs[0].at if inputs else None
            moments = [t for t in (given_at, ends, lane_ends, timer) if t is not None]
            if not moments:
                return self.events
            self.now = max(self.now, min(moments))
            if given_at is not None and given_at <= self.now:
                timed = inputs.popleft()
                self._feed(timed.given)
                if timed.batched and inputs:
                    continue  # the owner took the next arrival in the same batch
            elif ends is not None and ends <= self.now:
                self._finish()
            elif lane is not None and lane_ends is not None and lane_ends <= self.now:
                self._finish_lane(lane)
            else:
                self._ticked_at = self.now
                self._feed(Tick())
            self._decide()

    def _check_classes(self) -> None:
        """The state at ``--from`` must only hold jobs of classes the simulated policy has (the
        core orders by class and has no rank for an unknown one).

        Raises:
            SimulationError: naming the first such job and its class.
        """
        classes = self.policy.classes
        run = self.state.running
        jobs = [*self.state.waiting.values(), *([run.job] if run is not None else [])]
        for job in jobs:
            if job.job_class not in classes:
                where = "runs" if run is not None and job is run.job else "waits"
                raise SimulationError(
                    f"job {job.job_id} {where} at --from in class {job.job_class!r}, which the "
                    "simulated policy does not have"
                )

    # ---- the shell's part -------------------------------------------------------------------

    def _feed(self, given: Input) -> None:
        """Step one input (and what its effects cause at once), apply its events."""
        self._soon.append(given)
        while self._soon:
            item = self._soon.popleft()
            if isinstance(item, Arrival) and self.hook is not None:
                item = self.hook(item, self.state, self.policy)
            self._step(item)

    def _step(self, given: Input) -> int:
        events, effects = step(self.state, self.policy, given, self.now, self.ctx)
        for event in events:
            self.state.apply(event)
            self.events.append(event)
        for effect in effects:
            if isinstance(effect, Recheck) and isinstance(given, Dispatch | LaneDispatch):
                return self._step(replace(given, checked=effect.job.job_id))
            if isinstance(effect, StartRun) and effect.lane is not None:
                self._put_on_lane(effect.lane, effect.job.job_id, effect.shots, self.now)
            elif isinstance(effect, StartRun):
                self._put_on_qpu(effect.job.job_id, effect.shots, self.now)
            elif isinstance(effect, StopRun):
                self._stop(effect.job_id)
        return len(events)

    def _decide(self) -> None:
        """Dispatch until a decision changes nothing (the owner re-decides every loop turn), then
        fill the free lanes in order until one starts nothing (as `Shell.dispatch_lanes`)."""
        for _ in range(MAX_DECISIONS):
            if not self._step(Dispatch()):
                break
            while self._soon:
                self._step(self._soon.popleft())
        for lane in self.policy.lanes.names:
            if lane not in self.lanes and not self._step(LaneDispatch(lane, MODEL_SPECS)):
                return

    # ---- the modelled QPU -------------------------------------------------------------------

    def _put_on_qpu(self, job_id: str, shots: int, started: datetime) -> None:
        runs = self.recorded.runs.get(job_id)
        error = runs.error if runs is not None else None
        if error is not None and runs is not None:
            length_s = runs.error_after_s
        else:
            per_shot = runs.s_per_shot if runs is not None else None
            length_s = shots * (per_shot if per_shot is not None else self._default_s)
        self.qpu = _OnQPU(job_id, shots, started, started + timedelta(seconds=length_s), error)

    def _put_on_lane(self, lane: str, job_id: str, shots: int, started: datetime) -> None:
        runs = self.recorded.runs.get(job_id)
        per_shot = runs.lane_s_per_shot if runs is not None else None
        length_s = shots * (per_shot if per_shot is not None else self._default_lane_s)
        self.lanes[lane] = _OnQPU(
            job_id, shots, started, started + timedelta(seconds=length_s), None
        )

    def _finish_lane(self, lane: str) -> None:
        run = self.lanes.pop(lane)
        self._feed(Finished(run.job_id, counts={MODEL_BITSTRING: run.shots}))

    def _finish(self) -> None:
        run = self.qpu
        assert run is not None
        self.qpu = None
        if run.error is not None:
            self._feed(Finished(run.job_id, error=run.error))
        else:
            self._feed(Finished(run.job_id, counts={MODEL_BITSTRING: run.shots}))

    def _stop(self, job_id: str) -> None:
        run = self.qpu
        if run is None or run.job_id != job_id:
            lane = next((name for name, r in self.lanes.items() if r.job_id == job_id), None)
            if lane is None:
                return
            run = self.lanes.pop(lane)
        else:
            self.qpu = None
        measured = run.measured(self.now)
        counts = {MODEL_BITSTRING: measured} if measured else {}
        self._soon.append(Finished(job_id, counts=counts, canceled=True))

    # ---- timers -----------------------------------------------------------------------------

    def _next_timer(self) -> datetime | None:
        """When the next deadline, queue age, run-time limit or reservation boundary falls due
        (None: none)."""
        due: list[datetime] = []
        index = self.state.index
        if index.deadlines:
            due.append(index.deadlines[0][0])
        for name, job_class in self.policy.classes.items():
            if job_class.max_queue_age_s is not None:
                limit = timedelta(seconds=job_class.max_queue_age_s)
                due.extend(job.queued_at + limit for job in index.oldest(name))
        run = self.state.running
        if run is not None and run.stop_error is None:
            class_policy = self.policy.classes.get(run.job.job_class)
            limits = (run.job.max_runtime_s, class_policy.max_runtime_s if class_policy else None)
            limit_s = min((x for x in limits if x is not None), default=None)
            if limit_s is not None:
                due.append(run.started_at + timedelta(seconds=limit_s))
        windows: list[datetime] = []  # a reservation opening or closing changes what may start
        if self.state.waiting:
            for reservation in in_force(self.state, self.policy):
                windows += [reservation.start, reservation.end]
        due = [d for d in due if d + TIMER_SLACK > self._ticked_at]  # not handled yet
        windows = [d for d in windows if d + TIMER_SLACK > self._ticked_at]
        if not due and not windows:
            return None
        first = min(due + windows)
        at = max(first + TIMER_SLACK, self.now)
        if at > self._until and self.qpu is None and not self.lanes and first not in windows:
            return None  # past the window with the QPU and lanes idle: the simulation is over
        return at  # jobs a reservation holds past the history's end wait for it to close


def simulate(
    policy: Policy, recorded: Recorded, hook: ArrivalHook | None = None, seed: int = 0
) -> list[Event]:
    """The events the owner would have logged under `policy` for the recorded inputs (their
    ids drawn from `seed`: the same inputs and seed give the same events)."""
    return Simulation(policy, recorded, hook, seed).run()
