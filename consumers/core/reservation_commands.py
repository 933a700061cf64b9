"""The reservation commands (pure handlers): ``reservation-create``, ``-update``, ``-delete``
(operators; each an event, so reservations survive a failover and `simulate` replays them) and
``reservation-list`` (anyone; with a name: that one, as ``qsched reservation show``).

Refused, named: an account or user the owner does not know (`consumers.core.budgets`), a class
not in the policy, a window already over, one overlapping another reservation (a maintenance
one named as such), creating a name that exists, updating or deleting one that does not.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.budgets import known_accounts, known_users
from consumers.core.command_types import Command, Done, Refused
from consumers.core.reservations import ahead, conflict, in_force
from consumers.core.state import OwnerState
from schemas.enums import ErrorCode
from schemas.policy import Policy
from schemas.reservations import Reservation


def _checked(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Reservation:
    """The reservation the command asks for, checked; stamped with the operator's name.

    Raises:
        Refused: unknown names, a class not in the policy, a conflict.
    """
    wanted = given.command.reservation
    assert wanted is not None  # the schema requires it
    unknown = [a for a in wanted.accounts if a not in known_accounts(state, policy)]
    if unknown:
        raise Refused(ErrorCode.UNKNOWN_ACCOUNT, f"unknown account(s): {', '.join(unknown)}")
    strangers = [u for u in wanted.users if u not in known_users(state, policy)]
    if strangers:
        raise Refused(ErrorCode.UNKNOWN_USER, f"unknown user(s): {', '.join(strangers)}")
    classes = [c for c in wanted.classes if c not in policy.classes]
    if classes:
        raise Refused(ErrorCode.UNKNOWN_JOB_CLASS, f"unknown class(es): {', '.join(classes)}")
    collides = conflict(in_force(state, policy), wanted, now)
    if collides is not None:
        raise Refused(ErrorCode.RESERVATION_CONFLICT, collides)
    return wanted.model_copy(update={"by": given.user})


def _names(state: OwnerState, policy: Policy) -> set[str]:
    return {r.name for r in in_force(state, policy)}


def create(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``reservation-create``: a new reservation."""
    wanted = given.command.reservation
    if wanted is not None and wanted.name in _names(state, policy):
        raise Refused(
            ErrorCode.RESERVATION_CONFLICT,
            f"reservation {wanted.name} exists (qsched reservation update or delete it)",
        )
    made = _checked(state, policy, given, now)
    return Done(f"created {made.line()}", {"reservation": made}, reply={"reservations": [made]})


def update(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``reservation-update``: a reservation's window, owners, classes or flags replaced."""
    wanted = given.command.reservation
    if wanted is None or wanted.name not in _names(state, policy):
        name = wanted.name if wanted is not None else ""
        raise Refused(ErrorCode.UNKNOWN_RESERVATION, f"no reservation {name}")
    made = _checked(state, policy, given, now)
    return Done(f"updated {made.line()}", {"reservation": made}, reply={"reservations": [made]})


def delete(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``reservation-delete``: the reservation is gone; its window is open to all."""
    name = given.command.name or ""
    if name not in state.reservations:
        in_file = any(r.name == name for r in policy.reservations)
        where = " set by an operator (it is in the policy file: edit that)" if in_file else ""
        raise Refused(ErrorCode.UNKNOWN_RESERVATION, f"no reservation {name}{where}")
    return Done(f"deleted reservation {name}", {"deleted": name})


def listing(state: OwnerState, policy: Policy, given: Command, now: datetime) -> Done:
    """``reservation-list``: reservations open now or to come (with a name: that one)."""
    shown = ahead(in_force(state, policy), now)
    name = given.command.name
    if name is not None:
        shown = [r for r in in_force(state, policy) if r.name == name]
        if not shown:
            raise Refused(ErrorCode.UNKNOWN_RESERVATION, f"no reservation {name}")
    text = "\n".join(r.line() for r in shown) or "no reservations"
    return Done(text, reply={"reservations": shown})
