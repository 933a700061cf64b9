"""Job deliveries that wait for their Slurm allocation's registration (the shell's side of
`consumers.core.context.Unregistered`).

A job can reach the owner before the prolog's ``allocation-started`` does (the two travel
through different queues). The core then answers `AwaitAllocation`: the delivery is kept here,
unacked (so an owner that dies meanwhile leaves it to the next owner, which waits again), and
stepped again as soon as the registry knows the allocation, or once it has waited the policy's
``[accounts] registration_grace_s`` (then the core refuses it, naming the allocation). The wait
is measured on the monotonic clock: a wall-clock jump neither refuses early nor keeps forever.

Kept deliveries use the owner's prefetch window, so their number is bounded, in all and per
user; past the bound the core is told there is no room (`Arrival.may_wait`) and refuses at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from consumers.core.inputs import Arrival
from consumers.core.state_data import StateData
from consumers.owner.settle import Delivery

MAX_KEPT = 200  # of the owner's prefetch window (500 by default): intake goes on beside them
MAX_KEPT_PER_USER = 100


@dataclass(frozen=True)
class Kept:
    """One delivery waiting for `allocation`, since `since_s` (monotonic seconds)."""

    arrival: Arrival
    delivery: Delivery
    validated_ns: tuple[int, int]
    allocation: str
    since_s: float


class Parking:
    """The deliveries kept for their allocation's registration, in arrival order."""

    def __init__(self, clock_s: Callable[[], float] = time.monotonic) -> None:
        self._clock_s = clock_s
        self._kept: list[Kept] = []

    def __len__(self) -> int:
        return len(self._kept)

    def prepared(self, arrival: Arrival, since_s: float | None = None) -> Arrival:
        """`arrival` with how long it has waited and whether it may wait (room left)."""
        waited_s = 0.0 if since_s is None else max(self._clock_s() - since_s, 0.0)
        if since_s is not None:
            return replace(arrival, waited_s=waited_s, may_wait=True)  # it holds its place
        mine = sum(1 for kept in self._kept if kept.arrival.user == arrival.user)
        room = len(self._kept) < MAX_KEPT and mine < MAX_KEPT_PER_USER
        return replace(arrival, waited_s=waited_s, may_wait=room)

    def keep(
        self,
        arrival: Arrival,
        delivery: Delivery,
        validated_ns: tuple[int, int],
        allocation: str,
        since_s: float | None = None,
    ) -> None:
        """Keep a delivery the core asked to wait for `allocation`."""
        since = self._clock_s() if since_s is None else since_s
        self._kept.append(Kept(arrival, delivery, validated_ns, allocation, since))

    def due(self, state: StateData, grace_s: float) -> list[Kept]:
        """Take the deliveries to step again: their allocation is known now (registered or
        ended), or they have waited `grace_s`."""
        if not self._kept:
            return []
        now_s = self._clock_s()
        due: list[Kept] = []
        still: list[Kept] = []
        for kept in self._kept:
            known = kept.allocation in state.allocations or kept.allocation in (
                state.ended_allocations
            )
            (due if known or now_s - kept.since_s >= grace_s else still).append(kept)
        self._kept = still
        return due

    def allocations(self) -> set[str]:
        """The allocations some delivery waits for."""
        return {kept.allocation for kept in self._kept}

    def forget(self) -> None:
        """Drop everything (the connection is gone: the broker redelivers them)."""
        self._kept.clear()
