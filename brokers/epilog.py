"""``qsched-epilog SLURM_JOB_ID``: the Slurm Epilog's ``allocation-ended``, started fast.

The Epilog runs when an allocation ends (scancel, time limit, normal end), and its call is what
stops the allocation's running QPU job. ``qsched ctl allocation-ended`` does the same through the
full CLI, whose imports (the client SDK, tracing, rich) cost a second or more on a busy node
before anything is sent; this entry point imports only settings, the message schemas and pika
(`brokers.ask`). Same settings (``QSCHED_*``, the Epilog's env file), same command, same reply.

Exit codes as the CLI's: 0 the owner applied it, 1 refused, 3 no owner answered in time,
2 usage.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from brokers.ask import ask_owner
from brokers.errors import BrokerError
from brokers.settings import load_settings
from brokers.topology import build_topology
from schemas.control import ControlCommand
from schemas.enums import CommandName
from schemas.policy import Policy

TIMEOUT_S = 10.0


def main(argv: Sequence[str] | None = None) -> int:
    """Send ``allocation-ended`` for the Slurm job id in `argv` and print the owner's reply."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: qsched-epilog SLURM_JOB_ID", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        topology = build_topology(settings, Policy())  # control names need no class list
        command = ControlCommand(command=CommandName.ALLOCATION_ENDED, allocation=args[0])
        reply = ask_owner(settings, topology, command, TIMEOUT_S)
    except (BrokerError, ValueError, OSError) as exc:
        print(f"qsched-epilog: {exc}", file=sys.stderr)
        return 1
    if reply is None:
        print(f"qsched-epilog: no QPU owner answered within {TIMEOUT_S:g} s", file=sys.stderr)
        return 3
    if not reply.ok:
        print(f"qsched-epilog: refused: {reply.message}", file=sys.stderr)
        return 1
    print(reply.message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
