"""Reading the event log from a client: operators only (submitters get 403 on the stream).

The owner answers results and histories without a scan (`producers.results`); this is the
fallback when no owner answers, or when a caller asks for a result from a given offset or time.
"""

from __future__ import annotations

from brokers.connection import ACCESS_REFUSED, channel, translated
from brokers.errors import ChannelClosed
from brokers.stream import Offset, events_of, read_stream
from producers.errors import NotAuthorised
from schemas.jobs import JobResult


def scan_for_result(
    url: str, stream: str, job_id: str, since: Offset, max_bytes: int, user: str
) -> JobResult | None:
    """The last result of `job_id` in the log from `since` on (None: none there).

    Raises:
        NotAuthorised: `user` may not read the event log.
    """
    found = None
    with channel(url, name="qsched-fetch-result") as ch:
        try:
            with translated(f"read {stream}"):
                for record in read_stream(ch, stream, since):
                    for event in events_of(record, max_bytes):
                        if event.job_id == job_id and event.result is not None:
                            found = event.result
        except ChannelClosed as exc:
            if exc.code != ACCESS_REFUSED:
                raise
            raise NotAuthorised(
                f"user {user!r} may not read the event log (operators only); "
                "results of your own jobs arrive on your reply queue"
            ) from exc
    return found
