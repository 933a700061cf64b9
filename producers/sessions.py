"""Sessions from the SDK: the same owner-state sessions as QRMI's acquire/release and Pulser's
open batches (`consumers.core.sessions`), sent with `OwnerCommands.control`. Mixed into
`QPUClient`."""

from __future__ import annotations

import uuid

from producers.commands import OwnerCommands
from producers.errors import CommandRefused
from schemas.control import ControlReply
from schemas.enums import CommandName


class SessionCommands(OwnerCommands):
    """`open_session`, `close_session`, `cancel_session` on a client's `control`."""

    def open_session(
        self,
        *,
        job_class: str = "production",
        allocation: str | None = None,
        max_time_s: float | None = None,
        idle_timeout_s: float | None = None,
        timeout: float = 10.0,
    ) -> str:
        """Open a session of this user (in Slurm allocation `allocation`) and return its id;
        submit its jobs with ``session_id=``. Its length and idle timeout are capped by the
        policy's ``[sessions]``; `job_class` names the class whose exclusivity it gets.

        Raises:
            CommandRefused: the owner refused (e.g. the allocation ended, is not registered, or
                is another user's).
            NoOwnerAnswered: no owner answered within `timeout` seconds.
        """
        session_id = str(uuid.uuid4())
        reply = self.control(
            CommandName.SESSION_OPEN,
            session_id=session_id,
            job_class=job_class,
            allocation=allocation,
            max_time_s=max_time_s,
            idle_timeout_s=idle_timeout_s,
            timeout=timeout,
        )
        _raise_unless_ok(reply)
        return session_id

    def close_session(self, session_id: str, timeout: float = 10.0) -> str:
        """Close a session: no new jobs; its queued and running jobs finish. The owner's word."""
        reply = self.control(CommandName.SESSION_CLOSE, session_id=session_id, timeout=timeout)
        _raise_unless_ok(reply)
        return reply.message

    def cancel_session(self, session_id: str, timeout: float = 10.0) -> str:
        """Cancel a session: no new jobs, and its queued jobs are canceled. The owner's word."""
        reply = self.control(CommandName.SESSION_CANCEL, session_id=session_id, timeout=timeout)
        _raise_unless_ok(reply)
        return reply.message


def _raise_unless_ok(reply: ControlReply) -> None:
    if not reply.ok:
        raise CommandRefused(reply.message, reply.error)
