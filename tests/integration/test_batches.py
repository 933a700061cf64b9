"""Batches against a real broker and real owner processes: the SDK, the CLI, bad input, and a
batch found by its id from a new process after the owner restarted."""

from __future__ import annotations

import json
import sys

import pytest
from pulser import Pulse, Sequence
from pulser.devices import AnalogDevice

from brokers.connection import connect
from consumers.tools.eventlog.reader import read_log
from producers.errors import CommandRefused, InvalidJob
from schemas import CommandName, ErrorCode, JobState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.environment import client_env, run_group
from tests.support.owners import QSCHED

pytestmark = pytest.mark.integration
TAKEN = ("session.opened", "batch.created", "job.accepted")


def _sequence() -> Sequence:
    layout = next(iter(AnalogDevice.calibrated_register_layouts.values()))
    seq = Sequence(layout.define_register(0, 1, 2, qubit_ids=["a", "b", "c"]), AnalogDevice)
    seq.declare_channel("rydberg", "rydberg_global")
    seq.add(Pulse.ConstantPulse(200, seq.declare_variable("amp"), 0.0, 0.0), "rydberg")
    return seq


def test_a_parametrized_batch_runs_each_job_and_its_sequence_is_logged_once(
    owners: OwnerHarness,
) -> None:
    owners.start("--backend", "emulator")
    client = owners.client()
    batch = client.submit_batch(
        _sequence(), [{"runs": 20, "variables": {"amp": a}} for a in (1.0, 2.0, 3.0)], "production"
    )
    results = batch.wait(timeout_s=120)
    assert [r.state for r in results] == [JobState.DONE] * 3
    assert [sum(r.counts.values()) for r in results] == [20, 20, 20]
    logged = events(owners)
    assert sum(1 for e in logged if e.topic == "batch.created") == 1
    accepted = [e for e in logged if e.topic == "job.accepted"]
    assert [e.data["job"]["sequence"] for e in accepted] == ["", "", ""]
    status = batch.status()
    assert status.counts == {"DONE": 3} and not status.open


def test_a_batchs_intake_is_one_record_and_each_event_keeps_its_address(
    shared_owner: OwnerHarness,
) -> None:
    client = shared_owner.client()
    batch = client.submit_batch(
        _sequence(), [{"runs": 5, "variables": {"amp": a}} for a in (1.0, 2.0, 3.0)]
    )
    batch.wait(timeout_s=60)
    connection = connect(shared_owner.broker.url)
    try:
        records = list(read_log(connection, shared_owner.broker.topology.events_stream))
    finally:
        connection.close()
    mine = {r.offset for r in records if r.event.topic in TAKEN and r.event.job_id in batch.job_ids}
    assert len(mine) == 1  # one record: one publish, one confirm
    intake = [r for r in records if r.offset in mine]  # (earlier tests' jobs are in other records)
    accepted = [r.event.job_id for r in intake if r.event.topic == "job.accepted"]
    assert accepted == list(batch.job_ids)
    assert [(r.index, r.event.topic) for r in intake] == [
        (0, "session.opened"),  # the batch is a session, opened by its first jobs
        (1, "batch.created"),
        (2, "job.accepted"),
        (3, "job.accepted"),
        (4, "job.accepted"),
    ]
    reply = client.control(CommandName.HISTORY, job_id=batch.job_ids[1])
    assert reply.ok and reply.history is not None
    assert [e.topic for e in reply.history][:1] == ["job.accepted"]
    assert reply.history[-1].topic == "job.done"


def test_an_open_batch_takes_jobs_until_closed_then_refuses_naming_the_batch(
    shared_owner: OwnerHarness,
) -> None:
    client = shared_owner.client()
    batch = client.submit_batch(_sequence(), [], "production", open=True)
    first = batch.add([{"runs": 5, "variables": {"amp": 1.0}}])
    assert first[0].result(timeout=60).state is JobState.DONE
    batch.close()
    late = batch.add([{"runs": 5, "variables": {"amp": 2.0}}])[0].result(timeout=60)
    assert late.state is JobState.REJECTED and late.error is not None
    assert late.error.code is ErrorCode.BATCH_CLOSED and batch.batch_id in late.error.message


def test_undeclared_variables_are_refused_at_submit_naming_them_and_by_the_owner_too(
    shared_owner: OwnerHarness,
) -> None:
    with pytest.raises(InvalidJob, match="not declared by the sequence: ampp"):
        shared_owner.client().submit_batch(_sequence(), [{"runs": 5, "variables": {"ampp": 1.0}}])
    unchecked = shared_owner.client(validate_locally=False)
    batch = unchecked.submit_batch(
        _sequence(), [{"runs": 5, "variables": {"amp": 1.0}}, {"runs": 5, "variables": {}}]
    )
    results = batch.wait(timeout_s=60)
    assert [r.state for r in results] == [JobState.REJECTED] * 2  # refused whole
    assert results[0].error is not None and "missing: amp" in results[0].error.message
    with pytest.raises(CommandRefused, match="no batch"):
        unchecked.batch(batch.batch_id)


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_a_new_process_finds_a_batch_and_its_results_by_id_after_a_restart(
    owners: OwnerHarness,
) -> None:
    first = owners.start("--backend", "synthetic")
    client = owners.client()
    batch = client.submit_batch(
        _sequence(), [{"runs": 7, "variables": {"amp": 1.0 + i}} for i in range(4)]
    )
    batch.wait(timeout_s=60)
    first.stop()
    owners.start("--backend", "synthetic")
    script = (
        "import sys, pulser\n"
        "from pulser.backend.remote import RemoteResults\n"
        "from producers.pulser import QSchedConnection\n"
        "with QSchedConnection(timeout_s=30) as conn:\n"
        "    remote = RemoteResults(sys.argv[1], conn)\n"
        "    print(remote.get_batch_status().name)\n"
        "    print([sum(r.bitstring_counts.values()) for r in remote.results])\n"
        "    print(remote.results[0].atom_order)\n"
    )
    env = client_env(owners.broker.url, owners.broker.topology.namespace)
    done = run_group([sys.executable, "-c", script, batch.batch_id], env, timeout_s=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["DONE", "[7, 7, 7, 7]", "('a', 'b', 'c')"]
    shown = run_group([QSCHED, "batch", "show", batch.batch_id, "--json"], env, timeout_s=60)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["counts"] == {"DONE": 4}
    missing = run_group([QSCHED, "batch", "show", "no-such-batch"], env, timeout_s=60)
    assert missing.returncode != 0 and "no batch no-such-batch" in missing.stderr
