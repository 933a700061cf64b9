"""Emulator lanes beside the QPU: N emulator worker processes the owner starts jobs on.

Each lane is an `EmulatorBackend` (its own pulser-simulation child process), named
``emulator-1`` ... ``emulator-N`` (`LanesPolicy.names`), started with the owner process and kept
across activations. After the QPU's dispatch, and never before it, the shell fills free lanes
through its one decision loop (`Shell.dispatch_lanes`: `Shell.decide` with `LaneDispatch`, as the
QPU's with `Dispatch`): the core picks the best job that may run on an emulator in the current
mode (`consumers.core.placement`), asks for its sequence to be re-checked against the QPU's
current device when a calibration came since (so what runs on a lane is valid on the QPU), and
the run's `job.started` event records the lane and the digest of those specs. A lane's reports
come back through an inbox of their own (`consumers.owner.effects.Backends`), handled (in one
confirmed batch) only after the QPU's reports and dispatch of the same loop turn; a lane start
is a write to a child's stdin. So the QPU's dispatch never waits for a lane, and lane workers
run at a lower CPU priority (`LANE_NICENESS`) so their emulation does not slow the owner on a
shared host.
"""

from __future__ import annotations

from consumers.backends.emulator import EmulatorBackend
from schemas.policy import LanesPolicy

LANE_NICENESS = 10  # lane workers yield the CPU to the owner and the QPU's backend


class LanePool:
    """The emulator lanes of one owner process (started with it, kept across activations)."""

    def __init__(self, lanes: LanesPolicy, progress_every_shots: int = 100) -> None:
        self.backends = {
            name: EmulatorBackend(lanes.shot_rate_hz, progress_every_shots) for name in lanes.names
        }

    def close(self) -> None:
        """Stop every lane's child process."""
        for backend in self.backends.values():
            backend.close()
