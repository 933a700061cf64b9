"""Owner-side answers the CLI relies on: stale commands, unknown jobs, device mismatch, quiet logs."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from producers.client import JobHandle, _Outgoing
from producers.errors import CommandRefused
from schemas import CommandName, ErrorCode, JobState
from schemas.control import ControlCommand
from schemas.jobs import JobRequest
from schemas.wire import utc_now
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.integration


def _digital_analog_sequence() -> str:
    from pulser import Pulse, Register, Sequence
    from pulser.devices import DigitalAnalogDevice

    seq = Sequence(Register.square(2, spacing=6.0, prefix="q"), DigitalAnalogDevice)
    seq.declare_channel("ryd", "rydberg_global")
    seq.add(Pulse.ConstantPulse(200, 2.0, 0.0, 0.0), "ryd")
    return str(seq.to_abstract_repr())


def test_a_stale_command_is_refused_and_every_command_is_logged_with_sender_and_time(
    owners: OwnerHarness,
) -> None:
    owner = owners.start("--backend", "synthetic")
    client = owners.client()
    old = ControlCommand(command=CommandName.PAUSE, issued_at=utc_now() - timedelta(hours=2))
    client._publish_all(
        [_Outgoing(old, client.topology.control_exchange, "control.pause", old.command_id)]
    )
    while old.command_id not in client.replies:  # bounded by the test timeout
        client.poll(0.5)
    reply = client.replies.pop(old.command_id)
    assert not reply.ok and reply.error is not None
    assert reply.error.code is ErrorCode.STALE_COMMAND
    assert client.control(CommandName.STATUS).status.qpu_state.value == "IDLE"
    assert client.control(CommandName.RESUME).ok
    logged = {e.data.get("command_id"): e for e in events(owners) if e.topic.startswith("control.")}
    stale = logged[old.command_id]
    assert stale.user == "guest" and stale.data["ok"] is False
    assert datetime.fromisoformat(stale.data["issued_at"]) == old.issued_at
    log = owner.log()
    assert "control.pause by guest: command pause was issued" in log
    assert "control.resume by guest" in log


def test_handle_cancel_raises_when_the_owner_does_not_know_the_job(
    shared_owner: OwnerHarness,
) -> None:
    client = shared_owner.client()
    ghost = JobHandle("00000000-0000-4000-8000-000000000000", "development", 10, client)
    with pytest.raises(CommandRefused, match="refused") as info:
        ghost.cancel()
    assert info.value.error.code is ErrorCode.UNKNOWN_JOB


def test_a_sequence_for_another_device_is_refused_unless_the_job_opts_in(
    shared_owner: OwnerHarness,
) -> None:
    client = shared_owner.client(validate_locally=False)
    text = _digital_analog_sequence()
    refused = client.submit_request(
        JobRequest(job_class="development", shots=10, sequence=text)
    ).result(timeout=60)
    assert refused.state is JobState.REJECTED and refused.error is not None
    assert refused.error.code is ErrorCode.DEVICE_MISMATCH
    assert refused.error.details["sequence_device"] == "DigitalAnalogDevice"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pulser: the Rydberg level changes
        allowed = client.submit_request(
            JobRequest(job_class="development", shots=10, sequence=text, allow_device_switch=True)
        ).result(timeout=60)
    assert allowed.state is JobState.DONE, allowed.error


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)  # re-checks a condition; the deadline above bounds it


def test_a_standby_owner_and_a_departed_client_do_not_flood_the_log(
    owners: OwnerHarness,
) -> None:
    active = owners.start("--backend", "synthetic", "--shot-rate", "400")
    standby = owners.start("--backend", "synthetic", wait=False)
    _wait_for(lambda: "standby: another owner holds" in standby.log(), 60, "the standby")
    client = owners.client()
    handle = client.submit(analog_sequence(2), 2000, job_class="development")  # 5 s, 20 progresses
    client.close()
    owners.broker.channel().queue_delete(client.reply_queue_name)  # the client has gone for good
    watcher = owners.client()
    while watcher.fetch_result(handle.job_id) is None:  # bounded by the test timeout
        watcher.poll(1.0)
    assert "WARNING pika" not in standby.log() and "WARNING pika" not in active.log()
    assert active.log().count(client.reply_queue_name) <= 1  # not once per progress message
