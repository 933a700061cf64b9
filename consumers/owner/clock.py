"""The owner's clock: wall time that a jump of the system clock does not move.

Every decision of the core takes `now` from the shell, and most of them are durations between
`now` and a time the log holds (a session's grace and idle timeout, exclusivity, aging, a
running job's max runtime, the calibration window, queue age). Read from the wall clock, a jump
(an operator's `date -s`, a VM resumed, NTP stepping a clock that was far off) would make them
misfire: an hour forward ages every job six steps, ends every session's grace and idle timeout,
times out running jobs; an hour back stretches them all.

`SteadyClock` reads the wall clock once and then advances with the monotonic clock, which never
jumps. While the wall clock agrees with it within `follow_s` it follows the wall clock (so NTP's
slow corrections still reach the owner's times); when they disagree by more, that is a jump and
the owner keeps its own time (`jump_s` says by how much the wall clock is off; the owner logs
it) until the wall clock agrees again or the owner process restarts. Its times never go
backwards. Clients' absolute deadlines are compared with this time too: right whenever the
owner's clock was right when it started, whatever the system clock does since.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from schemas.wire import utc_now

FOLLOW_S = 2.0  # a wall clock this close to the monotonic one is followed: not a jump


class SteadyClock:
    """Wall-clock times that advance with the monotonic clock (see the module docstring)."""

    def __init__(
        self,
        wall: Callable[[], datetime] = utc_now,
        monotonic_s: Callable[[], float] = time.monotonic,
        follow_s: float = FOLLOW_S,
    ) -> None:
        self._wall = wall
        self._monotonic_s = monotonic_s
        self.follow_s = follow_s
        self._anchor = wall()
        self._anchor_s = monotonic_s()
        self._last = self._anchor
        self.jump_s = 0.0  # how far the wall clock is from this clock now (0: it follows)

    def __call__(self) -> datetime:
        """Now: the wall clock's time if it did not jump, else the monotonic clock's."""
        steady = self._anchor + timedelta(seconds=self._monotonic_s() - self._anchor_s)
        wall = self._wall()
        off_s = (wall - steady).total_seconds()
        if abs(off_s) <= self.follow_s:
            self._anchor, self._anchor_s = wall, self._monotonic_s()  # follow slow corrections
            self.jump_s, now = 0.0, wall
        else:
            self.jump_s, now = off_s, steady
        self._last = max(self._last, now)
        return self._last


def note_jump(clock: Callable[[], datetime], logged_s: float) -> float:
    """Log once per jump that the system clock jumped and the owner keeps its own time; the
    jump now (`SteadyClock.jump_s`, 0 for another clock), to pass as `logged_s` next time."""
    jump_s: float = getattr(clock, "jump_s", 0.0)
    if jump_s and abs(jump_s - logged_s) > FOLLOW_S:
        logging.getLogger("consumers.owner").warning(
            "the system clock jumped %+.0f s; the owner keeps its own time (monotonic) so "
            "no deadline, grace, aging or timeout misfires",
            jump_s,
        )
    return jump_s
