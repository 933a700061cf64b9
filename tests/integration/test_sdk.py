"""The submitter SDK against a real owner: waiting on many jobs, pushed progress, the Pulser
connection built from a URL and a namespace."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from brokers.errors import QschedError
from producers import (
    FIRST_COMPLETED,
    InvalidJob,
    JobProgress,
    QPUClient,
    QSchedConnection,
    QueueEntry,
    as_completed,
    wait,
)
from schemas import CommandName, JobState
from schemas.wire import utc_now
from tests.conftest import BrokerFixture, OwnerHarness
from tests.support.sequences import analog_sequence

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


def test_queue_wait_starts_at_the_publish_and_the_pulser_connection_takes_a_url(
    owners: OwnerHarness,
) -> None:
    """Given a job built an hour ago, its queue wait starts when it is published (not when it was
    built) and its handle knows when the broker confirmed it; `QSchedConnection(url=...,
    namespace=...)` reaches the same owner."""
    owners.start("--backend", "synthetic")
    client = owners.client()
    built = client.build_job(analog_sequence(2), 5, job_class="development")
    built = built.model_copy(update={"submitted_at": utc_now() - timedelta(hours=1)})
    before = utc_now()
    handle = client.submit_request(built)
    assert handle.queued_at is not None and before <= handle.queued_at <= utc_now()
    timings = handle.result(timeout=30).timings
    assert timings.submitted_at is not None and before <= timings.submitted_at <= handle.queued_at
    assert before <= timings.queued_at  # the owner accepted it after it was published
    assert timings.queue_wait_s is not None and timings.queue_wait_s < 60
    settings = owners.broker.settings
    with QSchedConnection(url=settings.amqp_url, namespace=settings.namespace) as connection:
        owners.broker.forget_queue(connection.client.reply_queue_name)
        assert connection.client.topology.namespace == settings.namespace
        devices = connection.fetch_available_devices()
        assert len(devices) == 1
    with pytest.raises(ValueError, match="either a client"):
        QSchedConnection(owners.client(), url=settings.amqp_url)


def test_a_job_is_told_its_place_in_line_as_it_moves_up_then_that_it_runs(
    owners: OwnerHarness,
) -> None:
    """Given two jobs ahead of it while the QPU is paused, a job submitted with `on_position` is
    told position 3 by the owner without asking, then a smaller position as the jobs ahead run,
    then once that it is RUNNING; a job that did not ask is told nothing."""
    owners.start("--backend", "synthetic", "--shot-rate", "100")
    client = owners.client()
    assert client.control(CommandName.PAUSE).ok
    ahead = [client.submit(analog_sequence(2), 150, job_class="development") for _ in range(2)]
    told: list[QueueEntry] = []
    watcher = client.submit(
        analog_sequence(2), 150, job_class="development", on_position=told.append
    )
    while not told:  # the owner pushes at most every second; bounded by the test timeout
        client.poll(0.2)
    assert (told[0].job_id, told[0].position, told[0].state) == (watcher.job_id, 3, JobState.QUEUED)
    assert client.control(CommandName.RESUME).ok
    assert watcher.result(timeout=60).state is JobState.DONE
    positions = [entry.position for entry in told]
    assert positions == sorted(positions, reverse=True) and 1 in positions, positions
    assert told[-1].state is JobState.RUNNING and told[-1].position == 0
    assert watcher.last_position == told[-1]
    assert all(h.last_position is None for h in ahead)


def test_arguments_no_job_may_have_raise_the_sdks_own_error(broker: BrokerFixture) -> None:
    """Given a client, when a job or batch is submitted with 0 shots, a priority of 10 or a class
    in capitals, then it raises `InvalidJob` (a `QschedError`, the SDK's own), naming the field,
    and nothing is published (before: pydantic's ValidationError came out of `submit`)."""
    client = QPUClient(settings=broker.settings)
    try:
        for kwargs, field in (
            ({"shots": 0}, "shots"),
            ({"shots": 5, "priority": 10}, "priority"),
            ({"shots": 5, "job_class": "Production"}, "job_class"),
        ):
            with pytest.raises(InvalidJob) as info:
                client.submit(analog_sequence(2), **kwargs)
            assert isinstance(info.value, QschedError)
            assert not isinstance(info.value, ValidationError)
            assert info.value.error.field == field, info.value.error
            assert str(info.value).startswith(f"{field}: "), info.value
        with pytest.raises(InvalidJob, match="shots"):
            client.submit_batch(analog_sequence(2), [{"runs": 0}])
    finally:
        client.close(delete_reply_queue=True)
    for job_class in ("development", "production"):
        depth = broker.channel().queue_declare(broker.topology.job_queue(job_class), passive=True)
        assert depth.method.message_count == 0
