"""Fuzzing every input the owner reads (issue 12, What to build 4).

Given an active owner and a standby, when >= 1,000 hypothesis-generated hostile messages (raw
bytes, arbitrary msgpack, valid jobs and commands with fields broken, msgpack nested 100,000
deep, any content type, schema type, priority, reply_to and headers of any shape) go to the
class queues and the control queue, plus bodies over the owner's size limit, then neither owner
dies or fails over, every message is either dead-lettered with a reason and a code or handled
(a job once it ended, a command once answered), every job message not dead-lettered passes the
invariant checker as a job of the log, and a normal job still ends DONE. Then junk goes into
the event log and the snapshot queue (what a standby reads when it takes over), the active owner
is killed, and the standby takes over and runs a job.

The seed is printed on failure; ``FUZZ_SEED=N pytest tests/chaos/test_fuzz.py`` replays a run (a
``QSCHED_*`` name would not do: the test session clears those, `tests.conftest.isolated_env`).
"""

from __future__ import annotations

import os
import random
import time
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from brokers.connection import connect
from schemas import CommandName, Event, JobState
from schemas.codec import DEFAULT_MAX_BYTES
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.fuzz import Fuzzed, Tally, collect, messages, publish, without_reason
from tests.support.hostile import FAST_LEASE
from tests.support.invariants import check
from tests.support.owners import wait_active
from tests.support.reliability import record
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.reliability]

OVERSIZED = (DEFAULT_MAX_BYTES + 1, DEFAULT_MAX_BYTES + 1024**2)


def _index(tracking_id: str) -> int:
    return int(tracking_id.rsplit("-", 1)[1])


def _ready(owners: OwnerHarness) -> int:
    """Messages ready (not taken) in the class and control queues."""
    topology = owners.broker.topology
    ch = owners.broker.channel()
    queues = [*map(topology.job_queue, topology.class_names), topology.control_queue]
    return sum(ch.queue_declare(q, passive=True).method.message_count for q in queues)


def _fuzz_owner(owners: OwnerHarness, count: int, budget_s: float) -> None:
    active = owners.start("--backend", "synthetic", env=FAST_LEASE)
    standby = owners.start("--backend", "synthetic", env=FAST_LEASE, wait=False)
    client = owners.client()
    topology = owners.broker.topology
    ns = topology.namespace
    user = urlsplit(owners.broker.url).username or "guest"
    reply = topology.reply_queue(user, "fuzz")  # declared once the messages are generated
    tap = owners.broker.declare_queue(f"{ns}.fuzz-events", arguments={"x-expires": 600_000})
    listen = connect(owners.broker.url, name="test-fuzz-listen").channel()
    listen.queue_bind(tap, topology.events_exchange, "#")
    publisher = connect(owners.broker.url, name="test-fuzz-publish").channel()
    publisher.confirm_delivery()

    run_seed = int(os.environ.get("FUZZ_SEED") or random.randrange(2**32))
    replay = f"seed {run_seed} (FUZZ_SEED={run_seed} replays it)"
    generated: list[Fuzzed] = []
    strategy = messages(topology.class_names, reply, topology.device_queue, ns)

    @seed(run_seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def generate(message: Fuzzed) -> None:
        generated.append(message)

    generate()
    for size in OVERSIZED:
        generated.append(Fuzzed("jobs", "production", b"\x00" * size, {"user_id": user}, "big"))
    owners.broker.declare_queue(reply, arguments=topology.reply_queue_arguments())
    sent: set[str] = set()
    tally = Tally(sent)  # consumers first: a reply queue left unused expires (x-expires)
    listen.basic_consume(topology.dead_queue, lambda c, m, p, b: tally.on_dead(p), auto_ack=True)
    listen.basic_consume(tap, lambda c, m, p, b: tally.on_event(b, p.type), auto_ack=True)
    listen.basic_consume(reply, lambda c, m, p, b: tally.on_reply(p, b), auto_ack=True)
    started = time.monotonic()
    for n, message in enumerate(generated):
        props = message.props | ({"user_id": user} if message.props.get("user_id") else {})
        tracking_id = f"fz{run_seed}-{n}"
        if publish(publisher, topology, Fuzzed(**vars(message) | {"props": props}), tracking_id):
            sent.add(tracking_id)
    kinds = sorted({m.kind for m in generated})
    assert len(sent) >= count, f"{replay}: only {len(sent)} of {len(generated)} sent"

    collect(listen, tally, budget_s)
    elapsed_s = time.monotonic() - started
    missing = sorted(tally.missing())
    crashes = sum(o.process.poll() is not None for o in (active, standby))
    after = client.submit(analog_sequence(2), 10, job_class="production")
    after_result = after.result(timeout=60)
    # Every job message not dead-lettered must be a job of the log that ended (accepted then
    # final, or refused): the checker, against those sent. Their replies went to reply queues of
    # every shape, so delivery is not checked; the queues hold only messages not yet taken.
    log = events(owners)
    jobs = [k for k in sent if generated[_index(k)].target == "jobs" and k not in tally.dead]
    verdict = check(log, [*jobs, after.job_id], None, _ready(owners))
    record(
        f"fuzzing ({count:,} messages)",
        verdict=verdict,
        jobs=len(sent),
        lost=len(missing) + verdict.lost,
        duplicated=verdict.duplicated,
        owner_crashes=crashes,
        note=(
            f"hypothesis seed {run_seed}; {len(tally.dead)} dead-lettered with a reason, "
            f"{len(tally.handled)} handled (jobs once ended; {verdict.accepted} jobs accepted), "
            f"{len(missing)} neither; in {elapsed_s:.1f} s; kinds: {', '.join(kinds)}"
        ),
    )
    assert not missing, (
        f"{replay}: {len(missing)} of {len(sent)} messages neither dead-lettered nor "
        f"handled after {elapsed_s:.0f} s, e.g. "
        f"{[generated[_index(k)] for k in missing[:3]]}"
    )
    assert not without_reason(tally), f"{replay}: dead letters without a reason"
    assert active.process.poll() is None, active.log()[-3000:]
    assert standby.process.poll() is None, standby.log()[-3000:]
    assert verdict.ok, f"{replay}: {verdict.problems[:10]}"
    assert [e.topic for e in log].count("owner.activated") == 1, f"{replay}: failover"
    assert after_result.state is JobState.DONE

    # The log and the snapshot queue are inputs too: a standby reads them when it takes over.
    junk = [m for m in generated if m.kind in ("raw", "msgpack-any", "deep")][:200]
    for n, message in enumerate(junk):
        kind = Event.type_name() if n % 2 else message.props.get("type")
        props = {"type": kind, "user_id": user}
        topic = ("job.done", "owner.snapshot", "owner.activated", "job.accepted")[n % 4]
        log_junk = Fuzzed("events", topic, message.body, props, message.kind)
        publish(publisher, topology, log_junk, f"junk-{n}")
        publish(publisher, topology, log_junk._replace_target("snapshot"), f"snap-{n}")
    first = client.control(CommandName.STATUS).status
    active.kill()
    wait_until(
        lambda: (
            (s := wait_active(client, timeout_s=20).status) is not None
            and s.owner_id != first.owner_id
        ),
        "the standby active after reading a log full of junk",
        60,
    )
    again = client.submit(analog_sequence(2), 10, job_class="production")
    assert again.result(timeout=60).state is JobState.DONE
    assert standby.process.poll() is None, standby.log()[-3000:]
    print(
        f"fuzz seed {run_seed}: {len(sent)} messages ({', '.join(kinds)}), "
        f"{len(tally.dead)} dead-lettered, {len(tally.handled)} handled, {elapsed_s:.1f} s"
    )


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
@pytest.mark.timeout(400)
def test_1000_fuzzed_messages_kill_no_owner_and_each_is_dead_lettered_or_handled(
    owners: OwnerHarness,
) -> None:
    _fuzz_owner(owners, 1000, budget_s=180)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_5000_fuzzed_messages_kill_no_owner_and_each_is_dead_lettered_or_handled(
    owners: OwnerHarness,
) -> None:
    _fuzz_owner(owners, 5000, budget_s=400)
