"""Finding a job id from the first characters people copy from a timeline or a table."""

from __future__ import annotations

from brokers.connection import channel
from brokers.stream import read_stream
from producers.errors import ClientError
from schemas.codec import decode
from schemas.errors import DecodeError
from schemas.messages import Event

FULL_ID_LENGTH = 36
MIN_PREFIX = 4
SHOWN_MATCHES = 3


class UnknownJob(ClientError):
    """No job id in the event log starts with the given characters."""

    hint = "copy the id from `qsched submit` or `qsched status`"


class AmbiguousJob(ClientError):
    """Several job ids in the event log start with the given characters."""

    hint = "give more characters of the id"


def job_ids_in_log(url: str, stream: str, max_bytes: int) -> set[str]:
    """Every job id named by an event in the log."""
    found: set[str] = set()
    with channel(url, name="qsched-lookup") as ch:
        for record in read_stream(ch, stream, "first"):
            try:
                event = decode(record.body, record.properties.type, Event, max_bytes)
            except DecodeError:
                continue
            if event.job_id:
                found.add(event.job_id)
    return found


def resolve_prefix(prefix: str, known: set[str]) -> str:
    """The one id in `known` that starts with `prefix`.

    Raises:
        UnknownJob: none does.
        AmbiguousJob: several do; the message lists a few.
    """
    matches = sorted(j for j in known if j.startswith(prefix))
    if not matches:
        raise UnknownJob(f"no job id starting with {prefix!r} in the event log")
    if len(matches) > 1:
        shown = ", ".join(matches[:SHOWN_MATCHES])
        raise AmbiguousJob(f"{prefix!r} matches {len(matches)} jobs ({shown}, ...)")
    return matches[0]


def resolve_job_id(url: str, stream: str, job_id: str, max_bytes: int) -> str:
    """`job_id` itself when it is a full id, else the one logged id it is a prefix of.

    Raises:
        UnknownJob, AmbiguousJob: see `resolve_prefix`; also for prefixes under 4 characters.
    """
    if len(job_id) >= FULL_ID_LENGTH:
        return job_id
    if len(job_id) < MIN_PREFIX:
        raise AmbiguousJob(f"{job_id!r} is too short to name a job")
    return resolve_prefix(job_id, job_ids_in_log(url, stream, max_bytes))
