"""`status` lists the standby owners with their host and last heartbeat, also after a failover."""

from __future__ import annotations

import socket

import pytest

from schemas import CommandName
from schemas.reports import StatusReport
from schemas.wire import utc_now
from tests.conftest import OwnerHarness
from tests.support.owners import OwnerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _status(client: object) -> StatusReport | None:
    try:
        reply = client.control(CommandName.STATUS, timeout=2.0)  # type: ignore[attr-defined]
    except Exception:  # no owner during the failover: ask again
        return None
    return reply.status


def _pid_of(standby_id: str) -> int:
    return int(standby_id.split(":")[1])


def test_status_lists_standbys_before_and_after_the_active_owner_dies(
    owners: OwnerHarness,
) -> None:
    first: OwnerProcess = owners.start("--backend", "synthetic")
    standbys = [owners.start("--backend", "synthetic", wait=False) for _ in range(2)]
    client = owners.client()
    status = wait_until(
        lambda: (s := _status(client)) is not None and len(s.standbys) == 2 and s,
        "two standbys in status",
        timeout_s=60,
        step=lambda: client.poll(0.2),
    )
    assert {_pid_of(s.owner_id) for s in status.standbys} == {p.pid for p in standbys}
    assert all(s.host == socket.gethostname() and s.pid is not None for s in status.standbys)
    assert all(s.last_heartbeat <= utc_now() for s in status.standbys)  # stamped on arrival
    assert _pid_of(status.owner_id) == first.pid

    first.kill()
    after = wait_until(
        lambda: (
            (s := _status(client)) is not None
            and _pid_of(s.owner_id) != first.pid
            and len(s.standbys) == 1
            and s
        ),
        "the new active owner listing the remaining standby",
        timeout_s=60,
        step=lambda: client.poll(0.2),
    )
    remaining = {p.pid for p in standbys} - {_pid_of(after.owner_id)}
    assert {_pid_of(s.owner_id) for s in after.standbys} == remaining
