"""Owner time of `status` and `queue` at depth: what another user's ``qsched status`` and
``qsched queue --limit 5`` cost the owner while one user floods the backlog (issue 19, finding 7).

    python -m bench queries                  # 0 and 100,000 waiting
    python -m bench queries --jobs 20000     # 0 and 20,000 waiting

The figure is the time `step` takes to answer the command (no broker: the owner's own time),
printed as a ratio to `status` with nothing waiting, measured in the same run. Goal: under
50 ms at 100,000 waiting.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from bench.backlog import T0, accepted_events
from bench.common import percentile
from consumers.core.command_types import Command
from consumers.core.inputs import Context
from consumers.core.state import OwnerState
from consumers.core.step import step
from schemas.control import ControlCommand
from schemas.enums import CommandName
from schemas.policy import Policy, parse_policy
from schemas.wire import seeded_ids

POLICY = parse_policy('operators = ["ops"]\n')
ASKS = {
    "status (a submitter)": (ControlCommand(command=CommandName.STATUS), "someone"),
    "status (an operator)": (ControlCommand(command=CommandName.STATUS), "ops"),
    "queue --limit 5": (ControlCommand(command=CommandName.QUEUE, limit=5), "someone"),
    "queue --limit 50 (operator)": (ControlCommand(command=CommandName.QUEUE, limit=50), "ops"),
    "queue --user user3 --limit 5": (
        ControlCommand(command=CommandName.QUEUE, limit=5, user="user3"),
        "user3",
    ),
}


def backlog(n: int, policy: Policy) -> OwnerState:
    """A state with `n` waiting jobs (20 users, 4 accounts, 3 classes, all priorities)."""
    state = OwnerState.for_half_life(policy.fair_share_half_life_s)
    for event in accepted_events(n, "{}"):
        state.apply(event)
    state.epoch = 1  # as after a calibration: no job waits for an epoch, nothing is held (a
    # flood's worst case for status, which looks for held jobs to show)
    return state


def owner_ms(state: OwnerState, policy: Policy, ask: tuple[ControlCommand, str], k: int) -> float:
    """Milliseconds `step` takes to answer one command."""
    command, user = ask
    now = T0 + timedelta(seconds=120 + k)
    ctx = Context("bench", "synthetic", seeded_ids(k))
    began = time.perf_counter()
    step(state, policy, Command(command, user, reply_to="r"), now, ctx)
    return (time.perf_counter() - began) * 1000


def measure(n: int, samples: int = 5) -> dict[str, float]:
    """p50 owner milliseconds of each command at depth `n`."""
    state = backlog(n, POLICY)
    return {
        name: percentile([owner_ms(state, POLICY, ask, k) for k in range(samples)], 0.5)
        for name, ask in ASKS.items()
    }


def main(jobs: int) -> None:
    """Print owner time of status and queue at 0 and at depth (100,000 unless --jobs is more
    than the default 500)."""
    depth = jobs if jobs > 500 else 100_000
    empty = measure(0)
    baseline = empty["status (a submitter)"]
    full = measure(depth)
    for name, ms in full.items():
        print(
            f"{name:<30} {depth:>7,} waiting: {ms:8.2f} ms ({ms / max(baseline, 1e-6):6.1f}x "
            f"status at 0 waiting, {baseline:.3f} ms; goal < 50 ms)"
        )
    print(json.dumps({"bench": "queries", "waiting": depth, "empty_status_ms": baseline} | full))
