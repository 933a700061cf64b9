"""Emulator lanes beside the QPU: N emulator worker processes the owner starts jobs on.

Each lane is an `EmulatorBackend` (its own pulser-simulation child process), named
``emulator-1`` ... ``emulator-N`` (`LanesPolicy.names`). After the QPU's dispatch, and never
before it, `LanePool.dispatch` fills free lanes through the shell's one decision loop
(`Shell.decide` with `LaneDispatch`, as the QPU's with `Dispatch`): the core picks the best job
that may run on an emulator in the current mode (`consumers.core.placement`), asks the shell to
re-check its sequence against the QPU's current device when a calibration came since (so what
runs on a lane is valid on the QPU), and the run's `job.started` event records the lane and the
digest of those specs. A lane's reports come back
through an inbox of their own, handled (in one confirmed batch) only after the QPU's reports and
dispatch of the same loop turn; a lane start is a write to a child's stdin. So the QPU's
dispatch never waits for a lane, and lane workers run at a lower CPU priority (`LANE_NICENESS`)
so their emulation does not slow the owner on a shared host.
"""

from __future__ import annotations

import queue

from consumers.backends.emulator import EmulatorBackend
from consumers.core.step import LaneDispatch
from consumers.shell import Shell
from schemas.policy import LanesPolicy
from schemas.sequence import SpecsDigest

LANE_NICENESS = 10  # lane workers yield the CPU to the owner and the QPU's backend


class LanePool:
    """The emulator lanes of one owner process (started with it, kept across activations)."""

    def __init__(self, lanes: LanesPolicy, progress_every_shots: int = 100) -> None:
        self.backends = {
            name: EmulatorBackend(lanes.shot_rate_hz, progress_every_shots) for name in lanes.names
        }
        self._specs = SpecsDigest()

    def drain(self, shell: Shell) -> bool:
        """Handle what the lanes reported (one confirm for all); True if anything was."""
        handled = False
        while True:
            try:
                given = shell.lane_inbox.get_nowait()
            except queue.Empty:
                break
            shell.stage(given)
            handled = True
        if handled:
            shell.commit()
        return handled

    def dispatch(self, shell: Shell) -> None:
        """Start the best lane-eligible jobs on the free lanes."""
        if not self.backends:
            return
        specs = self._specs(shell.device())
        for lane in self.backends:
            if lane not in shell.state.lanes and not shell.decide(LaneDispatch(lane, specs)):
                return  # nothing may run on a lane now: the other lanes neither

    def running(self, shell: Shell) -> list[str]:
        """Job ids on the lanes."""
        return [run.job.job_id for run in shell.state.lanes.values()]

    def cancel_all(self, job_ids: list[str]) -> None:
        """Stop these runs wherever they are (a lane ignores a job it does not run)."""
        for job_id in job_ids:
            for backend in self.backends.values():
                backend.cancel(job_id)

    def close(self) -> None:
        """Stop every lane's child process."""
        for backend in self.backends.values():
            backend.close()
