"""Which events `qsched events tail` shows: by job (id prefix), user, class, topic glob.

Only envelope fields are read. Events that name a job but not its user or class (progress, notes)
match through what earlier events of the same job said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from schemas.envelope import Event


@dataclass
class EventFilter:
    """A conjunction of optional criteria; an empty filter passes everything."""

    job: str | None = None
    user: str | None = None
    job_class: str | None = None
    topic: str | None = None
    _users: dict[str, str] = field(default_factory=dict, repr=False)
    _classes: dict[str, str] = field(default_factory=dict, repr=False)

    def __call__(self, event: Event) -> bool:
        """True when `event` passes every criterion given."""
        job_id = event.job_id
        if job_id is not None:
            if event.user:
                self._users.setdefault(job_id, event.user)
            if event.job_class:
                self._classes.setdefault(job_id, event.job_class)
        if self.topic is not None and not fnmatchcase(event.topic, self.topic):
            return False
        if self.job is not None and not (job_id or "").startswith(self.job):
            return False
        if self.user is not None:
            user = event.user or (self._users.get(job_id) if job_id else None)
            if user != self.user:
                return False
        if self.job_class is not None:
            job_class = event.job_class or (self._classes.get(job_id) if job_id else None)
            if job_class != self.job_class:
                return False
        return True
