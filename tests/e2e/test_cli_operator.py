"""Operators' CLI commands as real `qsched` processes against a real owner, and settings files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from brokers.topology import build_topology
from schemas import CommandName, ErrorCode, JobState, Mode, QPUState
from schemas.policy import Policy
from tests.conftest import OwnerHarness, make_settings
from tests.integration.test_owner import events
from tests.support.environment import CHILD_REPLY_EXPIRES_MS, run_group
from tests.support.owners import QSCHED, register_allocation, run_qsched, wait_running
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
SHARED_OWNER_ARGS = ("--backend", "synthetic", "--shot-rate", "100")  # `shared_owner`


def qsched(owners: OwnerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    """`qsched ARGS` on the test's broker and namespace."""
    return run_qsched(owners.broker.url, owners.broker.topology.namespace, *args)


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_ctl_calibration_start_now_preempts_and_calibration_complete_resumes_it(
    owners: OwnerHarness,
) -> None:
    owners.start("--backend", "synthetic", "--shot-rate", "100")
    client = owners.client()
    job = client.submit(
        analog_sequence(2), 2000, job_class="production"
    )  # ~20 s: outlasts a CLI start
    wait_running(client, job.job_id)
    started = qsched(owners, "ctl", "calibration-start", "--now", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["ok"] is True
    status = wait_until(
        lambda: (
            (s := client.control(CommandName.STATUS).status).qpu_state is QPUState.CALIBRATING
            and s.running is None
            and s
        ),
        "QPU CALIBRATING with the job taken off it",
        step=lambda: client.poll(0.1),
    )
    assert status.queue_depth["production"] == 1
    completed = qsched(owners, "ctl", "calibration-complete")
    assert completed.returncode == 0, completed.stderr
    result = job.result(timeout=60)
    assert result.state is JobState.DONE and result.preemptions == 1 and result.epoch == 1
    assert sum(result.counts.values()) == 2000


def test_ctl_allocation_ended_cancels_that_allocations_jobs(
    shared_owner: OwnerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "7001")
    client = shared_owner.client()
    register_allocation(client, "7001")  # as the prolog does
    running = client.submit(analog_sequence(2), 2000)
    queued = client.submit(analog_sequence(2), 10)
    wait_running(client, running.job_id)
    ended = qsched(shared_owner, "ctl", "allocation-ended", "7001")
    assert ended.returncode == 0, ended.stderr
    assert "1 queued job(s) canceled" in ended.stdout
    for handle in (running, queued):
        result = handle.result(timeout=30)
        assert result.state is JobState.CANCELED
        assert result.error is not None and result.error.code is ErrorCode.ALLOCATION_ENDED


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_ctl_preempt_puts_the_running_job_back_and_refuses_a_job_not_running(
    owners: OwnerHarness,
) -> None:
    owners.start("--backend", "synthetic", "--shot-rate", "100")
    client = owners.client()
    job = client.submit(analog_sequence(2), 2000, job_class="production")  # ~20 s
    wait_running(client, job.job_id)
    waiting = client.submit(analog_sequence(2), 10, job_class="development")  # queued behind
    preempted = qsched(owners, "ctl", "preempt", job.job_id)
    assert preempted.returncode == 0, preempted.stderr
    refused = qsched(owners, "ctl", "preempt", waiting.job_id)
    assert refused.returncode == 1
    assert refused.stderr.startswith("qsched: refused:") and "not on the QPU" in refused.stderr
    result = job.result(timeout=60)
    assert result.state is JobState.DONE and result.preemptions == 1
    assert sum(result.counts.values()) == 2000
    assert [e.job_id for e in events(owners) if e.topic == "job.preempted"] == [job.job_id]


def test_ctl_mode_message_is_shown_by_status_and_holds_user_jobs(owners: OwnerHarness) -> None:
    owners.start("--backend", "synthetic")
    client = owners.client()
    message = "laser realignment until 14:00"
    switched = qsched(owners, "ctl", "mode", "maintenance", "--message", message)
    assert switched.returncode == 0, switched.stderr
    held = client.submit(analog_sequence(2), 10, job_class="production")
    status = json.loads(qsched(owners, "status", "--json").stdout)
    assert status["mode"] == Mode.MAINTENANCE.value and status["mode_message"] == message
    shown = qsched(owners, "status")
    assert shown.returncode == 0 and message in shown.stdout
    assert not held.done()
    assert qsched(owners, "ctl", "mode", "production").returncode == 0
    assert held.result(timeout=30).state is JobState.DONE


def test_cancel_from_the_cli_cancels_a_queued_job(owners: OwnerHarness) -> None:
    owners.start("--backend", "synthetic")
    client = owners.client()
    assert client.control(CommandName.PAUSE).ok
    job = client.submit(analog_sequence(2), 10, job_class="production")
    canceled = qsched(owners, "cancel", job.job_id, "--json")
    assert canceled.returncode == 0, canceled.stderr
    assert json.loads(canceled.stdout)["ok"] is True
    result = job.result(timeout=30)
    assert result.state is JobState.CANCELED
    assert result.error is not None and result.error.code is ErrorCode.CANCELED_BY_OPERATOR
    assert client.control(CommandName.RESUME).ok
    started = [e.job_id for e in events(owners) if e.topic == "job.started"]
    assert job.job_id not in started


def _config(tmp_path: Path, owners: OwnerHarness) -> Path:
    config = tmp_path / "qsched.toml"
    config.write_text(
        f'amqp_url = "{owners.broker.url}"\nnamespace = "{owners.broker.topology.namespace}"\n'
    )
    return config


def _without_broker_settings(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QSCHED_", "SLURM_"))}
    return env | {"QSCHED_BROKER__REPLY_EXPIRES_MS": str(CHILD_REPLY_EXPIRES_MS), **extra}


def test_config_option_and_qsched_config_point_the_cli_at_the_files_broker_and_namespace(
    shared_owner: OwnerHarness, tmp_path: Path
) -> None:
    """Given no QSCHED_AMQP_URL/QSCHED_NAMESPACE, `--config FILE` and `QSCHED_CONFIG=FILE` each
    make `qsched status` reach the owner of the file's namespace, and an env variable beats it."""
    owner_id = shared_owner.client().control(CommandName.STATUS).status.owner_id
    config = _config(tmp_path, shared_owner)
    by_option = run_group(
        [QSCHED, "--config", str(config), "status", "--json"], _without_broker_settings(), 60
    )
    assert by_option.returncode == 0, by_option.stderr
    assert json.loads(by_option.stdout)["owner_id"] == owner_id
    by_env = run_group(
        [QSCHED, "status", "--json"],
        _without_broker_settings(QSCHED_CONFIG=str(config)),
        60,
    )
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads(by_env.stdout)["owner_id"] == owner_id
    broker = shared_owner.broker
    other = make_settings(broker.url, f"{broker.topology.namespace}x")
    broker.extra_topologies.append(build_topology(other, Policy()))  # if any got declared
    elsewhere = run_group(
        [QSCHED, "--config", str(config), "status", "--timeout", "2"],
        _without_broker_settings(QSCHED_NAMESPACE=other.namespace),
        60,
    )
    assert elsewhere.returncode != 0  # the variable won: a namespace with no owner
