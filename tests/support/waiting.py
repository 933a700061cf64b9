"""One way for a test to wait: a condition, its own deadline, and a message saying what never came."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    what: str,
    timeout_s: float = 30.0,
    step: Callable[[], object] | None = None,
) -> T:
    """Call `condition` until it returns something truthy; return that.

    Args:
        condition: checked first, then after every `step`.
        what: the awaited outcome, for the failure message ("job X DONE").
        timeout_s: this wait's own deadline (well under pytest's per-test timeout).
        step: what to do between checks, normally something that blocks on I/O for a short
            bounded time (``lambda: client.poll(0.1)``); defaults to a 50 ms pause.

    Raises:
        AssertionError: the condition stayed false past the deadline; names `what`.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for: {what}")
        if step is not None:
            step()
        else:
            time.sleep(0.05)
