"""Sending built jobs: one stamp, a send span and a handle per job, and the broker's confirms.

`QPUClient.submit_many` (and so every submit) ends here. Each job's ``submitted_at`` is stamped
just before the publish, after building and local checks (queue wait starts there; the jobs are
encoded with the stamp, not copied); each handle is registered before the publish, since the
owner may push its position at once, and gets its `queued_at` when the broker confirmed the job.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from brokers.tracing import time_ns_of, tracer, tracing_active
from producers.confirms import Outgoing
from producers.handle import JobHandle, PositionCallback, ProgressCallback
from producers.port import ClientPort
from producers.session import ClientSession
from producers.spans import end_send_span, send_span
from schemas.jobs import JobRequest
from schemas.wire import utc_now

_JSON_TIME = TypeAdapter(datetime)  # submitted_at as the codec writes it


def send_jobs(
    client: ClientPort,
    session: ClientSession,
    jobs: Iterable[JobRequest],
    handles: dict[str, JobHandle],
    on_progress: ProgressCallback | None = None,
    on_position: PositionCallback | None = None,
) -> list[JobHandle]:
    """Publish `jobs` on `session` and return a handle per job on `client`, each registered in
    `handles` (the client's reply inbox's) before the publish.

    Raises:
        UnknownJobClass, QueueFull, NotAuthorised, BrokerUnreachable: once every job was
        confirmed or refused, for the first refused one; the other jobs were accepted.
    """
    exchange = session.topology.jobs_exchange
    span_tracer = tracer() if tracing_active() else None
    # Queue wait starts now, after building and local validation, not when a job was built;
    # so do the send spans (the owner's spans of a job never start before its submitted_at).
    stamped_at = utc_now()
    stamp = {"submitted_at": _JSON_TIME.dump_python(stamped_at, mode="json")}
    start_ns = time_ns_of(stamped_at)
    sent, batch, sends = [], [], []
    for job in jobs:
        handle = JobHandle(job.job_id, job.job_class, job.shots, client, on_progress)
        handle.on_position = on_position  # set before the publish: a push may come at once
        headers: dict[str, Any] = {}
        if span_tracer is not None:
            span = send_span(exchange, job, headers, start_ns, span_tracer)
            handle.span_context = span.get_span_context()
            sends.append((handle.job_id, span))
        handles[job.job_id] = handle
        sent.append(handle)
        batch.append(
            Outgoing(job, exchange, job.job_class, job.job_id, job.priority, headers, None, stamp)
        )
    session.confirmed_at = {}
    try:
        confirmed_at = session.publish(batch, 30.0)
    finally:
        for job_id, span in sends:
            end_send_span(span, session.confirmed_at.get(job_id))
    for handle in sent:
        handle.queued_at = confirmed_at.get(handle.job_id)
    return sent
