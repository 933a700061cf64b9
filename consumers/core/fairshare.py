"""Exponentially decayed QPU usage, for fair share between submitters and weights between classes.

Usage halves every `half_life_s`: a user who ran an hour yesterday weighs less than one who ran
ten minutes ago. Pure: every method takes `now`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class Usage:
    """Decayed QPU-seconds per key (a user or a job class)."""

    def __init__(self, half_life_s: float = 3600.0) -> None:
        self.half_life_s = half_life_s
        self._values: dict[str, tuple[float, datetime]] = {}

    def _decayed(self, value: float, as_of: datetime, now: datetime) -> float:
        elapsed_s = max((now - as_of).total_seconds(), 0.0)
        return float(value * 0.5 ** (elapsed_s / self.half_life_s))

    def add(self, key: str, seconds: float, now: datetime) -> None:
        """Count `seconds` of QPU time used by `key`, ending at `now`."""
        value, as_of = self._values.get(key, (0.0, now))
        self._values[key] = (self._decayed(value, as_of, now) + seconds, now)

    def snapshot(self, now: datetime) -> dict[str, float]:
        """Every key's usage decayed to `now`."""
        return {
            key: self._decayed(value, as_of, now) for key, (value, as_of) in self._values.items()
        }

    def to_data(self) -> dict[str, tuple[float, str]]:
        """Plain data for a snapshot: key -> (value, as_of ISO time)."""
        return {key: (value, as_of.isoformat()) for key, (value, as_of) in self._values.items()}

    @classmethod
    def from_data(cls, half_life_s: float, data: dict[str, Any]) -> Usage:
        """A ledger rebuilt from `to_data` output."""
        usage = cls(half_life_s)
        for key, (value, as_of) in data.items():
            usage._values[key] = (float(value), datetime.fromisoformat(as_of))
        return usage
