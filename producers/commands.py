"""An operator's command and the owner's reply: the control plane's round trip.

The command is published to the control exchange with a broker-side expiry equal to the wait, so
one that no owner answered within it is never applied later by an owner that starts then; the
reply comes back on the client's reply queue, matched by command id.
"""

from __future__ import annotations

import time

from producers.confirms import Outgoing
from producers.errors import NoOwnerAnswered
from producers.session import ClientSession
from schemas.messages import ControlCommand, ControlReply


def send_command(
    session: ClientSession,
    command: ControlCommand,
    replies: dict[str, ControlReply],
    timeout: float,
) -> ControlReply:
    """Publish `command` and wait for its reply to land in `replies` (taken out of it).

    Raises:
        NoOwnerAnswered: no owner answered within `timeout` seconds.
    """
    name = command.command.value
    outgoing = Outgoing(
        command,
        session.topology.control_exchange,
        f"control.{name}",
        command.command_id,
        expiration_ms=max(int(timeout * 1000), 1),
    )
    session.publish([outgoing])
    deadline = time.monotonic() + timeout
    while command.command_id not in replies:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoOwnerAnswered(
                f"no QPU owner answered {name} within {timeout:g} s; the command expired unapplied"
            )
        session.poll(min(left, 0.5))
    return replies.pop(command.command_id)
