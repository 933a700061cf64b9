"""A site's plugins as the tests install them: misbehaving on purpose, by the job's shots.

`tests.support.plugin_dist.install` declares them as the entry points of a distribution
``qsched-testplugins`` (a ``.dist-info`` on the owner's PYTHONPATH), so the owner finds them
exactly as it finds a site's installed plugins. Shots pick the behaviour, so one owner serves
every case of a test: `RAISE_SHOTS` raise, `HANG_SHOTS` hang for `hang_s`, and the admission
plugin holds `HOLD_SHOTS` until `release_file` exists.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from consumers.plugins.api import JobFacts, Verdict
from consumers.plugins.reference import GroundStateBackend
from schemas.envelope import Event

RAISE_SHOTS = 13
HANG_SHOTS = 17
HOLD_SHOTS = 19
BACKEND_RAISE_SHOTS = 23
BACKEND_HANG_SHOTS = 29


def _misbehave(
    shots: int, hang_s: float, raise_at: int = RAISE_SHOTS, hang_at: int = HANG_SHOTS
) -> None:
    if shots == raise_at:
        raise RuntimeError(f"site plugin raised for {shots} shots")
    if shots == hang_at:
        time.sleep(hang_s)


class FlakyAdmission:
    """Raises, hangs, or holds until a file exists, by shots; accepts everything else."""

    def __init__(self, release_file: str, hang_s: float = 3600.0) -> None:
        self.release_file = Path(release_file)
        self.hang_s = hang_s

    def admit(self, job: JobFacts) -> Verdict:
        _misbehave(job.shots, self.hang_s)
        if job.shots == HOLD_SHOTS and not self.release_file.exists():
            return Verdict.hold(f"waiting for {self.release_file.name}")
        return Verdict.accept()


class FlakyTerm:
    """Terms per account; raises or hangs by shots."""

    def __init__(self, terms: dict[str, float], hang_s: float = 3600.0) -> None:
        self.terms = terms
        self.hang_s = hang_s

    def term(self, job: JobFacts) -> float:
        _misbehave(job.shots, self.hang_s)
        return self.terms.get(job.account or "", 0.0)


class FlakySink:
    """Fails its first `failures` sends, then appends events as JSON lines to `path`."""

    def __init__(self, path: str, failures: int = 0) -> None:
        self.path = Path(path)
        self.failures = failures

    def send(self, events: Sequence[Event]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("site webhook refused the batch")
        with self.path.open("a", encoding="utf-8") as out:
            out.writelines(json.dumps(e.model_dump(mode="json")) + "\n" for e in events)


class BrokenSink:
    """Always raises."""

    def send(self, events: Sequence[Event]) -> None:
        raise ConnectionError("site accounting database is down")


class HungSink:
    """Never returns."""

    def send(self, events: Sequence[Event]) -> None:
        time.sleep(3600)


class FlakyBackend(GroundStateBackend):
    """The ground-state backend, whose start raises or hangs by shots."""

    name = "site-flaky"

    def __init__(self, hang_s: float = 3600.0) -> None:
        super().__init__(shot_rate_hz=200.0)
        self.hang_s = hang_s

    def start(self, request: Any, reports: Any) -> None:
        _misbehave(request.shots, self.hang_s, BACKEND_RAISE_SHOTS, BACKEND_HANG_SHOTS)
        super().start(request, reports)


def flaky_backend(settings: Any, **options: Any) -> FlakyBackend:
    """The backend factory (gets the owner's settings first, like every backend plugin)."""
    return FlakyBackend(**options)
