"""How fast the QPU measures shots, as its recent runs showed it (pure): what ETAs count with.

The policy's `shot_rate_hz` and `job_overhead_s` are the operator's word on the hardware; how fast
the backend really goes is known once it has run. `ShotRate` keeps the shots and seconds of the
last `RECENT_RUNS` QPU runs (folded by `OwnerState.apply` as runs end, so a standby, `replay` and
`simulate` see the same figures; emulator lanes and runs an owner's death cut short are not QPU
evidence). A run costs an overhead plus a time per shot: the overhead is the policy's, but never
more than the shortest recent run took; the time per shot is what the runs took beyond it, over
the shots they measured. Durations use that, and the policy's figures until a run
measured something (`consumers.core.policy.estimated_duration_s` with `ShotRate.costs`).

ETAs (`qsched queue`, `status JOB`, `top`, a job's pushed position) use it. The scheduling
decisions (the calibration window, an allocation's end) keep the policy's figures: there they
are the operator's safety margin, not a forecast.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

RECENT_RUNS = 20


def _recent() -> deque[tuple[int, float]]:
    return deque(maxlen=RECENT_RUNS)


@dataclass
class ShotRate:
    """(shots, seconds) of the last `RECENT_RUNS` QPU runs that measured shots."""

    samples: deque[tuple[int, float]] = field(default_factory=_recent)

    def record(self, shots: int, seconds: float) -> None:
        """A QPU run ended after measuring `shots` in `seconds` (nothing measured: no evidence)."""
        if shots > 0 and seconds > 0:
            self.samples.append((shots, seconds))

    def costs(self, overhead_s: float) -> tuple[float, float] | None:
        """(overhead per run, seconds per shot) the recent runs show, given the policy's
        overhead; None before any run measured a shot."""
        if not self.samples:
            return None
        overhead_s = min(overhead_s, min(seconds for _, seconds in self.samples))
        shots = sum(count for count, _ in self.samples)
        beyond_s = sum(max(seconds - overhead_s, 0.0) for _, seconds in self.samples)
        return overhead_s, beyond_s / shots

    def rate_hz(self, overhead_s: float) -> float | None:
        """The measured shots per second beyond the overhead (None: not measured yet, or
        every run took no longer than its overhead)."""
        costs = self.costs(overhead_s)
        return 1.0 / costs[1] if costs is not None and costs[1] > 0 else None

    def to_data(self) -> list[list[float]]:
        """For snapshots."""
        return [[count, seconds] for count, seconds in self.samples]

    @classmethod
    def from_data(cls, data: Iterable[Iterable[float]] | None) -> ShotRate:
        """The `ShotRate` `to_data` described (empty for None: a snapshot from before)."""
        rate = cls()
        for count, seconds in data or ():
            rate.record(int(count), float(seconds))
        return rate
