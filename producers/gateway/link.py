"""The gateway's side of the AMQP contract: jobs and commands sent for a verified user.

The gateway connects as its own broker user (one the policy names in ``gateway_users``) and
names the user it acts for in the ``x-on-behalf-of`` header of every job and command; the owner
takes that user as the sender (`consumers.deliveries.acting_user`), so each job is a normal job
of that user under the full policy, and each command is authorised as that user's.

`QPUClient` is not thread-safe, so each of the gateway's worker threads has its own
(`OwnerLink.client`, opened on first use): its own connection and reply queue, on which the
owner's receipts, results and command replies for that thread's requests arrive. Nothing here is
remembered between requests: sessions and jobs are the owner's.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from brokers.connection import channel
from brokers.settings import Settings
from producers.client import QPUClient
from producers.confirms import Outgoing
from producers.errors import NoOwnerAnswered
from schemas.codec import decode
from schemas.enums import CommandName
from schemas.errors import DecodeError
from schemas.messages import ControlCommand, ControlReply, DeviceSpecs, JobRequest, JobResult
from schemas.policy import Policy

ON_BEHALF_OF = "x-on-behalf-of"  # the owner's name for it: consumers.deliveries.ON_BEHALF_OF
DEVICE_CACHE_S = 5.0
KEPT_RESULTS = 1000  # results the owner pushes to a thread's queue; the gateway asks, not keeps


class OwnerLink:
    """Sends jobs and commands for a user and waits for the owner's answer.

    Args:
        settings: broker URL (the gateway's own account), namespace, gateway settings.
        policy: the policy (class names for the client's errors).
    """

    def __init__(self, settings: Settings, policy: Policy) -> None:
        self.settings = settings
        self.policy = policy
        self.timeout_s = settings.gateway.reply_timeout_s
        self._local = threading.local()
        self._clients: list[QPUClient] = []
        self._lock = threading.Lock()
        self._device: tuple[float, str | None] | None = None

    def client(self) -> QPUClient:
        """This thread's client (opened on first use)."""
        found: QPUClient | None = getattr(self._local, "client", None)
        if found is None:
            found = QPUClient(settings=self.settings, policy=self.policy, validate_locally=False)
            self._local.client = found
            with self._lock:
                self._clients.append(found)
        return found

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    # ---- jobs ----------------------------------------------------------------------------------

    def submit(self, user: str, job: JobRequest) -> int | JobResult:
        """Publish `job` (built with ``receipt=True``) for `user` and wait until the owner
        accepted it (its number) or refused it (the REJECTED result).

        Raises:
            NoOwnerAnswered: no answer within the reply timeout (the job may still be accepted).
            UnknownJobClass, QueueFull, NotAuthorised, BrokerUnreachable: from the publish.
        """
        client = self.client()
        inbox = client.inbox
        _forget_old(inbox.results)
        client.session.publish(
            [
                Outgoing(
                    job,
                    client.topology.jobs_exchange,
                    job.job_class,
                    job.job_id,
                    job.priority,
                    {ON_BEHALF_OF: user},
                )
            ]
        )
        deadline = time.monotonic() + self.timeout_s
        while True:
            number = inbox.receipts.pop(job.job_id, None)
            if number is not None:
                inbox.results.pop(job.job_id, None)
                return number
            result = inbox.results.pop(job.job_id, None)
            if result is not None:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoOwnerAnswered(
                    f"the owner did not accept job {job.job_id} within {self.timeout_s:g} s"
                )
            client.poll(min(left, 0.5))

    # ---- commands ------------------------------------------------------------------------------

    def command(self, user: str | None, name: CommandName, **fields: Any) -> ControlReply:
        """Send command `name` as `user` (None: as the gateway itself) and wait for the reply.

        Raises:
            NoOwnerAnswered: no owner answered within the reply timeout.
        """
        client = self.client()
        command = ControlCommand(command=name, **fields)
        headers = {ON_BEHALF_OF: user} if user is not None else {}
        outgoing = Outgoing(
            command,
            client.topology.control_exchange,
            f"control.{name.value}",
            command.command_id,
            headers=headers,
            expiration_ms=max(int(self.timeout_s * 1000), 1),
        )
        client.session.publish([outgoing])
        deadline = time.monotonic() + self.timeout_s
        replies = client.replies
        while command.command_id not in replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoOwnerAnswered(
                    f"no QPU owner answered {name.value} within {self.timeout_s:g} s"
                )
            client.poll(min(left, 0.5))
        return replies.pop(command.command_id)

    def device_json(self) -> str | None:
        """The Pulser device the owner publishes (abstract-repr JSON), cached a few seconds."""
        cached = self._device
        if cached is not None and time.monotonic() - cached[0] < DEVICE_CACHE_S:
            return cached[1]
        client = self.client()
        found: str | None = None
        with channel(client.session.credentialed_url(), name="qsched-gateway-device") as ch:
            method, props, body = ch.basic_get(client.topology.device_queue)
            if method is not None:
                ch.basic_nack(method.delivery_tag, requeue=True)
                try:
                    found = decode(body, props.type, DeviceSpecs).device
                except DecodeError:
                    found = None
        self._device = (time.monotonic(), found)
        return found


def _forget_old(results: dict[str, JobResult]) -> None:
    """Drop the oldest results the owner pushed (each job's submitter queue is a thread's)."""
    while len(results) > KEPT_RESULTS:
        del results[next(iter(results))]
