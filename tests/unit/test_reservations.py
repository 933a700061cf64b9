"""Reservations in the pure core: others wait during a window, no job of others starts that would
run into one (a shorter one backfills), members run; maintenance windows hold by the mode,
exclusive ones keep others off the lanes; conflicts, unknown names and non-operators refused,
named; the same reservations after a failover (fold of the log, or snapshot)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consumers.core.snapshot import from_data, to_data
from consumers.core.state import OwnerState
from consumers.core.step import Command, Dispatch, Finished, LaneDispatch
from consumers.core.view import queue_entries, view_of
from consumers.tools.eventlog.reader import LogRecord
from consumers.tools.simulate.engine import simulate
from consumers.tools.simulate.history import read_history
from consumers.tools.simulate.metrics import compare
from schemas.control import ControlCommand, ControlReply
from schemas.enums import CommandName, ErrorCode, Mode
from schemas.policy import parse_policy
from schemas.reservations import Reservation
from tests.unit.core_harness import Harness

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = parse_policy(
    "shot_rate_hz = 100\njob_overhead_s = 0\n"
    "[accounts]\ndefault = { alice = 'phys', bob = 'chem' }\n"
)


def _command(
    h: Harness, which: CommandName, sender: str = "guest", **fields: object
) -> ControlReply:
    command = ControlCommand(command=which, issued_at=h.now, **fields)  # type: ignore[arg-type]
    effects = h.feed(Command(command, sender))
    return next(
        e.message  # type: ignore[attr-defined]
        for e in effects
        if getattr(e, "correlation_id", None) == command.command_id
    )


def _window(
    name: str = "chem-day", start_s: float = 10, end_s: float = 60, **more: object
) -> Reservation:
    fields: dict[str, object] = {"accounts": ("chem",)} | more
    return Reservation(
        name=name,
        start=T0 + timedelta(seconds=start_s),
        end=T0 + timedelta(seconds=end_s),
        **fields,  # type: ignore[arg-type]
    )


def _known(h: Harness) -> None:
    """Both accounts known to the owner (their users submitted before)."""
    for user in ("alice", "bob"):
        job = h.submit(user, shots=1)
        h.feed(Dispatch())
        h.feed(Finished(job, {"0": 1}))


def _held(h: Harness, job_id: str) -> str | None:
    [entry] = queue_entries(h.state, POLICY, h.now, job_id=job_id)
    return entry.held


def test_others_wait_during_the_window_members_run_and_nothing_runs_into_it() -> None:
    h = Harness(POLICY, now=T0)
    _known(h)
    assert _command(h, CommandName.RESERVATION_CREATE, reservation=_window()).ok
    long = h.submit("alice", shots=2000)  # 20 s: would run into the window at T0+10
    short = h.submit("alice", shots=300)  # 3 s: backfills before it
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == short
    assert _held(h, long) == (
        "skipped: reservation chem-day of accounts chem starts in 10 s, the job needs about 20 s"
    )
    h.now += timedelta(seconds=3)
    h.feed(Finished(short, {"0": 300}))
    h.now = T0 + timedelta(seconds=15)  # the window is open
    bob = h.submit("bob", shots=100)
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == bob
    assert (
        _held(h, long)
        == "held: reservation chem-day (until 2026-03-02T09:01:00+00:00) is for accounts chem"
    )
    h.now += timedelta(seconds=1)
    h.feed(Finished(bob, {"0": 100}))
    h.feed(Dispatch())
    assert h.state.running is None  # the QPU waits for members rather than run others
    h.now = T0 + timedelta(seconds=60)  # the window closed
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == long


def test_a_maintenance_window_puts_the_site_in_maintenance_mode_for_its_span() -> None:
    h = Harness(POLICY, now=T0)
    maintenance = Reservation(
        name="service",
        start=T0 + timedelta(seconds=5),
        end=T0 + timedelta(hours=1),
        flags=("maintenance",),
    )
    assert _command(h, CommandName.RESERVATION_CREATE, reservation=maintenance).ok
    assert view_of(h.state, POLICY, h.now).mode is Mode.PRODUCTION
    h.now += timedelta(seconds=5)
    assert view_of(h.state, POLICY, h.now).mode is Mode.MAINTENANCE
    job = h.submit("alice", shots=10)
    h.feed(Dispatch())
    assert h.state.running is None
    assert _held(h, job) == "held: maintenance mode does not run production jobs"
    assert [r.name for r in _command(h, CommandName.STATUS).status.reservations] == ["service"]  # type: ignore[union-attr]


def test_an_exclusive_window_keeps_others_off_the_emulator_lanes_too() -> None:
    policy = parse_policy(
        "shot_rate_hz = 100\njob_overhead_s = 0\n[lanes]\nemulators = 1\n"
        "[accounts]\ndefault = { alice = 'phys', bob = 'chem' }\n"
        "[classes.development]\nrank = 2\nplacement = { production = 'either' }\n"
    )
    h = Harness(policy, now=T0)
    _known(h)
    assert _command(
        h, CommandName.RESERVATION_CREATE, reservation=_window(start_s=0, flags=("exclusive",))
    ).ok
    job = h.submit("alice", job_class="development", shots=10)
    h.feed(LaneDispatch("emulator-1", "specs"))
    assert not h.state.lanes
    assert _command(h, CommandName.RESERVATION_DELETE, name="chem-day").ok
    h.feed(LaneDispatch("emulator-1", "specs"))
    assert h.state.lanes["emulator-1"].job.job_id == job


def test_conflicts_unknown_names_and_non_operators_are_refused_naming_them() -> None:
    h = Harness(POLICY, now=T0)
    _known(h)
    assert _command(h, CommandName.RESERVATION_CREATE, reservation=_window()).ok
    overlap = _command(h, CommandName.RESERVATION_CREATE, reservation=_window("b", 50, 90))
    assert overlap.error is not None and overlap.error.code is ErrorCode.RESERVATION_CONFLICT
    assert "overlaps reservation chem-day" in overlap.message
    again = _command(h, CommandName.RESERVATION_CREATE, reservation=_window(start_s=100, end_s=200))
    assert not again.ok and "exists" in again.message
    h.now = T0 + timedelta(hours=2)
    past = _command(h, CommandName.RESERVATION_CREATE, reservation=_window("old", 0, 30))
    assert not past.ok and "in the past" in past.message
    stranger = _command(
        h, CommandName.RESERVATION_CREATE, reservation=_window("x", 9000, 9900, accounts=("nope",))
    )
    assert stranger.error is not None and stranger.error.code is ErrorCode.UNKNOWN_ACCOUNT
    assert "nope" in stranger.message
    denied = _command(
        h, CommandName.RESERVATION_CREATE, "alice", reservation=_window("y", 9000, 9900)
    )
    assert denied.error is not None and denied.error.code is ErrorCode.NOT_AUTHORISED
    assert [e for e in h.log if e.topic == "control.reservation-create" and e.user == "alice"]
    missing = _command(h, CommandName.RESERVATION_DELETE, name="nosuch")
    assert missing.error is not None and missing.error.code is ErrorCode.UNKNOWN_RESERVATION


def test_reservations_are_the_same_after_a_failover_and_an_update_replaces_the_window() -> None:
    h = Harness(POLICY, now=T0)
    _known(h)
    assert _command(h, CommandName.RESERVATION_CREATE, reservation=_window()).ok
    moved = _window(start_s=100, end_s=200)
    assert _command(h, CommandName.RESERVATION_UPDATE, reservation=moved).ok
    assert h.state.reservations["chem-day"].start == moved.start
    assert h.state.reservations["chem-day"].by == "guest"
    refolded = OwnerState.for_half_life(3600)
    for event in h.log:
        refolded.apply(event)
    assert refolded.reservations == h.state.reservations
    assert from_data(to_data(h.state), 3600).reservations == h.state.reservations
    listed = _command(h, CommandName.RESERVATION_LIST, "alice")
    assert [r.name for r in listed.reservations or []] == ["chem-day"]


def test_simulate_honours_the_reservations_and_budgets_the_log_records() -> None:
    """The recorded history re-run through `step`: the reservation and budget commands are
    replayed, so the job of others still waits for the window's end, and the ledger's QPU
    seconds per account are reported for both histories."""
    h = Harness(POLICY, now=T0)
    _known(h)
    assert _command(h, CommandName.BUDGET_SET, account="chem", seconds=3600).ok
    assert _command(h, CommandName.RESERVATION_CREATE, reservation=_window(start_s=0)).ok
    long = h.submit("alice", shots=500)
    h.feed(Dispatch())
    assert h.state.running is None
    h.now = T0 + timedelta(seconds=60)
    h.feed(Dispatch())
    h.now += timedelta(seconds=5)
    h.feed(Finished(long, {"0": 500}))
    records = [LogRecord(i, event) for i, event in enumerate(h.log)]
    simulated = simulate(POLICY, read_history(records, POLICY, None, 0.2))
    starts = {e.job_id: e.at for e in simulated if e.topic == "job.started"}
    assert starts[long] >= T0 + timedelta(seconds=60)
    report = compare(h.log, simulated)
    assert report["recorded"]["qpu_s_by_account"]["phys"] == 5.0
    assert report["simulated"]["qpu_s_by_account"]["phys"] == 5.0
    assert any(e.topic == "control.budget-set" for e in simulated)


def test_the_html_timeline_draws_a_reservation_as_a_band_as_the_log_last_set_it() -> None:
    from consumers.tools.eventlog.html import render_html
    from consumers.tools.eventlog.model import build_timeline

    h = Harness(POLICY, now=T0)
    _known(h)
    assert _command(h, CommandName.RESERVATION_CREATE, reservation=_window()).ok
    assert _command(h, CommandName.RESERVATION_CREATE, reservation=_window("gone", 70, 80)).ok
    assert _command(h, CommandName.RESERVATION_DELETE, name="gone").ok
    assert _command(h, CommandName.RESERVATION_UPDATE, reservation=_window(end_s=90)).ok
    assert _command(h, CommandName.RESERVATION_CREATE, reservation=_window("later", 500, 600)).ok
    h.now = T0 + timedelta(seconds=100)
    h.submit("alice", shots=1)  # the history goes on past the window, not to the later one
    timeline = build_timeline(h.log)
    [band] = [p for p in timeline.periods if p.kind == "reservation"]
    assert (band.started_at, band.ended_at) == (
        T0 + timedelta(seconds=10),
        T0 + timedelta(seconds=90),
    )
    assert band.reason == "chem-day for chem"
    page = render_html(timeline)
    assert page.count('class="period p-reservation"') == 1 and "chem-day for chem" in page


def test_simulate_honours_a_reservation_given_in_a_candidate_policy() -> None:
    """The recorded history (no reservation) re-run under a policy file with one: the job of
    others waits for the window's end in the simulation; the log's own start order had it at
    once. An operator may update the file's reservation (the log's then wins) but not delete it."""
    h = Harness(POLICY, now=T0)
    _known(h)
    job = h.submit("alice", shots=500)
    h.feed(Dispatch())
    h.now += timedelta(seconds=5)
    h.feed(Finished(job, {"0": 500}))
    candidate = POLICY.model_copy(update={"reservations": (_window(start_s=0, end_s=120),)})
    records = [LogRecord(i, event) for i, event in enumerate(h.log)]
    simulated = simulate(candidate, read_history(records, candidate, None, 0.2))
    starts = {e.job_id: e.at for e in simulated if e.topic == "job.started"}
    assert starts[job] >= T0 + timedelta(seconds=120)
    file_policy = parse_policy(
        'shot_rate_hz = 100\njob_overhead_s = 0\n[accounts]\ndefault = { alice = "phys", '
        'bob = "chem" }\n[[reservations]]\nname = "chem-day"\nstart = 2026-03-02T09:00:10Z\n'
        'end = 2026-03-02T09:01:00Z\naccounts = ["chem"]\n'
    )
    g = Harness(file_policy, now=T0)
    _known(g)
    assert [r.name for r in _command(g, CommandName.RESERVATION_LIST).reservations or []] == [
        "chem-day"
    ]
    refused = _command(g, CommandName.RESERVATION_DELETE, name="chem-day")
    assert not refused.ok and "policy file" in refused.message
    moved = _window(start_s=200, end_s=300)
    assert _command(g, CommandName.RESERVATION_UPDATE, reservation=moved).ok
    assert view_of(g.state, file_policy, g.now).reservations == (
        moved.model_copy(update={"by": "guest"}),
    )


CALIBRATED = parse_policy(
    "shot_rate_hz = 100\njob_overhead_s = 0\ncalibration_valid_s = 100\ncalibration_lead_s = 30\n"
    "[accounts]\ndefault = { alice = 'phys', bob = 'chem' }\n"
)


def _calibrate(h: Harness) -> None:
    assert _command(h, CommandName.CALIBRATION_START).ok
    assert _command(h, CommandName.CALIBRATION_COMPLETE).ok


def _dues(h: Harness) -> list[str]:
    return [e.reason or "" for e in h.log if e.topic == "calibration.due"]


def test_calibration_is_called_for_before_a_reservation_the_window_would_expire_in() -> None:
    """Given a 100 s calibration window that closes 40 s into a reservation, the owner calls
    for calibration once, 30 s (the lead) before the window opens, naming it; not earlier, not
    again after a calibration made within the lead."""
    h = Harness(CALIBRATED, now=T0)
    _known(h)
    _calibrate(h)  # valid until T0+100
    window = _window(start_s=60, end_s=200)
    assert _command(h, CommandName.RESERVATION_CREATE, reservation=window).ok
    h.now = T0 + timedelta(seconds=20)  # 40 s before the window: not yet
    h.feed(Dispatch())
    assert _dues(h) == []
    h.now = T0 + timedelta(seconds=35)
    h.feed(Dispatch())
    h.feed(Dispatch())
    [reason] = _dues(h)
    assert reason == (
        "calibration due before reservation chem-day opens 2026-03-02T09:01:00+00:00: the "
        "calibration window closes 2026-03-02T09:01:40+00:00, before the reservation ends "
        "2026-03-02T09:03:20+00:00"
    )
    h.now = T0 + timedelta(seconds=40)
    _calibrate(h)  # within the lead: valid until T0+140, the longest it can be
    h.feed(Dispatch())
    assert len(_dues(h)) == 1


def test_no_call_for_calibration_when_the_window_outlasts_the_reservation_or_none_is_near() -> None:
    h = Harness(CALIBRATED, now=T0)
    _known(h)
    _calibrate(h)  # valid until T0+100
    inside = _window(start_s=40, end_s=90)  # the window outlasts it
    maintenance = Reservation(
        name="works",
        start=T0 + timedelta(seconds=95),
        end=T0 + timedelta(seconds=150),
        flags=("maintenance",),
    )
    for reservation in (inside, maintenance):
        assert _command(h, CommandName.RESERVATION_CREATE, reservation=reservation).ok
    for at_s in (15, 39, 70, 94):
        h.now = T0 + timedelta(seconds=at_s)
        h.feed(Dispatch())
    assert _dues(h) == []
