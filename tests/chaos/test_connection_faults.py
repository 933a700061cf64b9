"""The owner's own TCP connection to the broker stalls or drops (issue 19, untried faults).

The owners reach the broker through a loopback proxy (`tests.support.tcpproxy`) (for the stall, only
the active one); the clients and the test's reader connect directly. Nothing touches the broker: the fault is in
the proxy only.

- stall: the proxy stops forwarding while both sockets stay open (no FIN, no RST). The broker
  misses the owner's heartbeats and closes its connection, which frees the lease; the standby
  takes over and finishes the work. The stalled owner notices on its own (its heartbeat
  checker), stops its run, and once the proxy forwards again it stands by.
- drop: both owners go through the proxy, which resets every connection mid-job, three times.
  Each time one of them (whichever declares the lease first) goes on from the log.

Each ends with the invariant checker over the log against every job sent.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from schemas import CommandName, JobState
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.invariants import check
from tests.support.owners import OwnerProcess, start_owner, wait_active, wait_for_log, wait_running
from tests.support.reliability import record
from tests.support.sequences import analog_sequence
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.reliability]

HEARTBEAT_S = 2
ENV = {"QSCHED_BROKER__HEARTBEAT_S": str(HEARTBEAT_S), "QSCHED_OWNER__LEASE_RETRY_S": "0.2"}
ARGS = ("--backend", "synthetic", "--shot-rate", "100")
STANDBY = "standby: another owner holds"
LOST = "lost the broker or the lease"
TAKEOVER_BOUND_S = 10 * HEARTBEAT_S  # two missed heartbeats on the broker's side, plus activation


@pytest.fixture
def proxy(owners: OwnerHarness) -> Iterator[TcpProxy]:
    """A proxy to the test's broker."""
    parts = urlsplit(owners.broker.url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    yield proxy
    proxy.close()


def _proxied_owner(owners: OwnerHarness, proxy: TcpProxy) -> OwnerProcess:
    """An owner whose AMQP URL is the proxy, cleaned up with the test's other owners."""
    topology = owners.broker.topology
    owner = start_owner(
        proxy.url_of(owners.broker.url), topology.namespace, owners.log_dir, *ARGS, env=ENV
    )
    owners.owners.append(owner)
    return owner


def _owner_id(client: object) -> str:
    status = wait_active(client, timeout_s=60).status  # type: ignore[arg-type]
    assert status is not None
    return status.owner_id


@pytest.mark.timeout(400)
def test_a_stalled_owner_connection_hands_the_qpu_over_and_the_stalled_owner_stands_by(
    owners: OwnerHarness, proxy: TcpProxy
) -> None:
    stalled = _proxied_owner(owners, proxy)
    client = owners.client()
    first = _owner_id(client)
    standby = owners.start(*ARGS, env=ENV, wait=False)
    wait_for_log(standby, STANDBY, timeout_s=60)
    handles = client.submit_many([client.build_job(analog_sequence(2), 300) for _ in range(4)])
    wait_running(client, handles[0].job_id, timeout_s=60)
    proxy.stall()
    stalled_at = time.monotonic()
    try:
        wait_until(lambda: _owner_id(client) != first, "the standby active after the stall", 120)
        took_over_s = time.monotonic() - stalled_at
        wait_for_log(stalled, LOST, timeout_s=120)  # it noticed without the proxy's help
        noticed_s = time.monotonic() - stalled_at
    finally:
        proxy.resume()
    wait_for_log(stalled, STANDBY, timeout_s=120)
    results = [h.result(timeout=180) for h in handles]
    log = events(owners)
    verdict = check(log, [h.job_id for h in handles], {r.job_id: r for r in results})
    record(
        "owner-broker connection stalls",
        verdict=verdict,
        owner_crashes=sum(o.process.poll() is not None for o in (stalled, standby)),
        worst_gap_s=took_over_s,
        note=(
            f"heartbeat {HEARTBEAT_S} s: the standby took over {took_over_s:.1f} s after the "
            f"stall; the stalled owner said it lost the broker after {noticed_s:.1f} s and stood "
            f"by once the proxy forwarded again; {verdict.stale_events} events of a stale term"
        ),
    )
    assert verdict.ok, verdict.problems
    assert all(r.state is JobState.DONE and sum(r.counts.values()) == 300 for r in results)
    assert took_over_s < TAKEOVER_BOUND_S, f"takeover took {took_over_s:.1f} s"
    assert stalled.process.poll() is None and standby.process.poll() is None
    assert _owner_id(client) != first  # the stalled owner did not take the QPU back


@pytest.mark.timeout(600)
def test_an_owner_connection_reset_three_times_mid_job_loses_and_duplicates_nothing(
    owners: OwnerHarness, proxy: TcpProxy
) -> None:
    owners_now = [_proxied_owner(owners, proxy)]
    client = owners.client()
    _owner_id(client)
    owners_now.append(_proxied_owner(owners, proxy))  # both owners go through the proxy
    wait_for_log(owners_now[1], STANDBY, timeout_s=60)
    handles = client.submit_many([client.build_job(analog_sequence(2), 100) for _ in range(30)])
    gaps: list[float] = []
    resets = 0
    for _ in range(3):
        wait_until(  # reset while an owner runs a job
            lambda: client.control(CommandName.STATUS).status.running is not None,
            "a job running",
            120,
            step=lambda: client.poll(0.05),
        )
        at = time.monotonic()
        resets += proxy.drop()
        wait_active(client, timeout_s=60)
        gaps.append(time.monotonic() - at)
    results = [h.result(timeout=300) for h in handles]
    log = events(owners)
    verdict = check(log, [h.job_id for h in handles], {r.job_id: r for r in results})
    holders = Counter(e.owner_id for e in log if e.topic == "owner.activated")
    record(
        "owner-broker connection reset",
        verdict=verdict,
        owner_crashes=sum(o.process.poll() is not None for o in owners_now),
        worst_gap_s=max(gaps),
        note=(
            f"3 resets of both owners' connections mid-job ({resets} sockets); "
            f"{verdict.activations} activations by {len(holders)} owners; an owner answered "
            f"{min(gaps):.2f}-{max(gaps):.2f} s after each reset"
        ),
    )
    assert verdict.ok, verdict.problems[:20]
    assert all(r.state is JobState.DONE and sum(r.counts.values()) == 100 for r in results)
    assert all(o.process.poll() is None for o in owners_now)
    assert verdict.activations >= 4  # the first, then one per reset
