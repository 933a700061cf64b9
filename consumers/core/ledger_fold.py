"""What the fold charges to the ledger (`OwnerState.apply`'s helpers, apart to keep the fold
short): a job's first start (its queue wait) and the run a final event ends."""

from __future__ import annotations

from datetime import datetime, timedelta

from consumers.core.ledger import Totals, run_totals
from consumers.core.order import Waiting
from consumers.core.state_data import Run
from schemas.envelope import Event
from schemas.jobs import RunInterval


def first_start(job: Waiting, at: datetime) -> Totals:
    """A job that starts for the first time at `at`: its queue wait ends."""
    return Totals(started=1, wait_s=max((at - job.queued_at).total_seconds(), 0.0))


def final_run(event: Event, run: Run, seconds: float) -> Totals:
    """The figures of the run a final event ended, and the job's end: the run as its result
    lists it (a log written before results listed their runs: `seconds` from its start)."""
    result = event.result
    timings = result.timings if result is not None else None
    if timings is not None and timings.runs:
        interval = timings.runs[-1]
    else:
        interval = RunInterval(
            started_at=run.started_at,
            ended_at=run.started_at + timedelta(seconds=seconds),
            lane=run.lane,
        )
    measured = sum(result.counts.values()) if result is not None else 0
    totals = run_totals(interval, measured - sum(run.job.prior_counts.values()))
    totals.jobs = 1
    return totals
