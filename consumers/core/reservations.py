"""Reservations in the core (pure): the fold of their events, and what they mean for a job.

The fold (`reservation_changed`, called by `OwnerState.apply` for an accepted
``control.reservation-create``, ``-update`` or ``-delete``) keeps the reservations by name; one
whose window ended a day ago is forgotten; the policy file's reservations join them (`in_force`),
an operator's of the same name replacing the file's. `reservation_hold` is the QPU's rule: while a
reservation is open only its members' jobs start (its accounts or users, and classes when it
names some; a maintenance window holds by the site mode instead, `maintenance_at`), and no job of
others starts that would not end, by its estimate, before a reservation of others opens (a
shorter one may: backfill). `lane_reservation_hold` keeps others off the emulator lanes during
an ``exclusive`` window. `conflict` names what a new or changed reservation collides with.
`calibration_call` is the call for calibration before a reservation in whose window the
calibration window would close: made from `lead_s` before it opens, once, and not again for a
calibration done within that lead (the next window then is as long as it can be).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from consumers.core.order import Waiting
from consumers.core.state_data import StateData
from schemas.events import ControlApplied
from schemas.policy import Policy
from schemas.reservations import Reservation

FORGET_AFTER = timedelta(days=1)


def reservation_changed(state: StateData, applied: ControlApplied, at: datetime) -> None:
    """Fold an accepted reservation command: create/update replaces by name, delete drops."""
    if applied.reservation is not None:
        state.reservations[applied.reservation.name] = applied.reservation
    elif applied.deleted is not None:
        state.reservations.pop(applied.deleted, None)
    for name in [n for n, r in state.reservations.items() if r.end < at - FORGET_AFTER]:
        del state.reservations[name]


def in_force(state: StateData, policy: Policy) -> list[Reservation]:
    """The reservations of the log, and the policy file's whose name the log does not use."""
    found = dict(state.reservations)
    for reservation in policy.reservations:
        found.setdefault(reservation.name, reservation)
    return list(found.values())


def ahead(reservations: Iterable[Reservation], now: datetime) -> list[Reservation]:
    """Reservations open at `now` or to come, by start."""
    return sorted((r for r in reservations if r.end > now), key=lambda r: (r.start, r.name))


def is_member(reservation: Reservation, job: Waiting) -> bool:
    """Whether the job may run in the reservation's window."""
    if reservation.classes and job.job_class not in reservation.classes:
        return False
    if reservation.accounts:
        return job.account is not None and job.account in reservation.accounts
    return job.user in reservation.users


def maintenance_at(reservations: Iterable[Reservation], now: datetime) -> Reservation | None:
    """The maintenance reservation open at `now`, if any."""
    return next((r for r in reservations if r.maintenance and r.start <= now < r.end), None)


def reservation_hold(
    reservations: Iterable[Reservation], job: Waiting, now: datetime, needs_s: float
) -> str | None:
    """Why the job may not start on the QPU now for a reservation, or None."""
    ends = now + timedelta(seconds=needs_s)
    for reservation in reservations:
        if reservation.maintenance and not (reservation.accounts or reservation.users):
            continue  # a maintenance window holds through the mode
        if is_member(reservation, job):
            continue
        if reservation.start <= now < reservation.end:
            return (
                f"held: reservation {reservation.name} (until "
                f"{reservation.end.isoformat(timespec='seconds')}) is for {reservation.owners()}"
            )
        if now < reservation.start < ends:
            left_s = (reservation.start - now).total_seconds()
            return (
                f"skipped: reservation {reservation.name} of {reservation.owners()} starts in "
                f"{left_s:.0f} s, the job needs about {needs_s:.0f} s"
            )
    return None


def lane_reservation_hold(
    reservations: Iterable[Reservation], job: Waiting, now: datetime
) -> str | None:
    """Why the job may not start on an emulator lane now (an exclusive window of others)."""
    for reservation in reservations:
        open_now = reservation.start <= now < reservation.end
        if open_now and "exclusive" in reservation.flags and not is_member(reservation, job):
            return f"held: reservation {reservation.name} is exclusive to {reservation.owners()}"
    return None


def conflict(reservations: Iterable[Reservation], wanted: Reservation, now: datetime) -> str | None:
    """What `wanted` collides with (None: nothing): a window over, or one overlapping another
    reservation (a maintenance one named as such)."""
    if wanted.end <= now:
        return f"reservation {wanted.name} ends {wanted.end.isoformat()}, in the past"
    for other in reservations:
        if other.name == wanted.name:
            continue
        if other.start < wanted.end and wanted.start < other.end:
            kind = "maintenance reservation" if other.maintenance else "reservation"
            return (
                f"reservation {wanted.name} overlaps {kind} {other.name} "
                f"({other.start.isoformat()} .. {other.end.isoformat()})"
            )
    return None


def calibration_call(
    reservations: Iterable[Reservation],
    calibrated_at: datetime | None,
    valid_until: datetime | None,
    now: datetime,
    lead_s: float,
) -> str | None:
    """Why the owner calls for calibration now for a reservation about to open, or None.

    Args:
        reservations: those open now or to come (a maintenance window is left out: the site
            is in maintenance mode then, calibration or not).
        calibrated_at, valid_until: the last calibration and the end of its window (None: no
            window, nothing to call for).
        now: the current time.
        lead_s: how long before a reservation opens the call is made (the policy's
            ``calibration_lead_s``).
    """
    if valid_until is None:
        return None
    lead = timedelta(seconds=lead_s)
    for reservation in sorted(reservations, key=lambda r: r.start):
        if reservation.maintenance or not reservation.start - lead <= now < reservation.start:
            continue
        if valid_until >= reservation.end:
            continue  # the calibration outlasts the window
        if calibrated_at is not None and calibrated_at >= reservation.start - lead:
            continue  # calibrated for it already: calibrating again would gain nothing
        return (
            f"calibration due before reservation {reservation.name} opens "
            f"{reservation.start.isoformat(timespec='seconds')}: the calibration window closes "
            f"{valid_until.isoformat(timespec='seconds')}, before the reservation ends "
            f"{reservation.end.isoformat(timespec='seconds')}"
        )
    return None
