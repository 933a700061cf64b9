"""Waiting on many jobs at once, like `concurrent.futures`.

`as_completed(handles)` yields each handle as its final result arrives, so a hybrid loop reacts to
whichever job finishes first; `wait(handles, return_when=FIRST_COMPLETED)` returns the finished
and unfinished handles as two sets. Results arrive on each client's reply queue; waiting reads
them from the broker (blocking on the connection, never sleeping), and handles of several clients
may be mixed (each client is read in turn for a short while).

A job "completes" when its final result (any state: DONE, ERROR, CANCELED, REJECTED, TIMED_OUT)
arrives; `FIRST_EXCEPTION` returns at the first result that is not DONE.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Literal, NamedTuple

from producers.errors import ResultTimeout
from producers.port import ClientPort
from schemas.enums import JobState

if TYPE_CHECKING:
    from producers.handle import JobHandle

FIRST_COMPLETED: Literal["FIRST_COMPLETED"] = "FIRST_COMPLETED"
FIRST_EXCEPTION: Literal["FIRST_EXCEPTION"] = "FIRST_EXCEPTION"
ALL_COMPLETED: Literal["ALL_COMPLETED"] = "ALL_COMPLETED"
ReturnWhen = Literal["FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"]
# Longest block on one client's connection while others wait their turn (several clients only).
SHARED_POLL_S = 0.05


class DoneAndNotDone(NamedTuple):
    """What `wait` returns: the handles with a final result, and the others."""

    done: set[JobHandle]
    not_done: set[JobHandle]


def _finished(handle: JobHandle) -> bool:
    return handle.job_id in handle.client.results


def _failed(handle: JobHandle) -> bool:
    result = handle.client.results.get(handle.job_id)
    return result is not None and result.state is not JobState.DONE


def _read(clients: list[ClientPort], left_s: float | None) -> None:
    """Block on the clients' connections for up to `left_s` (one client: the whole time)."""
    if len(clients) == 1:
        clients[0].poll(1.0 if left_s is None else min(left_s, 1.0))
        return
    for client in clients:
        client.poll(0)
    share = SHARED_POLL_S if left_s is None else min(SHARED_POLL_S, left_s)
    clients[0].poll(share / len(clients))
    clients.append(clients.pop(0))  # the next read blocks on another client first


def _clients(handles: Iterable[JobHandle]) -> list[ClientPort]:
    seen: dict[int, ClientPort] = {}
    for handle in handles:
        seen.setdefault(id(handle.client), handle.client)
    return list(seen.values())


def as_completed(handles: Iterable[JobHandle], timeout: float | None = None) -> Iterator[JobHandle]:
    """Yield each handle when its final result has arrived, first finished first.

    Handles already finished are yielded at once; duplicates are yielded once.

    Args:
        handles: the jobs to wait for (of one or several clients).
        timeout: seconds for all of them, from the call; None waits for ever.

    Raises:
        ResultTimeout: some results had not arrived when `timeout` ran out.
    """
    pending = set(handles)
    clients = _clients(pending)
    deadline = None if timeout is None else time.monotonic() + timeout
    for client in clients:
        client.poll(0)
    while pending:
        finished = [h for h in pending if _finished(h)]
        for handle in finished:
            pending.discard(handle)
            yield handle
        if not pending:
            return
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise ResultTimeout(f"{len(pending)} of the jobs have no result within {timeout} s")
        _read(clients, left)


def wait(
    handles: Iterable[JobHandle],
    timeout: float | None = None,
    return_when: ReturnWhen = ALL_COMPLETED,
) -> DoneAndNotDone:
    """Wait until `return_when` holds or `timeout` seconds passed; never raises for a timeout.

    Args:
        handles: the jobs (of one or several clients).
        timeout: seconds; None waits for ever.
        return_when: `FIRST_COMPLETED`, `FIRST_EXCEPTION` (a result that is not DONE) or
            `ALL_COMPLETED`.

    Returns:
        ``(done, not_done)`` sets of handles.
    """
    if return_when not in (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED):
        raise ValueError(f"unknown return_when {return_when!r}")
    everything = set(handles)
    clients = _clients(everything)
    deadline = None if timeout is None else time.monotonic() + timeout
    for client in clients:
        client.poll(0)
    while True:
        done = {h for h in everything if _finished(h)}
        if (
            done == everything
            or (return_when == FIRST_COMPLETED and done)
            or (return_when == FIRST_EXCEPTION and any(_failed(h) for h in done))
        ):
            break
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        _read(clients, left)
    return DoneAndNotDone(done, everything - done)
