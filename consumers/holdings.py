"""Deliveries the owner holds without having started them (its view of each class queue's head).

The broker pushes at most `prefetch` deliveries per class queue; they wait here, unacked, until
the core picks one. Deliveries fetched with basic.get to look past a full window are marked
`via_get` and do not count against the window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from consumers.core.policy import Candidate
from schemas.messages import JobRequest


@dataclass
class Held:
    """One held delivery and what the owner knows of its job."""

    tag: int
    job: JobRequest
    properties: Any
    user: str | None
    received_s: float
    via_get: bool = False
    attempt: int = 1
    preemptions: int = 0
    validated_ns: tuple[int, int] | None = None
    prior_counts: dict[str, int] = field(default_factory=dict)
    validated_epoch: int = 0

    def candidate(self) -> Candidate:
        """The job as the core sees it; `key` is the delivery tag."""
        return Candidate(
            job_id=self.job.job_id,
            job_class=self.job.job_class,
            priority=self.job.priority,
            enqueued_at=self.job.submitted_at,
            shots=self.job.shots,
            user=self.user,
            key=self.tag,
            preemptions=self.preemptions,
            session_id=self.job.session_id,
            allocation=self.job.slurm.job_id if self.job.slurm else None,
            allocation_end=self.job.slurm.allocation_end if self.job.slurm else None,
            min_epoch=self.job.min_epoch,
        )


class Holdings:
    """Held deliveries by delivery tag."""

    def __init__(self) -> None:
        self._by_tag: dict[int, Held] = {}

    def __len__(self) -> int:
        return len(self._by_tag)

    def __iter__(self) -> Iterator[Held]:
        return iter(list(self._by_tag.values()))

    def add(self, held: Held) -> None:
        """Hold a delivery."""
        self._by_tag[held.tag] = held

    def pop(self, tag: int) -> Held:
        """Stop holding a delivery and return it."""
        return self._by_tag.pop(tag)

    def find(self, job_id: str) -> Held | None:
        """The held delivery of `job_id`, if any."""
        return next((h for h in self._by_tag.values() if h.job.job_id == job_id), None)

    def window(self, job_class: str) -> int:
        """Deliveries of `job_class` that count against its prefetch window."""
        return sum(
            1 for h in self._by_tag.values() if h.job.job_class == job_class and not h.via_get
        )

    def per_class(self) -> dict[str, int]:
        """Held deliveries per class."""
        return dict(Counter(h.job.job_class for h in self._by_tag.values()))

    def older_than(self, received_before_s: float) -> list[Held]:
        """Deliveries received before a monotonic time (to hand back before consumer_timeout)."""
        return [h for h in self._by_tag.values() if h.received_s < received_before_s]
