"""The client SDK and the CLI against a real broker and a real owner process."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pika.exceptions
import pytest

from brokers.topology import build_topology
from producers.client import QPUClient, slurm_context
from producers.errors import BrokerUnreachable, InvalidJob, QueueFull, UnknownJobClass
from schemas import CommandName, ErrorCode, JobState, Policy
from tests.conftest import BrokerFixture, OwnerHarness, make_settings
from tests.integration.test_owner import events
from tests.support.environment import client_env, run_group
from tests.support.owners import QSCHED, register_allocation
from tests.support.sequences import analog_sequence, mock_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_submit_returns_a_result_whose_counts_sum_to_the_shots(owners: OwnerHarness) -> None:
    owners.start("--backend", "emulator")
    client = owners.client()
    handle = client.submit(analog_sequence(3), 150, job_class="development", priority=3)
    assert handle.status() in (JobState.QUEUED, JobState.RUNNING, JobState.DONE)
    result = handle.result(timeout=60)
    assert result.state is JobState.DONE and sum(result.counts.values()) == 150
    assert handle.status() is JobState.DONE


def test_submit_many_pipelines_and_every_job_completes(shared_owner: OwnerHarness) -> None:
    client = shared_owner.client()
    jobs = [client.build_job(analog_sequence(2), 5, job_class="development") for _ in range(200)]
    handles = client.submit_many(jobs)
    results = [h.result(timeout=60) for h in handles]
    assert [r.job_id for r in results] == [j.job_id for j in jobs]
    assert all(r.state is JobState.DONE and sum(r.counts.values()) == 5 for r in results)


def test_an_unknown_class_raises_at_submit_time(owners: OwnerHarness) -> None:
    client = owners.client(validate_locally=False)
    with pytest.raises(UnknownJobClass, match="no-such-class"):
        client.submit(analog_sequence(2), 10, job_class="no-such-class")
    client.submit(analog_sequence(2), 10, job_class="production")  # the channel is still usable
    queue = owners.broker.topology.job_queue("production")
    assert owners.broker.channel().queue_declare(queue, passive=True).method.message_count == 1


def test_a_full_class_queue_raises_queue_full(owners: OwnerHarness) -> None:
    settings = make_settings(
        owners.broker.url,
        owners.broker.topology.namespace + "full",
        broker={"job_queue_max_length": 2},
    )
    owners.broker.declare_topology(build_topology(settings, Policy()))
    client = QPUClient(settings=settings, validate_locally=False)
    owners.broker.forget_queue(client.reply_queue_name)
    try:
        client.submit(analog_sequence(2), 10)
        client.submit(analog_sequence(2), 10)
        with pytest.raises(QueueFull, match="development"):  # the default class
            client.submit(analog_sequence(2), 10)
    finally:
        client.close()


def test_a_client_that_reconnects_gets_a_result_published_while_it_was_away(
    owners: OwnerHarness,
) -> None:
    owners.start("--backend", "synthetic")
    operator = owners.client()
    assert operator.control(CommandName.PAUSE).ok
    client = owners.client()
    handle = client.submit(analog_sequence(2), 10)
    client.close()
    assert operator.control(CommandName.RESUME).ok
    wait_until(  # finished while the client was away
        lambda: operator.fetch_result(handle.job_id),
        f"{handle.job_id} finished in the event log",
        step=lambda: operator.poll(0.1),
    )
    client.reconnect()
    assert handle.result(timeout=10).state is JobState.DONE


def test_fetch_result_finds_a_result_after_the_fact_from_another_client(
    shared_owner: OwnerHarness,
) -> None:
    first = shared_owner.client()
    job_id = first.submit(analog_sequence(2), 10).result(timeout=30).job_id
    later = shared_owner.client()
    found = later.fetch_result(job_id)
    assert found is not None and found.job_id == job_id and found.state is JobState.DONE
    assert later.fetch_result("never-submitted") is None


def test_a_bad_sequence_is_refused_locally_with_the_owners_structured_error(
    shared_owner: OwnerHarness,
) -> None:
    client = shared_owner.client()
    accepted = [
        e.job_id for e in events(shared_owner) if e.topic == "job.accepted"
    ]  # earlier tests'
    bad = mock_sequence({"a": (0.0, 0.0), "b": (2.0, 0.0)})
    with pytest.raises(InvalidJob) as info:
        client.submit(bad, 10)
    assert info.value.error.code is ErrorCode.INVALID_SEQUENCE
    assert info.value.error.details["pairs"] == [{"atoms": ["a", "b"], "distance_um": 2.0}]
    with pytest.raises(InvalidJob) as shots:
        client.submit(analog_sequence(2), 5000)
    assert shots.value.error.code is ErrorCode.TOO_MANY_SHOTS
    now = [e.job_id for e in events(shared_owner) if e.topic == "job.accepted"]
    assert now == accepted  # nothing was sent


def test_jobs_carry_the_slurm_context_of_the_environment(
    shared_owner: OwnerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_JOB_ACCOUNT", "qphys")
    monkeypatch.setenv("SLURM_JOB_END_TIME", "1900000000")
    context = slurm_context()
    assert context is not None and (context.job_id, context.rank, context.account) == (
        "4242",
        3,
        "qphys",
    )
    assert context.allocation_end is not None and context.allocation_end.year == 2030
    client = shared_owner.client()
    register_allocation(client, "4242", "qphys", context.allocation_end)
    handle = client.submit(analog_sequence(2), 10)
    assert handle.result(timeout=30).state is JobState.DONE
    queued = next(
        e for e in events(shared_owner) if e.topic == "job.accepted" and e.job_id == handle.job_id
    )
    slurm = queued.data["job"]["slurm"]
    assert slurm["job_id"] == "4242" and slurm["rank"] == 3


def _qsched(owners: OwnerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    env = client_env(owners.broker.url, owners.broker.topology.namespace)
    return run_group([QSCHED, *args], env, timeout_s=120)


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_the_cli_submits_waits_and_prints_results(owners: OwnerHarness, tmp_path: Path) -> None:
    owners.start("--backend", "emulator")
    seq = tmp_path / "seq.json"
    seq.write_text(analog_sequence(3))
    waited = _qsched(
        owners,
        "submit",
        str(seq),
        "--shots",
        "120",
        "--class",
        "development",
        "--priority",
        "4",
        "--wait",
        "--json",
    )
    assert waited.returncode == 0, waited.stderr
    result = json.loads(waited.stdout)
    assert result["state"] == "DONE" and sum(result["counts"].values()) == 120
    submitted = _qsched(owners, "submit", str(seq), "--shots", "10")
    job_id = submitted.stdout.strip()
    assert submitted.returncode == 0 and len(job_id) == 36
    fetched = _qsched(owners, "result", job_id, "--wait", "--json")
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout)["job_id"] == job_id
    many = _qsched(
        owners, "submit", str(seq), str(seq), "--repeat", "2", "--shots", "7", "--wait", "--json"
    )
    assert many.returncode == 0, many.stderr
    lines = [json.loads(line) for line in many.stdout.splitlines()]  # JSON lines, one per job
    assert [sum(r["counts"].values()) for r in lines] == [7, 7, 7, 7]
    status = _qsched(owners, "status", "--json")
    assert json.loads(status.stdout)["qpu_state"] in ("IDLE", "RUNNING")


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_cli_errors_are_one_line_with_a_non_zero_exit(owners: OwnerHarness, tmp_path: Path) -> None:
    owners.start("--backend", "synthetic")
    seq = tmp_path / "seq.json"
    seq.write_text(analog_sequence(2))
    unknown = _qsched(owners, "submit", str(seq), "--shots", "10", "--class", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().count("\n") == 0 and "no queue for 'nope'" in unknown.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(mock_sequence({"a": (0.0, 0.0), "b": (1.0, 0.0)}))
    invalid = _qsched(owners, "submit", str(bad), "--shots", "10")
    assert invalid.returncode == 1 and "atoms too close" in invalid.stderr
    missing = _qsched(owners, "result", "no-such-job")
    assert missing.returncode == 1 and missing.stderr.startswith("qsched: ")


def test_a_url_list_skips_a_dead_broker_and_an_all_dead_list_raises(owners: OwnerHarness) -> None:
    dead = "amqp://guest:guest@127.0.0.1:1/%2F"
    settings = owners.broker.settings
    client = QPUClient(url=f"{dead};{settings.amqp_url}", settings=settings, validate_locally=False)
    owners.broker.forget_queue(client.reply_queue_name)
    client.submit(analog_sequence(2), 10)  # confirmed by the live broker
    client.close()
    queue = owners.broker.topology.job_queue("development")  # the default class
    assert owners.broker.channel().queue_declare(queue, passive=True).method.message_count == 1
    with pytest.raises(BrokerUnreachable, match="no broker answers"):
        QPUClient(url=dead, settings=settings)


def test_a_result_whose_reply_was_lost_is_asked_of_the_owner_while_waiting(
    shared_owner: OwnerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A final reply lost between an owner's confirmed event and its reply (a kill there) would
    leave the waiter hanging: a waiter asks the owner after a while and gets the result."""
    import producers.results

    client = shared_owner.client(validate_locally=False)
    job = client.submit(analog_sequence(2), 10)
    done = job.result(timeout=60)
    del client.results[job.job_id]  # as if the reply never came
    monkeypatch.setattr(producers.results, "ASK_OWNER_AFTER_S", 0.5)
    assert client.wait_result(job.job_id, timeout=30) == done


def test_a_client_interrupted_in_the_middle_of_a_frame_closes_at_once_and_deletes_its_queue(
    broker: BrokerFixture,
) -> None:
    """Ctrl-C can stop py-amqp between a frame's header and its payload; the rest of the
    payload then reads as the next frame's header, so a request on that connection may wait for
    ever. Closing after that KeyboardInterrupt must drop the connection unspoken to and still
    delete the reply queue over a new one. Before, `qsched submit --wait` hung in that delete
    about 1 in 6 times when Ctrl-C came 0-30 ms after `submitted` (7 of 40)."""
    client = QPUClient(settings=broker.settings)
    reply_queue = client.reply_queue_name
    transport = client.session.connection.connection.transport  # py-amqp's socket reader
    reads = {"n": 0}
    real_read = transport._read

    def read_then_interrupt(n: int, initial: bool = False) -> bytes:
        reads["n"] += 1
        if reads["n"] == 2:  # the header was read, not the payload: as a signal would land
            raise KeyboardInterrupt
        return real_read(n, initial)

    done = threading.Event()

    def interrupted_call() -> None:  # as the CLI's calls end on Ctrl-C (producers.cli._client)
        transport._read = read_then_interrupt
        try:
            client.session.channel.queue_declare(reply_queue, passive=True)
        except KeyboardInterrupt:
            client.close(delete_reply_queue=True, interrupted=True)
            done.set()

    caller = threading.Thread(target=interrupted_call, daemon=True)
    caller.start()
    assert done.wait(15), "leaving the client after an interrupt mid-frame hung"
    channel = broker.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as gone:
        channel.queue_declare(reply_queue, passive=True)
    assert gone.value.reply_code == 404
