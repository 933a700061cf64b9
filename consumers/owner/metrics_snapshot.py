"""The owner's state read into the figures a scrape reports (`metrics_scrape.Snapshot`).

Called from the owner's loop (`consumers.owner.metrics.OwnerMetrics.refresh`), never from a
scrape: the state is only read on the thread that owns it. What the loop alone knows (QPU busy
seconds, utilisation, the accounts seen so far) is passed in.
"""

from __future__ import annotations

from datetime import datetime

from consumers.core.budget_rules import statuses
from consumers.core.state import OwnerState
from consumers.core.view import waiting_by_account
from consumers.owner.metrics_scrape import BudgetFigures, Snapshot
from schemas.policy import Policy


def waiting_counts(state: OwnerState, policy: Policy) -> tuple[dict[str, int], dict[str, int]]:
    """Waiting jobs per class (every class of the policy) and per Slurm account ("" for none).

    Reads the order index's counters and cohort sizes: O(cohorts), not O(waiting jobs).
    """
    by_class = {name: state.index.per_class.get(name, 0) for name in policy.class_names}
    for name, count in state.index.per_class.items():
        if count:
            by_class[name] = count
    return by_class, waiting_by_account(state)


def build_snapshot(
    state: OwnerState,
    policy: Policy,
    now: datetime,
    *,
    waiting_by_class: dict[str, int],
    waiting_by_account: dict[str, int],
    running_since: datetime | None,
    busy_closed_s: float,
    utilisation: float,
    backend_calibrated_at: datetime | None,
) -> Snapshot:
    """The snapshot of an active owner's state at `now`.

    Args:
        state: the owner's state (read on the loop's thread).
        policy: the policy in force (mode, calibration window, lanes, budgets).
        now: the time the budgets are read at.
        waiting_by_class: waiting jobs per class (`waiting_counts`).
        waiting_by_account: waiting jobs per account, every account seen so far included.
        running_since: when the QPU's current run started (None: idle).
        busy_closed_s: QPU busy seconds of the runs that ended.
        utilisation: the QPU's share of busy time over the utilisation window, 0..1.
        backend_calibrated_at: the backend's calibration time, used while the log has none.
    """
    return Snapshot(
        active=True,
        qpu=state.qpu,
        mode=state.effective_mode(policy.mode),
        epoch=state.epoch,
        calibrated_at=state.calibrated_at or backend_calibrated_at,
        calibration_valid_s=policy.calibration_valid_s,
        waiting_by_class=waiting_by_class,
        waiting_by_account=waiting_by_account,
        running_since=running_since,
        busy_closed_s=busy_closed_s,
        utilisation=min(max(utilisation, 0.0), 1.0),
        lanes_busy={name: name in state.lanes for name in policy.lanes.names},
        sessions_open=open_sessions(state),
        usage_by_account={
            account: {
                "qpu_s": t.qpu_s,
                "shots": t.shots,
                "emulator_s": t.emulator_s,
                "jobs": t.jobs,
            }
            for account, t in state.ledger.accounts.items()
        },
        budgets=budget_figures(state, policy, now),
    )


def open_sessions(state: OwnerState) -> dict[str, int]:
    """Open sessions by kind (explicit, implicit)."""
    counts = {"explicit": 0, "implicit": 0}
    for session in state.sessions.values():
        if session.is_open:
            counts["explicit" if session.explicit else "implicit"] += 1
    return counts


def budget_figures(state: OwnerState, policy: Policy, now: datetime) -> tuple[BudgetFigures, ...]:
    """The budgets in force with what is spent and left of them this period."""
    return tuple(
        BudgetFigures(
            account=s.account,
            user=s.user or "",
            total_s=s.seconds + s.top_up_s,
            spent_s=s.spent_s,
            left_s=s.left_s,
        )
        for s in statuses(state, policy, now).values()
    )
