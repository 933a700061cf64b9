"""`qsched` as a user runs it: the real command in a subprocess against the real broker.

Each mistake a new user makes is one line on stderr saying what went wrong and what to do, with
the documented exit code (0 ok, 1 error, 2 usage, 3 timeout or no owner), JSON on stdout under
``--json``; waiting says what the job waits for; Ctrl-C says how to follow or cancel it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BrokerFixture, OwnerHarness
from tests.support.environment import queues_starting_with
from tests.support.owners import QSCHED
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.e2e


def qsched(
    url: str, namespace: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `qsched` with only the given settings in its environment."""
    full = {"PATH": "/usr/bin:/bin", "QSCHED_AMQP_URL": url, "QSCHED_NAMESPACE": namespace}
    full |= env or {}
    return subprocess.run(
        [QSCHED, *args], env=full, capture_output=True, text=True, timeout=timeout, check=False
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (and nothing that looks like a traceback)."""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("qsched: ") and "Traceback" not in done.stderr
    return lines[0]


def as_in_a_terminal() -> None:
    """Ctrl-C reaches the command as in a terminal: SIGINT at its default disposition, even when
    the tests run where it is ignored (started by `nohup ... &`, whose ignored SIGINT every child
    inherits across exec; CI started that way saw the command ignore the SIGINT and wait on)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def submit_and_wait_until_submitted(
    seq_file: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start `qsched submit --wait` (Ctrl-C reaching it as in a terminal) and read its stderr up
    to the `submitted` line (or EOF, if the command died); the process and the lines read."""
    process = subprocess.Popen(
        [QSCHED, "submit", str(seq_file), "--shots", "10", "--wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("submitted "):
            break  # piped, the waiter shows nothing more
    return process, seen


@pytest.fixture
def seq_file(tmp_path: Path) -> Path:
    """An AnalogDevice sequence file."""
    path = tmp_path / "seq.json"
    path.write_text(analog_sequence(2))
    return path


@pytest.mark.parametrize(
    ("case", "env", "args", "code", "says"),
    [
        (
            "wrong password",
            {"QSCHED_AMQP_URL": "amqp://guest:nope@127.0.0.1:5672/%2F"},
            ("status",),
            1,
            "wrong user name or password",
        ),
        ("http url", {"QSCHED_AMQP_URL": "http://foo"}, ("status",), 1, "amqp://"),
        (
            "missing vhost",
            {"QSCHED_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/nope"},
            ("status",),
            1,
            "no virtual host 'nope'",
        ),
        (
            "unreachable",
            {"QSCHED_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F"},
            ("status",),
            1,
            "qsched broker up",
        ),
        ("namespace", {"QSCHED_NAMESPACE": "my ns"}, ("status",), 1, "QSCHED_NAMESPACE"),
        (
            "typo",
            {"QSCHED_OWNER__SHOTRATE_HZ": "5"},
            ("status",),
            1,
            "did you mean QSCHED_OWNER__SHOT_RATE_HZ",
        ),
        ("missing config", {}, ("--config", "/nope.toml", "status"), 1, "does not exist"),
        ("jaeger", {"OTEL_TRACES_EXPORTER": "jaeger"}, ("owner",), 1, "OTEL_TRACES_EXPORTER"),
        (
            "jaeger client",
            {"OTEL_TRACES_EXPORTER": "jaeger"},
            ("submit", "{seq}", "--shots", "5"),
            1,
            "OTEL_TRACES_EXPORTER",
        ),
        (
            "otlp protocol",
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"},
            ("owner",),
            1,
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        ("zero shots", {}, ("submit", "{seq}", "--shots", "0"), 2, "--shots"),
        ("negative shots", {}, ("submit", "{seq}", "--shots", "-5"), 2, "--shots"),
        ("not json", {}, ("submit", "{text}", "--shots", "5"), 2, "make_sequence.py"),
        ("bad toml", {}, ("--config", "{toml}", "status"), 1, "not valid TOML"),
    ],
)
def test_a_users_mistake_is_one_line_with_what_to_do_and_its_exit_code(
    broker: BrokerFixture,
    seq_file: Path,
    tmp_path: Path,
    case: str,
    env: dict[str, str],
    args: tuple[str, ...],
    code: int,
    says: str,
) -> None:
    text = tmp_path / "seq.txt"
    text.write_text("not json at all")
    toml = tmp_path / "bad.toml"
    toml.write_text("namespace = \n")
    args = tuple(a.format(seq=seq_file, text=text, toml=toml) for a in args)
    started = time.monotonic()
    done = qsched(broker.url, broker.topology.namespace, *args, env=env)
    assert done.returncode == code, (case, done.stdout, done.stderr)
    line = one_line(done)
    assert says in line, line
    assert "nope@" not in line and ":nope" not in line  # never the password
    if case == "unreachable":
        assert time.monotonic() - started < 30, "an unreachable broker is not retried for long"
    if args[0] == "owner":  # a service: it logs, it has no --json
        return
    as_json = qsched(broker.url, broker.topology.namespace, *args, "--json", env=env)
    error = json.loads(as_json.stdout)["error"]
    assert as_json.returncode == code and says in error["message"] + error["hint"]


def test_debug_shows_the_traceback(broker: BrokerFixture) -> None:
    done = qsched(broker.url, "my ns", "--debug", "status")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and done.stderr.strip().splitlines()[-1].startswith("qsched:")


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_help_documents_exit_codes_and_every_json_flag(broker: BrokerFixture) -> None:
    root = qsched(broker.url, broker.topology.namespace, "--help")
    assert "Exit codes: 0 ok; 1 error" in root.stdout and "3 timed out" in root.stdout
    for command in (
        *("submit", "result", "status", "cancel", "ctl pause", "ctl mode"),
        *("show", "hold", "release", "update", "requeue", "dead list", "dead requeue"),
    ):
        shown = qsched(broker.url, broker.topology.namespace, *command.split(), "--help")
        assert "--json" in shown.stdout and "JSON lines" in shown.stdout, command


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_a_control_command_no_owner_answered_expires_unapplied(
    owners: OwnerHarness,
) -> None:
    url, ns = owners.broker.url, owners.broker.topology.namespace
    paused = qsched(url, ns, "ctl", "pause", "--timeout", "1")
    assert paused.returncode == 3
    assert "no QPU owner answered pause" in one_line(paused)
    owner = owners.start("--backend", "synthetic")
    status = qsched(url, ns, "status", "--json")
    assert json.loads(status.stdout)["qpu_state"] == "IDLE", "the expired pause was applied"
    mode = qsched(url, ns, "ctl", "mode", "development", "--message", "tests")
    assert mode.returncode == 0
    assert "control.mode by guest" in owner.log()


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_submit_wait_tells_a_held_job_why_and_times_out_with_exit_3(
    owners: OwnerHarness, seq_file: Path
) -> None:
    url, ns = owners.broker.url, owners.broker.topology.namespace
    owners.start("--backend", "synthetic")
    message = "laser realignment until 14:00"
    assert qsched(url, ns, "ctl", "mode", "maintenance", "--message", message).returncode == 0
    done = qsched(url, ns, "submit", str(seq_file), "--shots", "10", "--wait", "--timeout", "8")
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("submitted ") and len(lines[0].split()[1]) == 36
    job_id = lines[0].split()[1]
    assert len(lines) == 2, lines  # piped: no progress lines, only the id and the outcome
    assert lines[-1].startswith("qsched: 1 of 1 jobs have no result after 8 s")
    assert "QUEUED" in lines[-1] and message in lines[-1] and "maintenance mode" in lines[-1]
    assert f"qsched cancel {job_id}" in lines[-1]
    status = qsched(url, ns, "status")
    assert message in status.stdout and "maintenance mode does not run development" in status.stdout


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_submit_wait_shows_shots_and_prints_json_lines_for_many_jobs(
    owners: OwnerHarness, seq_file: Path
) -> None:
    url, ns = owners.broker.url, owners.broker.topology.namespace
    owners.start(
        "--backend",
        "synthetic",
        "--shot-rate",
        "400",
        env={"QSCHED_OWNER__PROGRESS_EVERY_SHOTS": "50"},
    )
    done = qsched(
        url, ns, "submit", str(seq_file), "--repeat", "2", "--shots", "200", "--wait", "--json"
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["state"] for r in results] == ["DONE", "DONE"]
    assert [sum(r["counts"].values()) for r in results] == [200, 200]
    # --json (and piped): quiet while waiting; only the ids submitted go to stderr.
    assert [ln.split()[0] for ln in done.stderr.splitlines()] == ["submitted"] * 2, done.stderr


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_ctrl_c_while_waiting_says_the_job_is_still_queued_and_how_to_follow_it(
    owners: OwnerHarness, seq_file: Path
) -> None:
    url, ns = owners.broker.url, owners.broker.topology.namespace
    owners.start("--backend", "synthetic")
    assert qsched(url, ns, "ctl", "pause").returncode == 0
    env = {"PATH": "/usr/bin:/bin", "QSCHED_AMQP_URL": url, "QSCHED_NAMESPACE": ns}
    process, seen = submit_and_wait_until_submitted(seq_file, env)
    assert seen and seen[-1].startswith("submitted "), seen
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Aborted" not in rest
    last = rest.strip().splitlines()[-1]
    job_id = seen[0].split()[1]
    assert f"job {job_id} is still QUEUED" in last
    assert f"qsched cancel {job_id}" in last and f"qsched result {job_id} --wait" in last


@pytest.mark.slow  # 12 submits: the slow tier (CI runs it)
def test_ctrl_c_at_any_moment_after_the_submit_ends_the_call_and_deletes_its_reply_queue(
    owners: OwnerHarness, seq_file: Path
) -> None:
    """Ctrl-C can stop py-amqp in the middle of a frame (the budget note's or the waiter's
    request): the call must still end at once with 130 and its reply queue must go. Before,
    about 1 in 6 such calls hung for ever deleting the reply queue on the interrupted
    connection (7 of 40 at 0-30 ms after `submitted`; CI saw one in the test above). Timing
    makes this one a sampler; tests/integration/test_client.py interrupts mid-frame for sure."""
    url, ns = owners.broker.url, owners.broker.topology.namespace
    owners.start("--backend", "synthetic")
    assert qsched(url, ns, "ctl", "pause").returncode == 0
    env = {"PATH": "/usr/bin:/bin", "QSCHED_AMQP_URL": url, "QSCHED_NAMESPACE": ns}
    for attempt in range(12):
        process, _ = submit_and_wait_until_submitted(seq_file, env)
        time.sleep(attempt * 0.0025)  # 0 to 27.5 ms: inside the next requests' frames
        process.send_signal(signal.SIGINT)
        try:
            _, rest = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(
                f"Ctrl-C {attempt * 2.5} ms after the submit: still running"
            ) from None
        assert process.returncode == 130, (attempt, rest)
    harness = {c.reply_queue_name for c in owners.clients}
    assert [q for q in queues_starting_with(f"{ns}.reply.") if q not in harness] == []


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_cancel_of_an_unknown_id_fails_and_prefixes_are_accepted(
    owners: OwnerHarness, seq_file: Path
) -> None:
    url, ns = owners.broker.url, owners.broker.topology.namespace
    owners.start("--backend", "synthetic")
    unknown = qsched(url, ns, "cancel", "00000000-0000-4000-8000-000000000000")
    assert unknown.returncode == 1 and "00000000-0000-4000-8000-000000000000" in one_line(unknown)
    as_json = qsched(url, ns, "cancel", "00000000-0000-4000-8000-000000000000", "--json")
    assert json.loads(as_json.stdout)["error"]["error"]["code"] == "UNKNOWN_JOB"
    typo = qsched(url, ns, "cancel", "nope")
    assert typo.returncode == 1 and "no job starting with 'nope'" in one_line(typo)
    job_id = qsched(url, ns, "submit", str(seq_file), "--shots", "5").stdout.strip()
    by_prefix = qsched(url, ns, "result", job_id[:8], "--wait", "--json", "--timeout", "60")
    assert by_prefix.returncode == 0, by_prefix.stderr
    assert json.loads(by_prefix.stdout)["job_id"] == job_id


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_status_fits_80_columns_in_a_terminal(
    owners: OwnerHarness, seq_file: Path, tmp_path: Path
) -> None:
    url, ns = owners.broker.url, owners.broker.topology.namespace
    owners.start("--backend", "synthetic")
    message = "laser realignment until 14:00 " + "x" * 80
    assert qsched(url, ns, "ctl", "mode", "maintenance", "--message", message).returncode == 0
    job_id = qsched(url, ns, "submit", str(seq_file), "--shots", "5").stdout.strip()
    session = f"qsched-{ns}"
    command = (
        f"env -i PATH=/usr/bin:/bin TERM=xterm QSCHED_AMQP_URL='{url}' QSCHED_NAMESPACE={ns} "
        f"{QSCHED} status; tmux wait-for -S {session}-done; sleep 600"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command], check=True
    )
    try:
        # tmux's own signal: returns when the command above has printed the status.
        subprocess.run(["tmux", "wait-for", f"{session}-done"], timeout=90, check=True)
        screen = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    lines = screen.splitlines()
    header = next(ln for ln in lines if ln.startswith("QPU "))
    assert "mode maintenance" in header and "backend synthetic" in header
    assert any(ln.startswith("maintenance: laser realignment") and ln.endswith("…") for ln in lines)
    assert any(
        job_id[:8] in ln and "maintenance mode does not run development" in ln for ln in lines
    )
    assert all(len(ln) <= 80 for ln in lines)


def test_submit_traces_its_publish_and_the_results_receipt_from_otel_variables(
    owners: OwnerHarness, seq_file: Path, tmp_path: Path
) -> None:
    url, ns = owners.broker.url, owners.broker.topology.namespace
    owners.start("--backend", "synthetic")
    trace_file = tmp_path / "client-spans.jsonl"
    env = {"OTEL_TRACES_EXPORTER": "console", "QSCHED_TRACE_FILE": str(trace_file)}
    done = qsched(url, ns, "submit", str(seq_file), "--shots", "5", "--wait", "--json", env=env)
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["job_id"]
    spans = [json.loads(line) for line in trace_file.read_text().splitlines()]
    publish = next(s for s in spans if s["kind"] == "SpanKind.PRODUCER")
    receive = next(s for s in spans if s["kind"] == "SpanKind.CONSUMER")
    assert publish["attributes"]["messaging.message.id"] == job_id
    assert receive["context"]["trace_id"] == publish["context"]["trace_id"]


def test_broker_up_no_start_with_an_unreachable_url_fails_without_the_password(
    broker: BrokerFixture,
) -> None:
    secret_url = "amqp://alice:s3cret@127.0.0.1:1/%2F"
    done = qsched(secret_url, broker.topology.namespace, "broker", "up", "--no-start")
    assert done.returncode == 1
    line = one_line(done)
    assert "no broker answers at amqp://alice:***@127.0.0.1:1" in line
    assert "s3cret" not in done.stdout + done.stderr


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_cancel_of_a_running_emulator_job_keeps_its_partial_counts(
    owners: OwnerHarness, seq_file: Path
) -> None:
    url, ns = owners.broker.url, owners.broker.topology.namespace
    owners.start("--backend", "emulator", "--shot-rate", "20")
    client = owners.client()
    handle = client.submit(seq_file.read_text(), 400, job_class="development")  # 20 s
    progressed: list[object] = []
    handle.on_progress = progressed.append
    while not progressed:  # first progress after 100 shots; bounded by the test timeout
        client.poll(0.5)
    canceled = qsched(url, ns, "cancel", handle.job_id[:8])
    assert canceled.returncode == 0, canceled.stderr
    shown = qsched(url, ns, "result", handle.job_id[:8], "--wait", "--timeout", "60")
    first = shown.stdout.splitlines()[0]
    assert " CANCELED (development, " in first
    measured = int(first.split(", ")[1].split("/")[0])
    # The shots already reported (100) are kept, and the job did not run to the end. The cancel
    # comes after a CLI process starts, usually a step (20 shots) or more later, but that is
    # timing: on a fast run it lands before the next step and exactly 100 are kept.
    assert 100 <= measured < 400, first


def test_a_bad_specs_file_is_refused_with_its_reason_before_anything_is_sent(
    broker: BrokerFixture, tmp_path: Path
) -> None:
    specs = tmp_path / "bad.json"
    specs.write_text('{"version": "1", "name": "x"}')
    done = qsched(
        broker.url, broker.topology.namespace, "ctl", "calibration-complete", "--specs", str(specs)
    )
    assert done.returncode == 2
    line = one_line(done)
    assert "is not a Pulser device JSON: ValidationError: " in line
    assert line.split("ValidationError: ", 1)[1].strip()


def test_submit_defaults_to_the_development_class_and_says_so(broker: BrokerFixture) -> None:
    shown = qsched(broker.url, broker.topology.namespace, "submit", "--help")
    assert "[default: development]" in shown.stdout
    assert "production jobs may preempt" in " ".join(shown.stdout.split())
