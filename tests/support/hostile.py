"""Helpers of the hostile-submitter tests: publish what a hostile client would, and read
what anyone outside the owner can see (results, the event log, the dead-letter queue)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from brokers.connection import connect
from brokers.topology import Topology
from producers.client import QPUClient
from producers.errors import ResultTimeout
from schemas import CommandName, Event, JobRequest
from schemas.codec import encode
from schemas.control import ControlCommand
from schemas.reports import StatusReport
from tests.support.logread import whole_log
from tests.support.owners import OwnerProcess, wait_running
from tests.support.sequences import analog_sequence

FAST_LEASE = {"QSCHED_OWNER__LEASE_RETRY_S": "0.2"}


# ---- helpers: what anyone outside the owner can see --------------------------------------------


def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        pause.wait(0.2)


def log_events(channel: BlockingChannel, topology: Topology) -> list[Event]:
    """Every event of the namespace's stream so far (the whole log: `tests.support.logread`)."""
    return whole_log(channel, topology.events_stream)


def finals(events: list[Event]) -> Counter[str]:
    """How many final events each job has in the log."""
    return Counter(
        e.job_id for e in events if e.job_id and e.result is not None and e.result.state.is_final
    )


def dead_letters(channel: BlockingChannel, queue: str) -> dict[str, dict[str, Any]]:
    """Headers of every message now in the dead-letter queue, by message id (left in the queue)."""
    found: dict[str, dict[str, Any]] = {}
    tags = []
    while True:
        method, props, _ = channel.basic_get(queue)
        if method is None:
            break
        tags.append(method.delivery_tag)
        found[props.message_id] = dict(props.headers or {})
    if tags:
        channel.basic_nack(tags[-1], multiple=True, requeue=True)
    return found


def job_props(**overrides: Any) -> pika.BasicProperties:
    """The properties a well-behaved submitter would send, with `overrides` applied."""
    values: dict[str, Any] = {
        "content_type": "application/x-msgpack",
        "type": JobRequest.type_name(),
        "delivery_mode": 2,
        "user_id": "guest",
        "priority": 0,
    }
    return pika.BasicProperties(**(values | overrides))


def publish_job(
    channel: BlockingChannel, topology: Topology, job: JobRequest, **overrides: Any
) -> None:
    """Publish `job` as raw bytes with chosen properties (confirmed, mandatory)."""
    props = job_props(message_id=job.job_id, **overrides)
    channel.basic_publish(topology.jobs_exchange, job.job_class, encode(job), props, mandatory=True)


def new_job(shots: int = 10, job_id: str | None = None) -> JobRequest:
    """A valid production job."""
    extra = {"job_id": job_id} if job_id else {}
    return JobRequest(job_class="production", shots=shots, sequence=analog_sequence(2), **extra)


def publish_command(
    channel: BlockingChannel, topology: Topology, reply_to: str, user: str = "guest"
) -> str:
    """Publish a `status` command with a chosen reply queue; returns its id."""
    command = ControlCommand(command=CommandName.STATUS)
    props = pika.BasicProperties(
        content_type="application/x-msgpack",
        type=ControlCommand.type_name(),
        message_id=command.command_id,
        delivery_mode=2,
        user_id=user,
        reply_to=reply_to,
    )
    channel.basic_publish(
        topology.control_exchange, "control.status", encode(command), props, mandatory=True
    )
    return command.command_id


def wait_running_somewhere(client: QPUClient, job_id: str, timeout_s: float) -> StatusReport:
    """`wait_running` that also waits through a failover (no owner answering for a while)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return wait_running(client, job_id, timeout_s=max(deadline - time.monotonic(), 1.0))
        except ResultTimeout:
            if time.monotonic() > deadline:
                raise


def owner_with_id(processes: list[OwnerProcess], owner_id: str) -> OwnerProcess:
    """The process whose owner id (``host:pid:tag``) is `owner_id`."""
    pid = int(owner_id.split(":")[-2])
    (found,) = [p for p in processes if p.pid == pid]
    return found


def confirmed_channel(url: str) -> BlockingChannel:
    """A channel with publisher confirms (its connection closes with the test process)."""
    ch = connect(url, name="test-hostile").channel()
    ch.confirm_delivery()
    return ch
