"""The gateway's side of the AMQP contract: jobs and commands sent for a verified user.

The gateway connects as its own broker user (one the policy names in ``gateway_users``) and
names the user it acts for in the ``x-on-behalf-of`` header of every job and command; the owner
takes that user as the sender (`consumers.owner.deliveries.acting_user`), so each job is a normal job
of that user under the full policy, and each command is authorised as that user's.

`QPUClient` is not thread-safe, so each of the gateway's worker threads has its own
(`OwnerLink.client`, opened on first use): its own connection and reply queue, on which the
owner's receipts, results and command replies for that thread's requests arrive. Sessions and
jobs are the owner's; the one thing kept between requests is a bounded cache of what the owner
already said and never changes: each job's number and submitter (from its receipt) and the
final results the owner pushes to the thread that submitted the job. A status poll of an ended
job of that user is answered from it without a round trip to the owner (QRMI polls
``task_status`` back to back); anything else, or after a restart, is asked of the owner, so
every gateway gives the same answers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from brokers.connection import channel
from brokers.settings import Settings
from brokers.stream import fetch_last_record
from producers.client import QPUClient
from producers.confirms import Outgoing
from producers.errors import NoOwnerAnswered
from schemas.codec import decode
from schemas.control import ControlCommand, ControlReply
from schemas.enums import CommandName
from schemas.errors import DecodeError
from schemas.jobs import JobRequest, JobResult
from schemas.messages import DeviceSpecs
from schemas.policy import Policy

ON_BEHALF_OF = "x-on-behalf-of"  # the owner's name for it: consumers.owner.deliveries.ON_BEHALF_OF
DEVICE_CACHE_S = 5.0
KEPT_RESULTS = 10_000  # job numbers and final results kept (the owner is asked for older ones)


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
        self._numbers: OrderedDict[int, tuple[str, str]] = OrderedDict()  # -> (user, job id)
        self._finished: OrderedDict[str, JobResult] = OrderedDict()  # job id -> final result

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
                with self._lock:
                    _remember(self._numbers, number, (user, job.job_id))
                self._keep_results(client)
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

    def finished(self, user: str, number: int) -> JobResult | None:
        """The final result of job `number` of `user` if the owner already pushed it here
        (None: not known to have ended; ask the owner)."""
        with self._lock:
            known = self._numbers.get(number)
        if known is None or known[0] != user:
            return None
        client = self.client()
        client.poll(0)  # take what arrived on this thread's queue
        self._keep_results(client)
        with self._lock:
            return self._finished.get(known[1])

    def _keep_results(self, client: QPUClient) -> None:
        """Move the results the owner pushed to this thread's queue to the shared cache."""
        results = client.inbox.results
        if not results:
            return
        with self._lock:
            while results:
                job_id, result = results.popitem()
                _remember(self._finished, job_id, result)

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
            record = fetch_last_record(ch.connection, client.topology.device_queue, 1.0, 0.05)
            if record is not None:
                try:
                    found = decode(record.body, record.properties.type, DeviceSpecs).device
                except DecodeError:
                    found = None
        self._device = (time.monotonic(), found)
        return found


def _remember(kept: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    """Keep `value` under `key`, forgetting the oldest past `KEPT_RESULTS`."""
    kept[key] = value
    kept.move_to_end(key)
    while len(kept) > KEPT_RESULTS:
        kept.popitem(last=False)
