"""The QPU state machine.

Theory of operation. The state says what the owner may do next, not only what the hardware
does: IDLE (nothing on the QPU, dispatching), RUNNING (a job on the QPU), PAUSED and DRAINING
(start nothing; a job already on the QPU finishes; DRAINING is the road to a shutdown and
reports "drained" once empty), DOWN (the backend is not operational), CALIBRATING (engineers
own the QPU), PREEMPTING (a running job is being stopped for a better one). Whether a job is on
the QPU ("busy") is part of the key, because the same event leads to different states with and
without one (resuming a paused QPU with a job still running means RUNNING, not IDLE). Every legal
move is a row of `TRANSITIONS`; anything else raises `IllegalTransition`. What is left out on
purpose (a second START, an operator's pause/drain/resume during calibration, calibration from a
held QPU, states that contradict `busy`) is listed, with why, in ``tests/unit/test_machine.py``.
"""

from __future__ import annotations

from enum import StrEnum

from consumers.errors import IllegalTransition
from schemas.enums import QPUState

IDLE, RUNNING, PAUSED, DRAINING = (
    QPUState.IDLE,
    QPUState.RUNNING,
    QPUState.PAUSED,
    QPUState.DRAINING,
)
DOWN, CALIBRATING, PREEMPTING = QPUState.DOWN, QPUState.CALIBRATING, QPUState.PREEMPTING


class QPUEvent(StrEnum):
    """What can happen to the QPU."""

    START = "start"
    FINISH = "finish"
    PAUSE = "pause"
    RESUME = "resume"
    DRAIN = "drain"
    BACKEND_DOWN = "backend_down"
    BACKEND_UP = "backend_up"
    PREEMPT = "preempt"
    CALIBRATION_START = "calibration_start"
    CALIBRATION_DONE = "calibration_done"


E = QPUEvent
# (state, event, busy) -> next state. busy: a job is on the QPU when the event happens.
TRANSITIONS: dict[tuple[QPUState, QPUEvent, bool], QPUState] = {
    (IDLE, E.START, False): RUNNING,
    (RUNNING, E.FINISH, True): IDLE,
    (IDLE, E.PAUSE, False): PAUSED,
    (RUNNING, E.PAUSE, True): PAUSED,
    (PAUSED, E.PAUSE, False): PAUSED,
    (PAUSED, E.PAUSE, True): PAUSED,
    (PAUSED, E.FINISH, True): PAUSED,
    (PAUSED, E.RESUME, False): IDLE,
    (PAUSED, E.RESUME, True): RUNNING,
    (IDLE, E.RESUME, False): IDLE,
    (RUNNING, E.RESUME, True): RUNNING,
    (IDLE, E.DRAIN, False): DRAINING,
    (RUNNING, E.DRAIN, True): DRAINING,
    (PAUSED, E.DRAIN, False): DRAINING,
    (PAUSED, E.DRAIN, True): DRAINING,
    (DRAINING, E.DRAIN, False): DRAINING,
    (DRAINING, E.DRAIN, True): DRAINING,
    (DRAINING, E.FINISH, True): DRAINING,
    (DRAINING, E.PAUSE, False): PAUSED,
    (DRAINING, E.PAUSE, True): PAUSED,
    (DRAINING, E.RESUME, False): IDLE,
    (DRAINING, E.RESUME, True): RUNNING,
    (IDLE, E.BACKEND_DOWN, False): DOWN,
    (RUNNING, E.BACKEND_DOWN, True): DOWN,
    (DOWN, E.BACKEND_DOWN, False): DOWN,
    (DOWN, E.BACKEND_DOWN, True): DOWN,
    (DOWN, E.FINISH, True): DOWN,
    (DOWN, E.BACKEND_UP, False): IDLE,
    (DOWN, E.BACKEND_UP, True): RUNNING,
    (IDLE, E.BACKEND_UP, False): IDLE,
    (RUNNING, E.BACKEND_UP, True): RUNNING,
    (DOWN, E.PAUSE, False): PAUSED,
    (DOWN, E.PAUSE, True): PAUSED,
    (DOWN, E.DRAIN, False): DRAINING,
    (DOWN, E.DRAIN, True): DRAINING,
    (DOWN, E.RESUME, False): DOWN,
    (DOWN, E.RESUME, True): DOWN,
    # An operator's pause or drain outlives a backend outage: the QPU stays held when it returns.
    (PAUSED, E.BACKEND_DOWN, False): PAUSED,
    (PAUSED, E.BACKEND_DOWN, True): PAUSED,
    (PAUSED, E.BACKEND_UP, False): PAUSED,
    (PAUSED, E.BACKEND_UP, True): PAUSED,
    (DRAINING, E.BACKEND_DOWN, False): DRAINING,
    (DRAINING, E.BACKEND_DOWN, True): DRAINING,
    (DRAINING, E.BACKEND_UP, False): DRAINING,
    (DRAINING, E.BACKEND_UP, True): DRAINING,
    (RUNNING, E.PREEMPT, True): PREEMPTING,
    (PREEMPTING, E.FINISH, True): IDLE,
    (PREEMPTING, E.PAUSE, True): PAUSED,
    (PREEMPTING, E.DRAIN, True): DRAINING,
    (PREEMPTING, E.RESUME, True): PREEMPTING,
    (PREEMPTING, E.BACKEND_DOWN, True): DOWN,
    (PREEMPTING, E.BACKEND_UP, True): PREEMPTING,
    # An operator may preempt by hand while dispatching is held; the hold stays.
    (PAUSED, E.PREEMPT, True): PAUSED,
    (DRAINING, E.PREEMPT, True): DRAINING,
    (IDLE, E.CALIBRATION_START, False): CALIBRATING,
    (CALIBRATING, E.CALIBRATION_DONE, False): IDLE,
    (CALIBRATING, E.START, False): CALIBRATING,
    (CALIBRATING, E.FINISH, True): CALIBRATING,
    # Engineers own the QPU while calibrating; a backend outage does not hand it back to users.
    (CALIBRATING, E.BACKEND_DOWN, False): CALIBRATING,
    (CALIBRATING, E.BACKEND_DOWN, True): CALIBRATING,
    (CALIBRATING, E.BACKEND_UP, False): CALIBRATING,
    (CALIBRATING, E.BACKEND_UP, True): CALIBRATING,
    # An operator may preempt by hand while the backend is down or a calibration job runs.
    (DOWN, E.PREEMPT, True): DOWN,
    (CALIBRATING, E.PREEMPT, True): CALIBRATING,
}

# States in which the owner may start a job (CALIBRATING: only jobs of a `calibrates` class).
DISPATCHING = frozenset({IDLE, CALIBRATING})


def transition(state: QPUState, event: QPUEvent, busy: bool) -> QPUState:
    """The state after `event`.

    Args:
        state: the current state.
        event: what happened.
        busy: whether a job is on the QPU when it happens.

    Raises:
        IllegalTransition: the table has no row for this state, event and busy flag.
    """
    try:
        return TRANSITIONS[(state, event, busy)]
    except KeyError:
        raise IllegalTransition(state.value, event.value, busy) from None
