"""Sessions from the SDK against a real owner: the same sessions QRMI's acquire/release open."""

from __future__ import annotations

from typing import Any

import pytest

from producers.errors import CommandRefused
from schemas.enums import ErrorCode, JobState
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.integration


def test_an_sdk_session_runs_its_jobs_refuses_them_once_closed_and_cancels_its_queue(
    owners: Any,
) -> None:
    """Given a session opened with the SDK, then its job runs; after close a job naming it is
    REJECTED (SESSION_ENDED); cancel_session cancels a second session's queued jobs."""
    owners.start("--backend", "synthetic", "--shot-rate", "50")
    client = owners.client(validate_locally=False)
    session = client.open_session()
    done = client.submit(analog_sequence(), 5, session_id=session).result(timeout=60)
    assert done.state is JobState.DONE
    assert "closed" in client.close_session(session)
    late = client.submit(analog_sequence(), 5, session_id=session).result(timeout=60)
    assert late.state is JobState.REJECTED and late.error is not None
    assert late.error.code is ErrorCode.SESSION_ENDED
    other = client.open_session()
    blocker = client.submit(analog_sequence(), 2000)
    queued = [client.submit(analog_sequence(), 5, session_id=other) for _ in range(2)]
    assert "2 queued job(s) canceled" in client.cancel_session(other)
    assert [h.result(timeout=60).state for h in queued] == [JobState.CANCELED] * 2
    blocker.cancel()
    with pytest.raises(CommandRefused):
        client.close_session("no-such-session")
