"""A real owner calls for calibration before a reservation in whose window the calibration
window would close (issue 22: 'the owner calls for calibration before it starts')."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from schemas import CommandName
from schemas.envelope import Event
from schemas.reservations import Reservation
from schemas.wire import utc_now
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.owners import register_allocation
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
POLICY = "calibration_valid_s = 30\ncalibration_lead_s = 3\n"


@pytest.mark.slow  # ~13 s, mostly the owner's start; the decision has unit tests
def test_the_owner_calls_for_calibration_before_a_window_the_calibration_would_expire_in(
    owners: OwnerHarness, tmp_path: Path
) -> None:
    """Given a calibration valid 30 s and a reservation opening 4 s later for a minute, the
    owner logs ``calibration.due`` naming the reservation, once, before the window opens; a
    calibration then (within the lead) is not called for again."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    owners.start("--backend", "synthetic", "--policy", str(policy))
    client = owners.client()
    register_allocation(client, "9001", account="chem")
    assert client.control(CommandName.CALIBRATION_START).ok
    assert client.control(CommandName.CALIBRATION_COMPLETE).ok  # epoch 1, valid 30 s
    start = utc_now() + timedelta(seconds=4)
    window = Reservation(
        name="chem-hour", start=start, end=start + timedelta(minutes=1), accounts=("chem",)
    )
    assert client.control(CommandName.RESERVATION_CREATE, reservation=window).ok

    def dues() -> list[Event]:
        return [e for e in events(owners) if e.topic == "calibration.due"]

    [due] = wait_until(dues, "calibration.due before the window", step=lambda: client.poll(0.2))
    assert due.at < start and due.data["epoch"] == 1
    assert due.reason is not None and "before reservation chem-hour opens" in due.reason
    assert client.control(CommandName.CALIBRATION_START).ok  # the call answered
    assert client.control(CommandName.CALIBRATION_COMPLETE).ok
    wait_until(lambda: utc_now() > start, "the window open", step=lambda: client.poll(0.2))
    assert len(dues()) == 1
