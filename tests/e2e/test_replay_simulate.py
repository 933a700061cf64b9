"""`qsched events replay` and `qsched simulate` on the log of a real owner (one run, shared).

The owner runs a workload whose start order is the policy's doing: a backlog built while paused
(classes, priorities), then a production job that preempts a long development job. Replay must
rebuild what the owner's state was at two points; simulating the recorded history under the
policy the owner ran under must give exactly the recorded start order, and another policy must not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from brokers.stream import events_of
from consumers.tools.eventlog.reader import LogRecord
from consumers.tools.simulate.engine import simulate
from consumers.tools.simulate.history import read_history
from consumers.tools.simulate.metrics import start_order
from schemas import CommandName, Event, JobState
from schemas.policy import Policy, parse_policy
from tests.conftest import OwnerHarness
from tests.integration.test_owner import events
from tests.support.logread import records_to_end
from tests.support.owners import run_qsched, wait_running
from tests.support.sequences import analog_sequence

pytestmark = pytest.mark.e2e

BACKLOG = [  # (class, priority) submitted while paused
    ("development", 0),
    ("development", 9),
    ("production", 0),
    ("development", 5),
    ("production", 3),
    ("production", 7),
]
SWAPPED = (
    "[classes.production]\nrank = 2\n[classes.development]\nrank = 1\n"
    "[classes.calibration]\nrank = 0\ncalibrates = true\n"
)


def _recorded_run(owners: OwnerHarness) -> list[Event]:
    owners.start("--backend", "synthetic", "--shot-rate", "400")
    client = owners.client()
    assert client.control(CommandName.PAUSE).ok
    handles = [client.submit(analog_sequence(2), 40, c, priority=p) for c, p in BACKLOG]
    assert client.control(CommandName.RESUME).ok
    assert all(h.result(timeout=60).state is JobState.DONE for h in handles)
    long_dev = client.submit(analog_sequence(2), 1200, "development")
    wait_running(client, long_dev.job_id)
    urgent = client.submit(analog_sequence(2), 40, "production")
    assert urgent.result(timeout=60).state is JobState.DONE
    assert long_dev.result(timeout=60).state is JobState.DONE
    return events(owners)


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.slow  # long and rarely broken: the slow tier (CI runs it)
def test_replay_and_simulate_of_a_real_owners_log(owners: OwnerHarness, tmp_path: Path) -> None:
    logged = _recorded_run(owners)
    url, namespace = owners.broker.url, owners.broker.topology.namespace
    started = [e.job_id for e in logged if e.topic == "job.started"]
    assert [e.topic for e in logged].count("job.preempted") == 1

    # replay: at the resume, the paused backlog waits by class; at the end, everything is done
    # --from takes a record offset; a record may carry several events (an intake batch), so
    # the resume's offset is its record's, not its index in the list of events
    resume = next(
        record.offset
        for record in records_to_end(owners.broker.channel(), owners.broker.topology.events_stream)
        if any(e.topic == "control.resume" for e in events_of(record))
    )
    done = run_qsched(url, namespace, "events", "replay", "--from", str(resume), "--jobs", "--json")
    assert done.returncode == 0, done.stderr
    at_resume, at_end = _json_lines(done.stdout)
    assert at_resume["state"] == "from" and at_resume["qpu"] == "PAUSED"
    assert at_resume["waiting_by_class"] == {"production": 3, "development": 3}
    assert [j["job_id"] for j in at_resume["jobs"]] == started[:6]  # policy order = start order
    assert at_end["qpu"] == "IDLE" and at_end["waiting"] == 0 and at_end["running"] is None
    assert at_end["ended"] == {"DONE": len(BACKLOG) + 2}
    assert at_end["usage_s"]["users"]["/guest"] > 0
    text = run_qsched(url, namespace, "events", "replay", "--to", str(resume - 1))  # inclusive
    assert text.returncode == 0, text.stderr
    assert "QPU PAUSED" in text.stdout and "waiting 6: production 3, development 3" in text.stdout

    # simulate, in process: the policy the owner ran under reproduces the start order exactly
    records = [LogRecord(i, e) for i, e in enumerate(logged)]
    recorded = read_history(records, Policy(), None, 0.2)
    simulated = simulate(Policy(), recorded)
    assert start_order(simulated) == list(dict.fromkeys(started))
    assert [e.job_id for e in simulated if e.topic == "job.started"] == started  # restarts too
    assert [e.topic for e in simulated].count("job.preempted") == 1
    swapped = simulate(parse_policy(SWAPPED), read_history(records, Policy(), None, 0.2))
    assert start_order(swapped) != start_order(simulated)

    # simulate, the command: the same verdict and the figures side by side
    same = tmp_path / "same.toml"
    same.write_text("# the defaults the owner ran under\n")
    other = tmp_path / "swapped.toml"
    other.write_text(SWAPPED)
    ran = run_qsched(url, namespace, "simulate", "--policy", str(same), "--json")
    assert ran.returncode == 0, ran.stderr
    (report,) = _json_lines(ran.stdout)
    assert report["start_order"]["same"] is True
    assert report["recorded"]["preemptions"] == report["simulated"]["preemptions"] == 1
    assert report["simulated"]["jobs"]["ended"] == {"DONE": len(BACKLOG) + 2}
    assert 0 < report["simulated"]["utilisation"] <= 1
    # FIFO on the same log: priorities no longer reorder a class (3 before 7 in production)
    ran = run_qsched(url, namespace, "simulate", "--policy", str(same), "--ordering", "fifo")
    assert ran.returncode == 0, ran.stderr
    assert "production fifo" in ran.stdout and "development fifo" in ran.stdout
    assert "start order: differs from position" in ran.stdout
    html = tmp_path / "simulated.html"
    ran = run_qsched(url, namespace, "simulate", "--policy", str(other), "--html", str(html))
    assert ran.returncode == 0, ran.stderr
    assert "start order: differs from position" in ran.stdout
    assert "wait p95 s, class production" in ran.stdout
    assert html.read_text().count('class="bar qpu') >= len(BACKLOG) + 2
