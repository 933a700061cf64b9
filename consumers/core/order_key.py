"""The order key: one named tuple that both orders the backlog and explains the order.

Like Slurm's ``sprio``, a job's place in line is the tuple of its factors, so what `qsched queue
--explain` prints is exactly what the decision compared. `order_key` is the one place that
builds it; the decision (`consumers.core.policy`), the queue and positions
(`consumers.core.view`) and the emulator lanes (`consumers.core.placement`) all order by it.
Fields compare in order, smaller first:

1. class rank (lower first; strict);
2. between classes of equal rank, the one that used least QPU time relative to its `weight`;
3. within a class, jobs of a session in its grace window (a hybrid loop's next iteration);
4. the site term of the policy's ordering plugin (higher first; 0 without a plugin), fixed
   when the job was accepted (`consumers.plugins`);
5. effective priority: AMQP priority plus one per `aging_step_s` waited, so nothing starves;
6. hierarchical fair share: the Slurm account with the least recent QPU time, then the user
   with the least within it (exponentially decayed QPU-seconds, like Slurm's fair tree);
7. age (when the owner accepted the job), then job id, so the order is total.

A class whose policy says ``ordering = "fifo"`` orders its jobs by 7 alone (first accepted,
first served, as Warden does): factors 3 to 6 are neutral in its keys.

Factors where higher goes first are stored negated (`minus_...`); `OrderKey.factors` gives them
back as they read.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from consumers.core.owner_view import Candidate, OwnerView
from schemas.enums import Ordering
from schemas.policy import Policy

UNKNOWN_CLASS_RANK = 2**31  # after every rank a policy file can give
FACTOR_DIGITS = 3


class OrderKey(NamedTuple):
    """A waiting job's place in the policy's order (smaller goes first)."""

    class_rank: int
    class_share: float  # the class's decayed QPU-seconds per unit of weight
    not_in_grace: bool  # False: the job's session is in its grace window
    minus_site_term: float
    minus_priority: int  # the effective priority, negated
    account_usage_s: float
    user_usage_s: float
    queued_at: datetime
    job_id: str

    def factors(self) -> dict[str, object]:
        """The factors by name, as `qsched queue --explain` shows them."""
        return {
            "class_rank": self.class_rank,
            "class_usage_per_weight": round(self.class_share, FACTOR_DIGITS),
            "session_grace": not self.not_in_grace,
            "site_term": -self.minus_site_term,
            "effective_priority": -self.minus_priority,
            "account_usage_s": round(self.account_usage_s, FACTOR_DIGITS),
            "user_usage_s": round(self.user_usage_s, FACTOR_DIGITS),
        }


def effective_priority(policy: Policy, candidate: Candidate, now: datetime) -> int:
    """AMQP priority plus one step per `aging_step_s` waited."""
    waited_s = max((now - candidate.queued_at).total_seconds(), 0.0)
    return candidate.priority + int(waited_s // policy.aging_step_s)


def class_key(view: OwnerView, job_class: str) -> tuple[int, float, str]:
    """Order between classes: strict rank, then usage relative to weight (equal ranks).

    A class the policy no longer has (a reload dropped it while its jobs wait) orders last; its
    jobs are held by `consumers.core.policy.class_hold` until an operator puts the class back
    or cancels them.
    """
    policy = view.policy.classes.get(job_class)
    if policy is None:
        return (UNKNOWN_CLASS_RANK, 0.0, job_class)
    return (policy.rank, view.class_usage.get(job_class, 0.0) / policy.weight, job_class)


def is_fifo(view: OwnerView, job_class: str) -> bool:
    """Whether the policy orders `job_class` first accepted, first served."""
    policy = view.policy.classes.get(job_class)
    return policy is not None and policy.ordering is Ordering.FIFO


def fifo_key(rank: int, share: float, queued_at: datetime, job_id: str) -> OrderKey:
    """The key of a job of a FIFO class: its acceptance time is its only factor."""
    return OrderKey(rank, share, True, 0.0, 0, 0.0, 0.0, queued_at, job_id)


def order_key(view: OwnerView, candidate: Candidate, now: datetime) -> OrderKey:
    """The job's place in the order at `now` (see the module docstring)."""
    rank, share, _ = class_key(view, candidate.job_class)
    return key_in_class(view, candidate, now, rank, share)


def key_in_class(
    view: OwnerView, candidate: Candidate, now: datetime, rank: int, share: float
) -> OrderKey:
    """`order_key` with the class's factors already known (the decision's inner loop)."""
    if is_fifo(view, candidate.job_class):
        return fifo_key(rank, share, candidate.queued_at, candidate.job_id)
    return OrderKey(
        rank,
        share,
        candidate.session_id not in view.sessions_in_grace,
        -candidate.site_term,
        -effective_priority(view.policy, candidate, now),
        view.account_usage.get(candidate.account_key, 0.0),
        view.usage.get(candidate.user_key, 0.0),
        candidate.queued_at,
        candidate.job_id,
    )


def factors(view: OwnerView, candidate: Candidate, now: datetime) -> dict[str, object]:
    """The order key's factors by name, for `queue --explain` (like Slurm's ``sprio``)."""
    return order_key(view, candidate, now).factors()
