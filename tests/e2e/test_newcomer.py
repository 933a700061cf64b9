"""What a newcomer runs first, through the real `qsched` CLI against a real owner (issue 24):
job id prefixes, the first submit before any owner ran, plain mistakes as one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pika.exceptions
import pytest

from brokers.namespace import owner_holds_lease
from schemas.enums import CommandName
from tests.conftest import BrokerFixture, OwnerHarness
from tests.support.environment import queues_starting_with
from tests.support.owners import run_qsched
from tests.support.sequences import analog_sequence
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def qsched(owners: OwnerHarness, *args: str) -> subprocess.CompletedProcess[str]:
    """`qsched ARGS` on the test's broker and namespace."""
    return run_qsched(owners.broker.url, owners.broker.topology.namespace, *args)


@pytest.fixture
def sequence_file(tmp_path: Path) -> Path:
    path = tmp_path / "sequence.json"
    path.write_text(analog_sequence(2))
    return path


def test_a_refused_command_never_breaks_the_prefix_of_a_job(
    owners: OwnerHarness, sequence_file: Path
) -> None:
    """Given a paused QPU and a queued job, when commands name it by 8 characters (and a refused
    `result 00000000` names nothing), then every one finds that job: the owner resolves prefixes
    among the jobs it knows, and a mistyped id never becomes a "job"."""
    owners.start("--backend", "synthetic")
    assert qsched(owners, "ctl", "pause").returncode == 0
    submitted = qsched(owners, "submit", str(sequence_file), "--shots", "100")
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    prefix = job[:8]

    queued = qsched(owners, "queue", "--job", prefix, "--json")
    assert queued.returncode == 0, queued.stderr
    (line,) = queued.stdout.splitlines()
    assert json.loads(line)["job_id"] == job

    for args in (("hold", prefix), ("status", prefix), ("show", prefix), ("release", prefix)):
        done = qsched(owners, *args)
        assert done.returncode == 0 and job in done.stdout, (args, done.stdout, done.stderr)
    update = qsched(owners, "update", prefix, "--priority", "3")
    assert update.returncode == 0, update.stderr

    refused = qsched(owners, "result", "00000000")
    assert refused.returncode == 1 and "no job" in refused.stderr, refused.stderr
    made_up = qsched(owners, "show", "0000")
    assert made_up.returncode == 1 and "00000000" not in made_up.stdout, made_up.stdout
    again = qsched(owners, "hold", prefix)
    assert again.returncode == 0, again.stderr

    canceled = qsched(owners, "cancel", prefix)
    assert canceled.returncode == 0, canceled.stderr
    gone = qsched(owners, "queue", "--job", prefix, "--json")
    assert gone.returncode == 1 and "ended CANCELED" in gone.stdout + gone.stderr, gone


def queue_exists(broker: BrokerFixture, name: str) -> bool:
    ch = broker.channel()
    try:
        ch.queue_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404, exc
        return False
    return True


def test_the_first_submit_before_any_owner_says_to_start_one(
    broker: BrokerFixture, sequence_file: Path
) -> None:
    """Given a namespace no owner ever ran in, `submit` fails in one line saying to start one
    (not an internal error); given a declared namespace without an owner, a plain `submit` says
    its jobs wait for one, and `submit --wait` times out (exit 3) leaving no expired command in
    the dead letters, and no call leaves a reply queue behind but a plain submit's."""
    fresh = f"{broker.topology.namespace}new"
    first = run_qsched(broker.url, fresh, "submit", str(sequence_file), "--shots", "10")
    assert first.returncode == 1, first.stderr
    assert "no QPU owner has run" in first.stderr and "qsched owner" in first.stderr
    assert "internal error" not in first.stderr and len(first.stderr.splitlines()) == 1
    assert queues_starting_with(f"{fresh}.") == []  # its reply queue went with the call

    ns = broker.topology.namespace
    plain = run_qsched(broker.url, ns, "submit", str(sequence_file), "--shots", "10")
    assert plain.returncode == 0, plain.stderr
    assert f"no QPU owner is running in namespace {ns!r}" in plain.stderr
    waited = run_qsched(
        broker.url, ns, "submit", str(sequence_file), "--shots", "10", "--wait", "--timeout", "8"
    )
    assert waited.returncode == 3 and "no QPU owner" in waited.stderr, waited.stderr
    dead = broker.channel().queue_declare(broker.topology.dead_queue, passive=True)
    assert dead.method.message_count == 0, "a status command expired into the dead letters"
    left = queues_starting_with(f"{ns}.reply.")
    assert len(left) <= 1, left  # the plain submit's (its jobs answer there), if not expired
    for name in left:
        broker.forget_queue(name)


def test_short_cli_calls_delete_their_reply_queues(
    owners: OwnerHarness, sequence_file: Path
) -> None:
    """Given an owner, when a user runs status, queue, ctl, submit --wait and result, then no
    reply queue of theirs is left on the broker (each call deletes its own at its end)."""
    owners.start("--backend", "synthetic")
    ns = owners.broker.topology.namespace
    done = qsched(owners, "submit", str(sequence_file), "--shots", "10", "--wait")
    assert done.returncode == 0, done.stderr
    job = done.stderr.split("submitted ", 1)[1].split()[0]
    for args in (("status",), ("queue",), ("ctl", "pause"), ("ctl", "resume"), ("result", job)):
        assert qsched(owners, *args).returncode == 0, args
    harness = {c.reply_queue_name for c in owners.clients}  # the harness's own client
    assert [q for q in queues_starting_with(f"{ns}.reply.") if q not in harness] == []


def test_drop_namespace_refuses_while_an_owner_is_active_unless_forced(
    owners: OwnerHarness,
) -> None:
    """Given an active owner, `broker drop-namespace` refuses (exit 1, naming the owner);
    with --force it deletes the namespace's exchanges, queues and event log; without an owner it
    needs no --force."""
    owner = owners.start("--backend", "synthetic")
    broker = owners.broker
    ns = broker.topology.namespace
    refused = qsched(owners, "broker", "drop-namespace", ns, "--yes")
    assert refused.returncode == 1 and "an owner holds the QPU" in refused.stderr, refused
    assert queue_exists(broker, broker.topology.events_stream)
    forced = qsched(owners, "broker", "drop-namespace", ns, "--yes", "--force")
    assert forced.returncode == 0 and f"dropped namespace {ns!r}" in forced.stdout, forced
    for name in (broker.topology.events_stream, broker.topology.control_queue):
        assert not queue_exists(broker, name), name
    owner.stop()
    wait_until(lambda: not owner_holds_lease(broker.url, broker.topology), "no owner", 30)
    again = qsched(owners, "broker", "drop-namespace", ns, "--yes")
    assert again.returncode == 0, again.stderr
    no_tty = qsched(owners, "broker", "drop-namespace", ns)
    assert no_tty.returncode == 2 and "--yes" in no_tty.stderr


DEAD_URL = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens: whatever asks the broker fails 1


def test_plain_mistakes_are_usage_errors_found_before_asking_the_broker(
    sequence_file: Path, tmp_path: Path
) -> None:
    """Given a broker URL where nothing listens, when a newcomer makes plain mistakes (a class
    in capitals, a policy file with errors, JSON that is not a sequence, a 3-character id), then
    each is a usage error (exit 2) in one line naming it, found before any broker is asked (a
    connection attempt would exit 1), never an internal error, and no message ends in '.;'."""
    bad_policy = tmp_path / "bad.toml"
    bad_policy.write_text("[classes.production]\nrank = -1\npreempts = ['nope']\n")
    not_a_sequence = tmp_path / "counts.json"
    not_a_sequence.write_text('{"001": 12, "110": 30}')
    cases = {
        "--class Production": (
            ["submit", str(sequence_file), "--shots", "10", "--class", "Production"],
            "did you mean 'production'?",
        ),
        "owner --policy": (
            ["owner", "--policy", str(bad_policy), "--backend", "synthetic"],
            f"{bad_policy}:2: error: classes.production.rank: Input should be greater than",
        ),
        "JSON, no sequence": (
            ["submit", str(not_a_sequence), "--shots", "10"],
            "is not a Pulser abstract-repr sequence (an object without 'version'",
        ),
        "history of 3 chars": (["history", "8fa"], "too short to name a job"),
        "--shots 0": (["submit", str(sequence_file), "--shots", "0"], "0 is not in the range"),
    }
    for name, (args, says) in cases.items():
        done = run_qsched(DEAD_URL, "nobroker", *args, timeout_s=60)
        assert done.returncode == 2, (name, done.returncode, done.stderr)
        assert says in done.stderr, (name, done.stderr)
        assert "internal error" not in done.stderr and ".;" not in done.stderr, (name, done.stderr)
    owner = run_qsched(DEAD_URL, "nobroker", "owner", "--policy", str(bad_policy), timeout_s=60)
    assert f"{bad_policy}:3: error: class 'production' preempts unknown classes" in owner.stderr
    assert owner.stderr.splitlines()[-1].startswith(f"qsched: {bad_policy} is not a valid policy")


def test_the_owner_says_in_its_log_that_it_stopped_on_sigterm(owners: OwnerHarness) -> None:
    """Given an active owner, when it gets SIGTERM, then it exits 0 and its last log line says
    it stopped and on which signal (before: the log just ended)."""
    owner = owners.start("--backend", "synthetic")
    assert owner.stop() == 0
    last = owner.log().strip().splitlines()[-1]
    assert "stopped on SIGTERM" in last, owner.log()[-2000:]


def test_what_queue_status_and_results_show_an_operator(
    owners: OwnerHarness, sequence_file: Path
) -> None:
    """Through the real CLI, piped (80 columns): while paused, `queue` says "paused" where the
    ETA would be and `queue --explain` prints every factor whole, with a legend (was: "unknown",
    factors cut to `class_ran…`); after `ctl calibration-start` without --now, `status` says the
    calibration waits for the running job (was: nothing); the result of a QPU run (here cut
    short by a cancel) names its specs (was: null)."""
    owners.start("--backend", "synthetic", "--shot-rate", "10")
    assert qsched(owners, "ctl", "pause").returncode == 0
    # 100 s at 10 shots/s: still running when the cancel comes, however slow the CLI calls
    # between are on a loaded machine (200 shots at 20/s ended DONE before it under load).
    long = qsched(owners, "submit", str(sequence_file), "--shots", "1000").stdout.strip()
    assert long, "the long job was not accepted"
    short_job = qsched(owners, "submit", str(sequence_file), "--shots", "10").stdout.strip()
    listed = qsched(owners, "queue")
    rows = [
        line for line in listed.stdout.splitlines() if long[:8] in line or short_job[:8] in line
    ]
    assert len(rows) == 2 and all("paused" in row for row in rows), listed.stdout
    explained = qsched(owners, "queue", "--explain")
    assert explained.returncode == 0, explained.stderr
    assert "…" not in explained.stdout and max(map(len, explained.stdout.splitlines())) <= 80
    for heading in ("rank", "class/w", "grace", "site", "prio", "acct s", "user s"):
        assert heading in explained.stdout, heading
    for name in ("class_rank", "class_usage_per_weight", "effective_priority", "user_usage_s"):
        assert name in explained.stdout, name  # the legend names each factor whole

    assert qsched(owners, "ctl", "resume").returncode == 0
    client = owners.client()

    def long_runs() -> bool:
        status = client.control(CommandName.STATUS).status
        return status is not None and status.running is not None and status.running.job_id == long

    wait_until(long_runs, "the long job runs", 30)
    assert qsched(owners, "ctl", "calibration-start").returncode == 0
    status = qsched(owners, "status")
    assert f"calibration pending: starts when {long[:8]} ends" in status.stdout, status.stdout
    assert qsched(owners, "cancel", long).returncode == 0  # its run ends now, on the QPU
    result = qsched(owners, "result", long, "--wait", "--json", "--timeout", "60")
    ended = json.loads(result.stdout.splitlines()[-1])
    assert ended["state"] == "CANCELED" and ended["lane"] is None, ended
    assert isinstance(ended["specs"], str) and len(ended["specs"]) == 12, ended["specs"]
