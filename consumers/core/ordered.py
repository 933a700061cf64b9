"""The backlog in policy order, lazily (pure): what `qsched queue` and positions read.

Sorting every waiting job by its `OrderKey` costs O(n log n) key computations before the first
row can be shown (seconds at 100,000 waiting). The order index (`consumers.core.order`) already
keeps each cohort (class, user, site term and priority) sorted by acceptance, and within a cohort
the order key never decreases: the same class, user, site term and AMQP priority, and an older
job has aged at least as much. So the backlog in order is a k-way merge of the cohorts by their
heads' keys: the first rows cost O(rows x log cohorts). The one exception is session grace, which
puts the jobs of the session in grace first in their class wherever they sit in their cohorts:
they are merged as one more cohort (sorted by key) and skipped in their own.

`in_order` yields exactly what ``sorted(waiting, key=order_key)`` would (a property test checks).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime
from itertools import count

from consumers.core.order import OrderIndex, Waiting
from consumers.core.order_key import OrderKey, class_key, key_in_class
from consumers.core.owner_view import OwnerView


def in_order(
    view: OwnerView, index: OrderIndex, now: datetime
) -> Iterator[tuple[Waiting, OrderKey]]:
    """Every waiting job with its order key, first in line first."""
    graced = {
        job.job_id: job for session in view.sessions_in_grace for job in index.session_jobs(session)
    }
    classes = {name: class_key(view, name)[:2] for name in index.cohorts}

    def keyed(job: Waiting) -> OrderKey:
        rank, share = classes.get(job.job_class) or class_key(view, job.job_class)[:2]
        return key_in_class(view, job, now, rank, share)

    heap: list[tuple[OrderKey, int, Waiting, Iterator[Waiting]]] = []
    ties = count()

    def push(cohort: Iterator[Waiting]) -> None:
        for job in cohort:
            if job.job_id in graced and cohort is not grace_cohort:
                continue  # merged from the grace cohort instead
            heapq.heappush(heap, (keyed(job), next(ties), job, cohort))
            return

    grace_cohort = iter(sorted(graced.values(), key=keyed))
    push(grace_cohort)
    for users in index.cohorts.values():
        for levels in users.values():
            for cohort in levels.values():
                push(entry[2] for entry in cohort)
    while heap:
        key, _, job, cohort = heapq.heappop(heap)
        yield job, key
        push(cohort)
