"""The submitter SDK against a real owner: waiting on many jobs, pushed progress, the Pulser
connection built from a URL and a namespace."""

from __future__ import annotations

import pytest

from producers import FIRST_COMPLETED, JobProgress, QSchedConnection, as_completed, wait
from schemas import CommandName, JobState
from tests.conftest import OwnerHarness
from tests.sequences import analog_sequence

pytestmark = pytest.mark.integration


def test_whichever_job_finishes_first_is_seen_first_with_progress_pushed(
    owners: OwnerHarness,
) -> None:
    """Given a long job and an urgent short one, `wait(FIRST_COMPLETED)` returns with the short
    one alone, `as_completed` yields it first, and the long job's progress arrives unasked."""
    owners.start("--backend", "synthetic", "--shot-rate", "200")
    client = owners.client()
    assert client.control(CommandName.PAUSE).ok
    progressed: list[JobProgress] = []
    long = client.submit(
        analog_sequence(2), 400, job_class="development", on_progress=progressed.append
    )  # ~2 s
    short = client.submit(analog_sequence(2), 5, job_class="development", priority=9)
    assert client.control(CommandName.RESUME).ok
    done, not_done = wait({long, short}, timeout=30, return_when=FIRST_COMPLETED)
    assert done == {short} and not_done == {long}
    assert [h.job_id for h in as_completed([long, short], timeout=30)] == [
        short.job_id,
        long.job_id,
    ]
    assert long.result(timeout=1).state is JobState.DONE
    assert progressed and all(p.job_id == long.job_id for p in progressed)
    assert [p.shots_done for p in progressed] == sorted(p.shots_done for p in progressed)
    assert 0 < progressed[-1].shots_done < 400


def test_qsched_connection_from_a_url_and_a_namespace(owners: OwnerHarness) -> None:
    owners.start("--backend", "synthetic")
    settings = owners.broker.settings
    with QSchedConnection(url=settings.amqp_url, namespace=settings.namespace) as connection:
        owners.broker.forget_queue(connection.client.reply_queue_name)
        assert connection.client.topology.namespace == settings.namespace
        devices = connection.fetch_available_devices()
        assert len(devices) == 1
    with pytest.raises(ValueError, match="either a client"):
        QSchedConnection(owners.client(), url=settings.amqp_url)
