"""The project's reference plugins, one per control point (registered in pyproject.toml).

They are small on purpose: each shows its control point's contract and is useful as it is.

- ``accounts`` (admission): refuses jobs of blocked Slurm accounts, holds jobs of accounts over
  budget, and may require an account. The lists come from the policy file, so an operator
  changes them there; a site's own plugin would ask its accounting system instead.
- ``account-term`` (ordering): a fixed term per Slurm account (e.g. a grant's share).
- ``jsonl`` (event sink): appends every event as one JSON line to a file.
- ``ground-state`` (backend): measures every atom in the ground state at a set shot rate: a
  site checks its wiring (submit, results, events) with it before a real device is there.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumers.backends.base import LocalBackend, RunOutcome, RunReports, RunRequest, register_size
from consumers.plugins.api import JobFacts, Verdict
from schemas.envelope import Event

if TYPE_CHECKING:
    from brokers.settings import Settings


class AccountCheck:
    """Admission by Slurm account: blocked ones refused, over-budget ones held."""

    def __init__(
        self,
        blocked: Sequence[str] = (),
        over_budget: Sequence[str] = (),
        require_account: bool = False,
    ) -> None:
        self.blocked = frozenset(blocked)
        self.over_budget = frozenset(over_budget)
        self.require_account = require_account

    def admit(self, job: JobFacts) -> Verdict:
        """Refuse, hold or accept `job` by its account."""
        if job.account is None:
            if self.require_account:
                return Verdict.refuse("jobs must come from a Slurm allocation with an account")
            return Verdict.accept()
        if job.account in self.blocked:
            return Verdict.refuse(f"account {job.account} may not use the QPU")
        if job.account in self.over_budget:
            return Verdict.hold(f"account {job.account} is over its QPU budget")
        return Verdict.accept()


class AccountTerm:
    """A fixed ordering term per Slurm account (jobs without one, or unlisted: `default`)."""

    def __init__(self, terms: Mapping[str, float] | None = None, default: float = 0.0) -> None:
        self.terms = dict(terms or {})
        self.default = float(default)

    def term(self, job: JobFacts) -> float:
        """The term of the job's account."""
        if job.account is None:
            return self.default
        return float(self.terms.get(job.account, self.default))


class JsonlSink:
    """Appends every event as one JSON line to `path` (flushed after each batch)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, events: Sequence[Event]) -> None:
        """Append a batch."""
        lines = "".join(json.dumps(e.model_dump(mode="json")) + "\n" for e in events)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(lines)


class GroundStateBackend(LocalBackend):
    """Every shot measures all atoms in the ground state ("000..."), paced at `shot_rate_hz`."""

    name = "ground-state"

    def __init__(self, shot_rate_hz: float = 100.0) -> None:
        self.shot_rate_hz = shot_rate_hz
        self._stops: dict[str, threading.Event] = {}

    def start(self, request: RunRequest, reports: RunReports) -> None:
        """Run on a thread of its own."""
        stop = self._stops[request.job_id] = threading.Event()
        threading.Thread(target=self._run, args=(request, reports, stop), daemon=True).start()

    def cancel(self, job_id: str) -> None:
        """Stop the run; it reports the shots measured so far."""
        stop = self._stops.get(job_id)
        if stop is not None:
            stop.set()

    def _run(self, request: RunRequest, reports: RunReports, stop: threading.Event) -> None:
        zeros = "0" * register_size(request.sequence)
        done = 0
        while done < request.shots and not stop.wait(1 / self.shot_rate_hz):
            done += 1
        self._stops.pop(request.job_id, None)
        counts = {zeros: done} if done else {}
        reports.finished(RunOutcome(request.job_id, counts, canceled=done < request.shots))


def ground_state_backend(settings: Settings, **options: Any) -> GroundStateBackend:
    """The `ground-state` backend (its `shot_rate_hz` option, else the owner's setting)."""
    rate = options.get("shot_rate_hz") or settings.owner.shot_rate_hz or 100.0
    return GroundStateBackend(float(rate))
