"""An operator's command and the owner's reply: the control plane's round trip.

The command is published to the control exchange with a broker-side expiry equal to the wait,
so one that no owner answered within it is never applied later by an owner that starts then; the
reply comes back on the client's reply queue, matched by command id. `OwnerCommands` is the
client's face of it (`control`, and `queue` on top), mixed into `QPUClient` under the session
commands of `producers.sessions`.
"""

from __future__ import annotations

import time
from typing import Any

from producers.confirms import Outgoing
from producers.errors import CommandRefused, NoOwnerAnswered
from producers.session import ClientSession
from schemas.control import ControlCommand, ControlReply
from schemas.enums import CommandName, Mode
from schemas.reports import QueueEntry


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


class OwnerCommands:
    """`control` (any command, the owner's reply) and `queue` of a client with a session."""

    session: ClientSession
    replies: dict[str, ControlReply]  # command replies received, by command id

    def queue(
        self,
        *,
        user: str | None = None,
        job_class: str | None = None,
        job_id: str | None = None,
        limit: int | None = None,
        timeout: float = 10.0,
    ) -> list[QueueEntry]:
        """The owner's backlog in policy order: position, ETA, hold reason (no sequences).

        `job_id` may be the first characters of an id (the owner resolves them among the jobs
        this user may see).

        Raises:
            ResultTimeout: no owner answered within `timeout` seconds.
            CommandRefused: the owner refused (e.g. no such job, or it is not waiting nor
                running: code NOT_WAITING); `error` holds the structured reason.
        """
        reply = self.control(
            CommandName.QUEUE,
            user=user,
            job_class=job_class,
            job_id=job_id,
            limit=limit,
            timeout=timeout,
        )
        if not reply.ok:
            raise CommandRefused(f"queue refused: {reply.message}", reply.error)
        return list(reply.queue or [])

    def control(
        self,
        command: CommandName,
        *,
        job_id: str | None = None,
        mode: Mode | None = None,
        message: str | None = None,
        force: bool = False,
        specs: str | None = None,
        allocation: str | None = None,
        user: str | None = None,
        job_class: str | None = None,
        limit: int | None = None,
        wait: bool = False,
        priority: int | None = None,
        message_id: str | None = None,
        batch_id: str | None = None,
        timeout: float = 10.0,
        **more: Any,
    ) -> ControlReply:
        """Send an operator's command and wait for the owner's reply.

        The command expires in the broker after `timeout` seconds, so one that no owner answered
        is never applied later by an owner that starts then. `more` are further fields of the
        `ControlCommand` (e.g. ``session_id``, ``number``; ``allocation-started``'s account, end,
        uid and partition).

        Returns:
            The reply, ``ok`` or not (a refusal carries a structured `error`).

        Raises:
            NoOwnerAnswered: no owner answered within `timeout` seconds.
        """
        cmd = ControlCommand(
            command=command,
            job_id=job_id,
            mode=mode,
            message=message,
            force=force,
            specs=specs,
            allocation=allocation,
            user=user,
            job_class=job_class,
            limit=limit,
            wait=wait,
            priority=priority,
            message_id=message_id,
            **more,
            batch_id=batch_id,
        )
        return send_command(self.session, cmd, self.replies, timeout)
