"""A jump of the system clock moves no duration the owner decides on (issue 19's untried fault:
"a wall-clock jump forward and back: deadlines, aging, session grace must not misfire").

The owner's clock (`consumers.owner.clock.SteadyClock`) is driven here by a hand-set wall clock and
monotonic clock (plain values, the way the shell's clock is injected), and the pure core is fed
its times as the owner's loop feeds them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumers.core.step import Dispatch, Tick
from consumers.core.view import queue_entries
from consumers.owner.clock import SteadyClock
from consumers.owner.wiring import Owner
from schemas.enums import JobState
from schemas.policy import parse_policy
from tests.unit.core_harness import T0, Harness

POLICY = parse_policy(
    "aging_step_s = 600\nshot_rate_hz = 100\njob_overhead_s = 0\nsession_grace_s = 30\n"
    "[classes.production]\nrank = 1\nmax_runtime_s = 120\nmax_queue_age_s = 1800\n"
    "[classes.development]\nrank = 2\n"
)


class Clocks:
    """A wall clock and a monotonic clock a test sets by hand."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono_s = 1000.0

    def elapse(self, seconds: float) -> None:
        """Real time passes: both clocks advance."""
        self.wall += timedelta(seconds=seconds)
        self.mono_s += seconds

    def jump(self, seconds: float) -> None:
        """Someone sets the system clock: only the wall clock moves."""
        self.wall += timedelta(seconds=seconds)


@pytest.mark.parametrize("jump_s", [3600.0, -3600.0, 86_400.0, -30.0])
def test_the_steady_clock_ignores_a_jump_and_follows_small_corrections(jump_s: float) -> None:
    clocks = Clocks()
    clock = SteadyClock(lambda: clocks.wall, lambda: clocks.mono_s)
    assert clock() == T0
    clocks.elapse(10)
    clocks.jump(jump_s)
    assert clock() == T0 + timedelta(seconds=10)  # real time, not the jump
    assert clock.jump_s == pytest.approx(jump_s)
    clocks.elapse(5)
    assert clock() == T0 + timedelta(seconds=15)
    clocks.jump(-jump_s + 0.5)  # the clock is set right again, with NTP's half second
    assert clock() == T0 + timedelta(seconds=15.5) and clock.jump_s == 0.0


def test_the_steady_clock_never_goes_backwards() -> None:
    clocks = Clocks()
    clock = SteadyClock(lambda: clocks.wall, lambda: clocks.mono_s)
    clocks.elapse(10)
    first = clock()
    clocks.jump(-1.5)  # within what it follows: a small step back is not shown
    assert clock() == first


def test_the_owner_keeps_steady_time_by_default() -> None:
    """`qsched owner` builds its Owner without a clock: it gets the steady one."""
    from brokers.settings import load_settings
    from consumers.backends.synthetic import SyntheticBackend

    owner = Owner(load_settings(), POLICY, SyntheticBackend(), "owner-x")
    assert isinstance(owner.clock, SteadyClock)


@pytest.mark.parametrize("jump_s", [3600.0, -3600.0])
def test_grace_aging_runtime_and_queue_age_do_not_misfire_across_a_jump(jump_s: float) -> None:
    """Given a session's job just ended, a job waiting and a job running, when the system clock
    jumps an hour (forward or back) and 5 s pass, then with the owner's clock the session keeps
    its grace, no job ages a step, the running job is not timed out and no waiting job is ended
    for its queue age; read from the wall clock, the forward jump would do all of these."""
    clocks = Clocks()
    clock = SteadyClock(lambda: clocks.wall, lambda: clocks.mono_s)
    h = Harness(POLICY, now=clock())
    h.submit(session_id="loop")
    h.feed(Dispatch())
    h.finish_running()
    waiting = h.submit(user="bob")
    h.now = clock()
    clocks.elapse(1)
    clocks.jump(jump_s)
    clocks.elapse(5)
    h.now = clock()
    loop_next = h.submit(session_id="loop")
    (entry,) = [e for e in queue_entries(h.state, h.policy, h.now) if e.job_id == waiting]
    assert entry.factors["effective_priority"] == 0  # no aging step from the jump
    h.feed(Tick())
    assert h.state.finished.get(waiting) is None  # not ended for its queue age
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == loop_next  # grace held
    clocks.elapse(3)
    clocks.jump(-jump_s)
    h.now = clock()
    h.feed(Tick())
    assert h.state.running is not None  # not timed out by a jump of the clock
    assert h.state.finished.get(loop_next) is not JobState.TIMED_OUT


def test_the_same_history_read_from_the_wall_clock_misfires() -> None:
    """The reference: the forward jump fed as it is ends the grace, ages the waiting job six
    steps and ends it for its queue age (what the steady clock prevents)."""
    h = Harness(POLICY)
    h.submit(session_id="loop")
    h.feed(Dispatch())
    h.finish_running()
    waiting = h.submit(user="bob")
    h.now += timedelta(seconds=3606)
    (entry,) = [e for e in queue_entries(h.state, h.policy, h.now) if e.job_id == waiting]
    assert entry.factors["effective_priority"] == 6
    h.feed(Tick())
    assert h.state.finished.get(waiting) is JobState.TIMED_OUT
