"""The owner as a real process against a real RabbitMQ: order, control, results and events."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import msgpack
import pika
import pytest

from brokers.topology import CODE_HEADER, REASON_HEADER
from schemas import CommandName, ErrorCode, Event, JobRequest, JobState, Mode, QPUState
from schemas.reservations import Reservation
from schemas.wire import utc_now
from tests.conftest import OwnerHarness
from tests.support.logread import whole_log
from tests.support.owners import wait_running
from tests.support.sequences import analog_sequence, mock_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
SHARED_OWNER_ARGS = ("--backend", "synthetic", "--shot-rate", "100")  # `shared_owner`


def events(owners: OwnerHarness) -> list[Event]:
    """Every event in the namespace's stream so far (`tests.support.logread`: the whole log, not the
    prefix a pause of the broker would cut)."""
    return whole_log(owners.broker.channel(), owners.broker.topology.events_stream)


def test_results_follow_class_rank_then_priority_then_age(owners: OwnerHarness) -> None:
    """Given a paused owner and a mixed backlog, when resumed, jobs start in policy order."""
    owners.start("--backend", "synthetic")
    client = owners.client()
    assert client.control(CommandName.PAUSE).ok
    plan = [
        ("development", 0),
        ("development", 9),
        ("production", 0),
        ("development", 5),
        ("production", 3),
        ("calibration", 0),
        ("production", 3),
        ("production", 9),
        ("development", 1),
        ("calibration", 2),
    ]
    handles = [client.submit(analog_sequence(2), 10, job_class=c, priority=p) for c, p in plan]
    assert client.control(CommandName.RESUME).ok
    results = [h.result(timeout=30) for h in handles]
    started = sorted(results, key=lambda r: r.timings.started_at)
    rank = {"calibration": 0, "production": 1, "development": 2}
    submitted = {h.job_id: i for i, h in enumerate(handles)}
    expected = sorted(
        results,
        key=lambda r: (rank[r.job_class], -plan[submitted[r.job_id]][1], submitted[r.job_id]),
    )
    got = [(r.job_class, plan[submitted[r.job_id]][1], submitted[r.job_id]) for r in started]
    assert [r.job_id for r in started] == [r.job_id for r in expected], got
    assert all(r.state is JobState.DONE and sum(r.counts.values()) == 10 for r in results)


def test_a_higher_priority_job_published_behind_a_full_window_goes_next(
    shared_owner: OwnerHarness,
) -> None:
    """Given the owner holds a full window of low jobs, an urgent one still starts next."""
    client = shared_owner.client()
    first = client.submit(analog_sequence(2), 200, job_class="development")  # runs ~2 s
    wait_running(client, first.job_id)
    lows = [client.submit(analog_sequence(2), 10, job_class="development") for _ in range(6)]
    urgent = client.submit(analog_sequence(2), 10, job_class="development", priority=9)
    results = {h.job_id: h.result(timeout=30) for h in [first, *lows, urgent]}
    order = sorted(results.values(), key=lambda r: r.timings.started_at)
    names = {first.job_id: "first", urgent.job_id: "urgent"} | {
        h.job_id: f"low{i}" for i, h in enumerate(lows)
    }
    assert [names[r.job_id] for r in order][:2] == ["first", "urgent"], [
        names[r.job_id] for r in order
    ]


def test_emulator_counts_sum_to_the_shots_asked_for(owners: OwnerHarness) -> None:
    owners.start("--backend", "emulator")
    client = owners.client()
    result = client.submit(analog_sequence(3), 333).result(timeout=60)
    assert result.state is JobState.DONE
    assert sum(result.counts.values()) == 333
    assert all(len(bits) == 3 for bits in result.counts)
    assert result.backend == "emulator"
    assert result.timings.execution_s is not None


def test_pause_resume_drain_mode_and_status_round_trip(owners: OwnerHarness) -> None:
    owners.start("--backend", "synthetic")
    client = owners.client()
    paused = client.control(CommandName.PAUSE)
    assert paused.ok and "PAUSED" in paused.message
    held = client.submit(analog_sequence(2), 10, job_class="production")
    status = client.control(CommandName.STATUS).status
    assert status is not None and status.qpu_state is QPUState.PAUSED
    assert status.queue_depth["production"] == 1
    assert not held.done()
    assert client.control(CommandName.RESUME).ok
    assert held.result(timeout=30).state is JobState.DONE
    assert client.control(CommandName.DRAIN).ok
    drained = client.submit(analog_sequence(2), 10, job_class="production")
    assert client.control(CommandName.STATUS).status.qpu_state is QPUState.DRAINING
    assert not drained.done()
    assert client.control(CommandName.RESUME).ok
    assert drained.result(timeout=30).state is JobState.DONE
    topics = [e.topic for e in events(owners)]
    assert {
        "control.pause",
        "control.resume",
        "control.drain",
        "job.accepted",
        "job.started",
        "job.done",
    } <= set(topics)


def test_maintenance_holds_user_jobs_and_shows_its_message(owners: OwnerHarness) -> None:
    owners.start("--backend", "synthetic")
    client = owners.client()
    reply = client.control(
        CommandName.MODE, mode=Mode.MAINTENANCE, message="laser realignment until 14:00"
    )
    assert reply.ok
    user_job = client.submit(analog_sequence(2), 10, job_class="production")
    calibration = client.submit(analog_sequence(2), 10, job_class="calibration")
    assert calibration.result(timeout=30).state is JobState.DONE
    status = client.control(CommandName.STATUS).status
    assert status.mode is Mode.MAINTENANCE
    assert status.mode_message == "laser realignment until 14:00"
    assert status.queue_depth["production"] == 1
    assert "maintenance" in (status.last_decision or "")
    assert not user_job.done()
    assert client.control(CommandName.MODE, mode=Mode.PRODUCTION).ok
    assert user_job.result(timeout=30).state is JobState.DONE


def test_cancel_a_queued_and_a_running_job(shared_owner: OwnerHarness) -> None:
    client = shared_owner.client()
    running = client.submit(analog_sequence(2), 2000, job_class="production")  # ~20 s
    queued = client.submit(analog_sequence(2), 10, job_class="production")
    progressed = []
    running.on_progress = progressed.append
    deadline = time.monotonic() + 30
    while not progressed:
        assert time.monotonic() < deadline, "no progress from the running job within 30 s"
        client.poll(0.5)
    assert client.control(CommandName.CANCEL, job_id=queued.job_id).ok
    assert client.control(CommandName.CANCEL, job_id=running.job_id).ok
    canceled_queued = queued.result(timeout=10)
    canceled_running = running.result(timeout=10)
    for result in (canceled_queued, canceled_running):
        assert result.state is JobState.CANCELED
        assert result.error is not None and result.error.code is ErrorCode.CANCELED_BY_OPERATOR
    assert 0 < sum(canceled_running.counts.values()) < 2000
    assert client.control(CommandName.STATUS).status.running is None


def test_control_from_a_non_operator_is_refused(owners: OwnerHarness, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('operators = ["ops-team"]\n')
    owners.start("--backend", "synthetic", "--policy", str(policy))
    client = owners.client()
    reply = client.control(CommandName.PAUSE)
    assert not reply.ok
    assert reply.error is not None and reply.error.code is ErrorCode.NOT_AUTHORISED
    job = client.submit(analog_sequence(2), 10, job_class="production")
    assert job.result(timeout=30).state is JobState.DONE  # still dispatching: the pause was refused
    refused = [e for e in events(owners) if e.topic == "control.pause"]
    assert refused and refused[0].data["ok"] is False
    # budgets and reservations too (issue 22): refused, logged with the sender
    start = utc_now() + timedelta(hours=1)
    window = Reservation(name="w", start=start, end=start + timedelta(hours=1), accounts=("a",))
    for name, fields in (
        (CommandName.BUDGET_SET, {"account": "a", "seconds": 10.0, "period": "month"}),
        (CommandName.RESERVATION_CREATE, {"reservation": window}),
    ):
        reply = client.control(name, **fields)
        assert reply.error is not None and reply.error.code is ErrorCode.NOT_AUTHORISED, name
        [logged] = [e for e in events(owners) if e.topic == f"control.{name.value}"]
        assert logged.data["ok"] is False and logged.user == client.user


def _raw_publish(
    owners: OwnerHarness, body: bytes, type_name: str, message_id: str, reply_to: str
) -> None:
    ch = owners.broker.channel()
    ch.confirm_delivery()
    props = pika.BasicProperties(
        content_type="application/x-msgpack",
        type=type_name,
        message_id=message_id,
        delivery_mode=2,
        reply_to=reply_to,
        user_id="guest",
    )
    ch.basic_publish(
        owners.broker.topology.jobs_exchange, "production", body, props, mandatory=True
    )


def test_garbage_wrong_version_and_invalid_sequence_are_dead_lettered_and_answered(
    shared_owner: OwnerHarness,
) -> None:
    client = shared_owner.client(validate_locally=False)  # the owner's own checks are under test
    reply_to = client.reply_queue_name
    good = JobRequest(job_class="production", shots=10, sequence=analog_sequence(2))
    _raw_publish(
        shared_owner, b"\xc1\xff not msgpack", JobRequest.type_name(), "garbage-1", reply_to
    )
    body = msgpack.packb(good.model_dump(mode="json") | {"job_id": "v2-job"})
    _raw_publish(shared_owner, body, "qsched.JobRequest/2", "v2-job", reply_to)
    bad_seq = JobRequest(
        job_class="production", shots=10, sequence=mock_sequence({"a": (0.0, 0.0), "b": (1.0, 0.0)})
    )
    handle_bad = client.submit_request(bad_seq)
    too_many = client.submit(analog_sequence(2), 100_000, job_class="production")
    handle_good = client.submit_request(good)
    assert handle_good.result(timeout=30).state is JobState.DONE
    garbage = client.wait_result("garbage-1", timeout=10)
    assert garbage.state is JobState.REJECTED and garbage.error.code is ErrorCode.DECODE_ERROR
    wrong_version = client.wait_result("v2-job", timeout=10)
    assert wrong_version.error.code is ErrorCode.UNSUPPORTED_VERSION
    invalid = handle_bad.result(timeout=10)
    assert invalid.error.code is ErrorCode.INVALID_SEQUENCE
    assert invalid.error.details["pairs"][0]["atoms"] == ["a", "b"]
    assert too_many.result(timeout=10).error.code is ErrorCode.TOO_MANY_SHOTS
    ch = shared_owner.broker.channel()
    dead = {}
    for method, props, _ in ch.consume(
        shared_owner.broker.topology.dead_queue, inactivity_timeout=2
    ):
        if method is None:
            break
        deaths = (props.headers or {}).get("x-death") or [{}]
        if deaths[0].get("reason") == "expired":  # commands no owner answered in time (by design)
            continue
        dead[props.message_id] = props.headers
    mine = {"garbage-1", "v2-job", bad_seq.job_id, too_many.job_id, good.job_id}
    assert set(dead) & mine == mine - {good.job_id}  # (other tests of the owner may add theirs)
    assert dead["v2-job"][CODE_HEADER] == "UNSUPPORTED_VERSION"
    assert "atoms too close" in dead[bad_seq.job_id][REASON_HEADER]


def test_a_job_redelivered_after_it_finished_is_not_rerun_and_its_result_stays_in_the_log(
    owners: OwnerHarness,
) -> None:
    """Given a job that finished under a first owner, when the broker redelivers a copy of it to
    a new owner (published again while no owner ran, then handed back unacked, so it arrives
    with the redelivered flag), the new owner consumes the copy without running it, and the
    result the copy's sender finds in the event log is the first one."""
    owners.start("--backend", "synthetic")
    job = JobRequest(job_class="production", shots=10, sequence=analog_sequence(2))
    first = owners.client().submit_request(job).result(timeout=30)
    assert owners.owners[0].stop() == 0
    other = owners.client()  # its own reply queue: nothing it receives came from the first run
    other.submit_request(job)
    queue = owners.broker.topology.job_queue("production")
    ch = owners.broker.channel()
    method, _, _ = ch.basic_get(queue)
    assert method is not None and not method.redelivered
    ch.basic_nack(method.delivery_tag, requeue=True)
    redelivered = wait_until(
        lambda: ch.basic_get(queue)[0], "the handed-back copy ready in its queue again"
    )
    assert redelivered.redelivered
    ch.basic_nack(redelivered.delivery_tag, requeue=True)
    owners.start("--backend", "synthetic")
    topics = wait_until(
        lambda: (
            "job.duplicate" in (t := [e.topic for e in events(owners) if e.job_id == job.job_id])
            and t
        ),
        "the new owner logging the redelivered copy as a duplicate",
    )
    assert other.fetch_result(job.job_id) == first
    assert topics.count("job.started") == 1
    assert topics.count("job.done") == 1
    assert "job.duplicate" in topics
    assert owners.broker.channel().queue_declare(queue, passive=True).method.message_count == 0


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_heartbeats_keep_flowing_during_a_long_job(owners: OwnerHarness) -> None:
    """Given a 2 s heartbeat, a 10 s emulated job ends DONE on the same connection."""
    owners.start(
        "--backend", "emulator", "--shot-rate", "100", env={"QSCHED_BROKER__HEARTBEAT_S": "2"}
    )
    client = owners.client()
    before = client.control(CommandName.STATUS).status.owner_id
    result = client.submit(analog_sequence(3), 1000, job_class="production").result(timeout=60)
    assert result.state is JobState.DONE and sum(result.counts.values()) == 1000
    assert result.timings.execution_s >= 9.0
    assert client.control(CommandName.STATUS).status.owner_id == before
    assert "lost the broker" not in owners.owners[0].log()
    assert [e.topic for e in events(owners)].count("owner.activated") == 1


def test_a_submitter_not_allowed_in_a_class_is_rejected(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[classes.production]\nrank = 1\nsubmitters = ["alice"]\n[classes.development]\nrank = 2\n'
    )
    owners.start("--backend", "synthetic", "--policy", str(policy))
    client = owners.client()
    refused = client.submit(analog_sequence(2), 10, job_class="production").result(timeout=30)
    assert refused.state is JobState.REJECTED
    assert refused.error.code is ErrorCode.NOT_AUTHORISED and "guest" in refused.error.message
    assert (
        client.submit(analog_sequence(2), 10, job_class="development").result(timeout=30).state
        is JobState.DONE
    )


POLICY_TEXT = """
[classes.calibration]
rank = 0
[classes.production]
rank = 1
[classes.development]
rank = 2
modes = {modes}
"""


def test_reload_policy_applies_a_good_file_and_refuses_a_bad_one(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY_TEXT.format(modes='["production", "development"]'))
    owners.start("--backend", "synthetic", "--policy", str(policy))
    client = owners.client()
    assert (
        client.submit(analog_sequence(2), 10, job_class="development").result(timeout=30).state
        is JobState.DONE
    )
    policy.write_text(POLICY_TEXT.format(modes='["development"]'))
    reloaded = client.control(CommandName.RELOAD_POLICY)
    assert reloaded.ok, reloaded.message
    held = client.submit(analog_sequence(2), 10, job_class="development")
    status = client.control(CommandName.STATUS).status
    assert "production mode does not run development jobs" in (status.last_decision or "")
    policy.write_text("[classes.development\nrank = 2\n")
    bad = client.control(CommandName.RELOAD_POLICY)
    assert not bad.ok and "line 1" in bad.message
    policy.write_text(POLICY_TEXT.format(modes='["production"]') + "[classes.extra]\nrank = 3\n")
    more = client.control(CommandName.RELOAD_POLICY)
    assert not more.ok and "restart the owner" in more.message
    assert not held.done()  # the refused files changed nothing
    policy.write_text(POLICY_TEXT.format(modes='["production", "development"]'))
    assert client.control(CommandName.RELOAD_POLICY).ok
    assert held.result(timeout=30).state is JobState.DONE
