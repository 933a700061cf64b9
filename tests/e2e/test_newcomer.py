"""What a newcomer runs first, through the real `qsched` CLI against a real owner (issue 24):
job id prefixes, the first submit before any owner ran, plain mistakes as one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import OwnerHarness
from tests.owners import run_qsched
from tests.sequences import analog_sequence

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
