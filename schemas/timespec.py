"""Times and durations as people type them on the command line (pure).

A moment is an ISO 8601 date or time (UTC when it names no zone), ``now``, a duration back
from now (``7d``: seven days ago) or ahead of it (``+2h``: in two hours). A duration is seconds (``3600``) or a number with a unit
(``90s``, ``30m``, ``10h``, ``7d``, ``2w``); it must be more than zero. Both raise `ValueError`
with one line naming the text, so a command line can exit 2 with it.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration_s(text: str) -> float:
    """Seconds of a duration: ``3600``, ``90s``, ``30m``, ``10h``, ``7d``, ``2w``.

    Raises:
        ValueError: not a duration, or not more than zero.
    """
    found = _DURATION.match(text)
    if found is None and _DURATION.match(text.lstrip().removeprefix("-")) is not None:
        raise ValueError(f"{text!r}: a duration must be more than zero")
    if found is None:
        raise ValueError(f"{text!r} is not a duration (seconds, or a number with s, m, h, d, w)")
    seconds = float(found.group(1)) * UNITS_S[found.group(2) or "s"]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be more than zero")
    return seconds


def parse_moment(text: str, now: datetime) -> datetime:
    """A moment: an ISO 8601 date or time (UTC if naive), ``now``, a duration ago (``7d``) or
    ahead (``+2h``).

    Raises:
        ValueError: none of these.
    """
    if text.strip().lower() == "now":
        return now
    if text.strip().startswith("+"):
        return now + timedelta(seconds=parse_duration_s(text.strip()[1:]))
    if _DURATION.match(text):
        try:
            return now - timedelta(seconds=parse_duration_s(text))
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time (ISO 8601 like 2026-12-01 or 2026-12-01T08:00, 'now', a "
            "duration ago like 7d or ahead like +2h)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
