"""The QPU-time ledger (pure): what every run used, by account, user and class, per hour.

Theory of operation. The ledger is part of the owner's state, so it is a fold of the log like
the rest: `OwnerState.apply` charges a run when the event that ends it is applied, with the same
`RunInterval` the job's result lists (`Timings.runs`), so the ledger's QPU seconds and the
results' `qpu_s` agree by construction. A run on the QPU counts as QPU time and QPU shots; a run
on an emulator lane counts apart (`lane_runs`, `emulator_s`), never as QPU time. A job's queue
wait is counted when it first starts, the job itself when it ends (any final state), a
preemption when a preempted run ends. Everything is charged to the job's *verified* account
(`schemas.context`: the allocation registry's, never the client's word), its user and class.

Charges land in buckets of `bucket_s` seconds (the owner: hours) keyed by (bucket start,
account, user, class), kept for `keep_s` (older ones are dropped as time moves on); the owner
answers `qsched usage` from them (`report`). All-time totals per account (the Prometheus
counters) and per allocation are kept apart and never dropped (allocations: the newest
`REMEMBERED_ALLOCATIONS`). For budgets, the QPU seconds of the current day, week and month are
kept per account and per account/user (`spent`), reset when a charge falls in a new period.
`qsched events usage` folds the whole log with a ledger of
one-second buckets and no horizon, so any period can be asked, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from consumers.core.order import Waiting
from schemas.budgets import PERIODS
from schemas.jobs import RunInterval
from schemas.reports import UsageRow

HOUR_S = 3600
KEEP_S = 92 * 86_400  # what the owner answers from memory: about three months
REMEMBERED_ALLOCATIONS = 10_000
NO_ACCOUNT = ""  # a job without an account ("(none)" in reports)
By = Literal["account", "user", "class", "day", "allocation"]
BY_CHOICES: tuple[str, ...] = ("account", "user", "class", "day", "allocation")


@dataclass
class Totals:
    """What a set of runs used.

    Attributes:
        jobs: jobs that ended (any final state).
        runs, shots, qpu_s: runs on the QPU, the shots they measured, their seconds.
        lane_runs, lane_shots, emulator_s: the same on emulator lanes (never QPU time).
        started, wait_s: jobs that first started, and their queue waits summed.
        preemptions: runs that were preempted.
    """

    jobs: int = 0
    runs: int = 0
    shots: int = 0
    qpu_s: float = 0.0
    lane_runs: int = 0
    lane_shots: int = 0
    emulator_s: float = 0.0
    started: int = 0
    wait_s: float = 0.0
    preemptions: int = 0

    def add(self, other: Totals) -> None:
        """Add `other`'s figures to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def run_totals(interval: RunInterval, shots: int) -> Totals:
    """The figures of one run that ended (`interval`, as the job's result lists it)."""
    if interval.lane is not None:
        return Totals(lane_runs=1, lane_shots=max(shots, 0), emulator_s=interval.seconds)
    return Totals(
        runs=1,
        shots=max(shots, 0),
        qpu_s=interval.seconds,
        preemptions=1 if interval.outcome == "preempted" else 0,
    )


def period_start(period: str, at: datetime) -> datetime:
    """The start of the calendar `period` (day, week from Monday, month; UTC) `at` falls in."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


Key = tuple[int, str, str, str]  # (bucket start in epoch seconds, account, user, class)


class Ledger:
    """Usage per bucket of time, per account and per allocation (see the module docstring)."""

    def __init__(self, bucket_s: int = HOUR_S, keep_s: float | None = KEEP_S) -> None:
        self.bucket_s = bucket_s
        self.keep_s = keep_s
        self.buckets: dict[Key, Totals] = {}
        self.accounts: dict[str, Totals] = {}
        self.allocations: dict[tuple[str, str, str], Totals] = {}  # (allocation, account, user)
        self._newest = 0  # the newest bucket charged (pruning runs when it moves)
        self.periods: dict[str, tuple[int, dict[str, float]]] = {}  # period -> (start, spent)

    # ---- charging (the fold's handlers only) -------------------------------------------------

    def charge(self, job: Waiting, at: datetime, totals: Totals) -> None:
        """Charge `totals` to `job`'s account, user and class, in the bucket of `at`."""
        bucket = int(at.timestamp()) // self.bucket_s * self.bucket_s
        key = (bucket, job.account or NO_ACCOUNT, job.user, job.job_class)
        self.buckets.setdefault(key, Totals()).add(totals)
        self.accounts.setdefault(job.account or NO_ACCOUNT, Totals()).add(totals)
        if job.allocation is not None:
            held = (job.allocation, job.account or NO_ACCOUNT, job.user)
            self.allocations.setdefault(held, Totals()).add(totals)
            while len(self.allocations) > REMEMBERED_ALLOCATIONS:
                del self.allocations[next(iter(self.allocations))]
        if bucket > self._newest:
            self._newest = bucket
            self._prune()
        if totals.qpu_s > 0:
            self._spend(job, at, totals.qpu_s)

    def _spend(self, job: Waiting, at: datetime, qpu_s: float) -> None:
        account = job.account or NO_ACCOUNT
        for period in PERIODS:
            start = int(period_start(period, at).timestamp())
            held = self.periods.get(period)
            if held is not None and held[0] > start:
                continue  # a run of a period already over: no budget of now is concerned
            if held is None or held[0] < start:
                held = self.periods[period] = (start, {})
            spent = held[1]
            for key in (account, f"{account}/{job.user}"):
                spent[key] = spent.get(key, 0.0) + qpu_s

    def spent(self, period: str, key: str, now: datetime) -> float:
        """QPU seconds `key` (``account`` or ``account/user``) used in `period` so far at `now`."""
        held = self.periods.get(period)
        if held is None or held[0] != int(period_start(period, now).timestamp()):
            return 0.0
        return held[1].get(key, 0.0)

    def _prune(self) -> None:
        if self.keep_s is None:
            return
        horizon = self._newest - self.keep_s
        for key in [k for k in self.buckets if k[0] < horizon]:
            del self.buckets[key]

    # ---- reading ------------------------------------------------------------------------------

    @property
    def kept_from(self) -> datetime | None:
        """The start of the oldest bucket kept (None: nothing charged yet)."""
        if not self.buckets:
            return None
        return datetime.fromtimestamp(min(k[0] for k in self.buckets), UTC)

    def floor(self, at: datetime) -> datetime:
        """The start of the bucket `at` falls in."""
        return datetime.fromtimestamp(int(at.timestamp()) // self.bucket_s * self.bucket_s, UTC)

    def ceil(self, at: datetime) -> datetime:
        """The end of the bucket `at` falls in (`at` itself when it is a bucket's start)."""
        start = self.floor(at)
        if start == at:
            return at
        return datetime.fromtimestamp(start.timestamp() + self.bucket_s, UTC)

    def report(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        by: str | None = None,
        account: str | None = None,
        user: str | None = None,
        job_class: str | None = None,
    ) -> list[UsageRow]:
        """Usage between `since` and `until` (rounded out to whole buckets), one row per
        account, user (within its account), class or day (`by`; None: one row of totals),
        only of the given account, user and class. `by="allocation"` reads the all-time
        per-allocation totals instead (no period, no class)."""
        if by == "allocation":
            return [
                _row(t, allocation=alloc, account=acc, user=usr)
                for (alloc, acc, usr), t in sorted(self.allocations.items())
                if (account is None or acc == account) and (user is None or usr == user)
            ]
        low = int(self.floor(since).timestamp()) if since is not None else None
        high = int(self.ceil(until).timestamp()) if until is not None else None
        groups: dict[tuple[str, ...], Totals] = {}
        for (bucket, acc, usr, cls), totals in self.buckets.items():
            if (low is not None and bucket < low) or (high is not None and bucket >= high):
                continue
            if (
                (account is not None and acc != account)
                or (user is not None and usr != user)
                or (job_class is not None and cls != job_class)
            ):
                continue
            groups.setdefault(_group(by, bucket, acc, usr, cls), Totals()).add(totals)
        return [
            _row(totals, **dict(zip(_names(by), key, strict=True)))
            for key, totals in sorted(groups.items())
        ]

    # ---- snapshot -----------------------------------------------------------------------------

    def to_data(self) -> dict[str, Any]:
        """Plain data for a snapshot."""
        return {
            "bucket_s": self.bucket_s,
            "keep_s": self.keep_s,
            "buckets": [[*key, _counts(t)] for key, t in self.buckets.items()],
            "accounts": {k: _counts(t) for k, t in self.accounts.items()},
            "allocations": [[*key, _counts(t)] for key, t in self.allocations.items()],
            "periods": {p: [start, dict(spent)] for p, (start, spent) in self.periods.items()},
        }

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> Ledger:
        """A ledger rebuilt from `to_data` output (None: an empty one, from an older snapshot)."""
        if not data:
            return cls()
        ledger = cls(int(data["bucket_s"]), data.get("keep_s"))
        for bucket, acc, usr, cls_name, counts in data.get("buckets", []):
            ledger.buckets[(int(bucket), acc, usr, cls_name)] = Totals(**counts)
            ledger._newest = max(ledger._newest, int(bucket))
        ledger.accounts = {k: Totals(**v) for k, v in data.get("accounts", {}).items()}
        ledger.allocations = {
            (alloc, acc, usr): Totals(**counts)
            for alloc, acc, usr, counts in data.get("allocations", [])
        }
        ledger.periods = {
            p: (int(start), dict(spent)) for p, (start, spent) in data.get("periods", {}).items()
        }
        return ledger


def _counts(totals: Totals) -> dict[str, Any]:
    return asdict(totals)


def _names(by: str | None) -> tuple[str, ...]:
    return {
        "account": ("account",),
        "user": ("account", "user"),
        "class": ("job_class",),
        "day": ("day",),
    }.get(by or "", ())


def _group(by: str | None, bucket: int, acc: str, usr: str, cls: str) -> tuple[str, ...]:
    if by == "account":
        return (acc,)
    if by == "user":
        return (acc, usr)
    if by == "class":
        return (cls,)
    if by == "day":
        return (datetime.fromtimestamp(bucket, UTC).date().isoformat(),)
    return ()


def _row(totals: Totals, **key: str) -> UsageRow:
    return UsageRow.model_validate(key | asdict(totals))


def total_of(rows: Iterable[UsageRow]) -> Totals:
    """The rows added up."""
    out = Totals()
    for row in rows:
        out.add(Totals(**{f.name: getattr(row, f.name) for f in fields(Totals)}))
    return out
