"""The QPU state machine walked exhaustively: every (state, event, busy) is a row of the table or
illegal on purpose, for a reason written down here."""

from __future__ import annotations

import itertools

import pytest

from consumers.core.machine import TRANSITIONS, QPUEvent, transition
from consumers.errors import IllegalTransition
from schemas.enums import QPUState

S, E = QPUState, QPUEvent
HELD = (S.PAUSED, S.DRAINING)


def why_illegal(state: QPUState, event: QPUEvent, busy: bool) -> str | None:
    """Why the table has no row for this combination, or None if it must have one."""
    if state in (S.RUNNING, S.PREEMPTING) and not busy:
        return "cannot happen: RUNNING and PREEMPTING have a job on the QPU"
    if state is S.IDLE and busy:
        return "cannot happen: IDLE has no job on the QPU"
    if event is E.START and busy:
        return "never a second job on the QPU"
    if event is E.START and state is not S.IDLE and state is not S.CALIBRATING:
        return "jobs start only while dispatching (IDLE, or CALIBRATING for calibration jobs)"
    if event is E.FINISH and not busy:
        return "FINISH needs a job on the QPU"
    if event is E.PREEMPT and not busy:
        return "nothing to preempt"
    if event is E.PREEMPT and state is S.PREEMPTING:
        return "already preempting: the shell does not preempt twice"
    if event in (E.PAUSE, E.DRAIN, E.RESUME) and state is S.CALIBRATING:
        return "engineers own the QPU: complete the calibration first (the command is refused)"
    if event is E.CALIBRATION_START and (state is not S.IDLE or busy):
        return "calibration starts from an idle QPU; a pending one waits until the QPU is IDLE"
    if event is E.CALIBRATION_DONE and (state is not S.CALIBRATING or busy):
        return "calibration-complete is refused unless CALIBRATING with no job on the QPU"
    return None


ALL = list(itertools.product(QPUState, QPUEvent, (False, True)))


@pytest.mark.parametrize(("state", "event", "busy"), ALL)
def test_every_combination_is_a_row_or_illegal_on_purpose(
    state: QPUState, event: QPUEvent, busy: bool
) -> None:
    reason = why_illegal(state, event, busy)
    has_row = (state, event, busy) in TRANSITIONS
    assert has_row != (reason is not None), f"{state.value} + {event.value} (busy={busy}): " + (
        f"has a row but is listed illegal: {reason}" if has_row else "no row and no reason"
    )
    if reason is not None:
        with pytest.raises(IllegalTransition):
            transition(state, event, busy)


@pytest.mark.parametrize(
    ("state", "event", "busy", "after"),
    [
        (S.CALIBRATING, E.BACKEND_DOWN, False, S.CALIBRATING),
        (S.CALIBRATING, E.BACKEND_DOWN, True, S.CALIBRATING),
        (S.CALIBRATING, E.BACKEND_UP, False, S.CALIBRATING),
        (S.PREEMPTING, E.BACKEND_UP, True, S.PREEMPTING),
        (S.DOWN, E.PREEMPT, True, S.DOWN),
        (S.CALIBRATING, E.PREEMPT, True, S.CALIBRATING),
    ],
)
def test_rows_that_used_to_crash_the_owner(
    state: QPUState, event: QPUEvent, busy: bool, after: QPUState
) -> None:
    """Given events the shell can send in these states (issue 9 item 7), the machine moves."""
    assert transition(state, event, busy) is after


@pytest.mark.parametrize(("state", "busy"), [(s, b) for s in HELD for b in (False, True)])
def test_an_operator_hold_outlives_backend_reports(state: QPUState, busy: bool) -> None:
    """A paused or draining QPU stays held whatever the backend reports."""
    for event in (E.BACKEND_DOWN, E.BACKEND_UP):
        assert transition(state, event, busy) is state
