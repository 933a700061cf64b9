"""The Slurm scripts of infra/slurm/ on their own (no Slurm needed): the Epilog never blocks or
fails a job when qsched cannot be told, and the TaskProlog exports what squeue says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e
SLURM = Path(__file__).resolve().parents[2] / "infra" / "slurm"
QSCHED = str(Path(sys.executable).with_name("qsched"))


def run_epilog(tmp_path: Path, env_lines: str, **extra: str) -> tuple[int, str]:
    (tmp_path / "epilog.env").write_text(env_lines)
    log = tmp_path / "epilog.log"
    env = {
        "PATH": os.environ["PATH"],
        "SLURM_JOB_ID": "77",
        "QSCHED_EPILOG_ENV": str(tmp_path / "epilog.env"),
        "QSCHED_EPILOG_LOG": str(log),
        "QSCHED_BIN": QSCHED,
        **extra,
    }
    done = subprocess.run([str(SLURM / "epilog.sh")], env=env, timeout=120, check=False)
    return done.returncode, log.read_text()


def test_epilog_exits_0_and_logs_when_the_broker_is_unreachable(tmp_path: Path) -> None:
    code, log = run_epilog(tmp_path, "QSCHED_AMQP_URL=amqp://guest:guest@127.0.0.1:1/%2F\n")
    assert code == 0
    assert "allocation 77: qsched not told (exit 1" in log
    assert "no broker answers at 127.0.0.1:1" in log  # refused for the broker, not for a setting


def test_epilog_gives_up_after_its_timeout_when_qsched_hangs(tmp_path: Path) -> None:
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nexec sleep 600\n")
    hang.chmod(0o755)
    code, log = run_epilog(tmp_path, "", QSCHED_BIN=str(hang), QSCHED_EPILOG_TIMEOUT_S="1")
    assert code == 0
    assert "allocation 77: qsched not told (exit 124" in log  # timeout(1)'s exit status


def test_task_prolog_exports_the_true_end_and_account_from_squeue(tmp_path: Path) -> None:
    fake = tmp_path / "squeue"
    fake.write_text('#!/bin/sh\n[ "$SLURM_TIME_FORMAT" = "%s" ] && echo "1900000000|qphys"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_JOB_ID": "12"}
    done = subprocess.run(
        [str(SLURM / "task-prolog.sh")], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == [
        "export QSCHED_SLURM_ALLOCATION=12",
        "export SLURM_JOB_END_TIME=1900000000",
        "export SLURM_JOB_ACCOUNT=qphys",
    ]
    fake.write_text('#!/bin/sh\necho "Unknown|(null)"\n')  # no time limit, no account
    done = subprocess.run(
        [str(SLURM / "task-prolog.sh")], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == ["export QSCHED_SLURM_ALLOCATION=12"]


def run_prolog(tmp_path: Path, env_lines: str, **extra: str) -> tuple[int, str]:
    """Run infra/slurm/prolog.sh as slurmctld would for job 88 of alice (account qchem)."""
    (tmp_path / "epilog.env").write_text(env_lines)
    log = tmp_path / "prolog.log"
    env = {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "88",
        "SLURM_JOB_USER": "alice",
        "SLURM_JOB_UID": "1001",
        "SLURM_JOB_ACCOUNT": "qchem",
        "SLURM_JOB_PARTITION": "qpu",
        "QSCHED_EPILOG_ENV": str(tmp_path / "epilog.env"),
        "QSCHED_PROLOG_LOG": str(log),
        "QSCHED_BIN": QSCHED,
        **extra,
    }
    done = subprocess.run([str(SLURM / "prolog.sh")], env=env, timeout=120, check=False)
    return done.returncode, log.read_text() if log.exists() else ""


def test_prolog_sends_allocation_started_in_the_documented_form(tmp_path: Path) -> None:
    """Given Slurm's prolog environment and squeue's end time, then the prolog runs `qsched ctl
    allocation-started 88 --user alice --account qchem --end 1900000000` (uid, partition too)
    and exits 0; with no end from squeue and a "(null)" account, it sends neither."""
    (tmp_path / "squeue").write_text(
        '#!/bin/sh\n[ "$SLURM_TIME_FORMAT" = "%s" ] && echo 1900000000\n'
    )
    (tmp_path / "squeue").chmod(0o755)
    argv = tmp_path / "argv"
    fake = tmp_path / "fake-qsched"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv}\necho registered\n')
    fake.chmod(0o755)
    code, log = run_prolog(tmp_path, "", QSCHED_BIN=str(fake))
    assert code == 0
    assert argv.read_text().splitlines() == [
        "ctl", "allocation-started", "88", "--user", "alice", "--account", "qchem",
        "--end", "1900000000", "--uid", "1001", "--partition", "qpu",
    ]  # fmt: skip
    assert "allocation 88 of alice registered (account qchem, end 1900000000)" in log
    (tmp_path / "squeue").write_text("#!/bin/sh\necho Unknown\n")
    code, _ = run_prolog(tmp_path, "", QSCHED_BIN=str(fake), SLURM_JOB_ACCOUNT="(null)")
    assert code == 0
    assert "--account" not in argv.read_text() and "--end" not in argv.read_text()


def test_prolog_exits_0_and_logs_when_the_broker_is_unreachable_or_qsched_hangs(
    tmp_path: Path,
) -> None:
    """A prolog that fails requeues the job or drains the node: it always exits 0."""
    code, log = run_prolog(
        tmp_path, "QSCHED_AMQP_URL=amqp://guest:guest@127.0.0.1:1/%2F\n", QSCHED_PROLOG_SQUEUE="0"
    )
    assert code == 0
    assert "allocation 88 of alice: qsched not told (exit 1" in log
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nexec sleep 600\n")
    hang.chmod(0o755)
    code, log = run_prolog(
        tmp_path, "", QSCHED_BIN=str(hang), QSCHED_PROLOG_TIMEOUT_S="1", QSCHED_PROLOG_SQUEUE="0"
    )
    assert code == 0
    assert "qsched not told (exit 124" in log


def test_prolog_registers_the_allocation_with_a_real_owner_and_its_job_takes_that_account(
    owners: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a real owner, when the prolog (the real CLI) registers allocation 88 of the broker
    user, then a job from inside it that claims another account runs under the registry's."""
    from schemas.enums import JobState
    from schemas.events import Topic
    from tests.support.hostile import log_events
    from tests.support.sequences import analog_sequence

    owners.start("--backend", "synthetic", "--shot-rate", "200")
    broker = owners.broker
    env_lines = f"QSCHED_AMQP_URL={broker.url}\nQSCHED_NAMESPACE={broker.topology.namespace}\n"
    code, log = run_prolog(tmp_path, env_lines, SLURM_JOB_USER="guest", QSCHED_PROLOG_SQUEUE="0")
    assert code == 0 and "allocation 88 of guest registered" in log, log
    monkeypatch.setenv("SLURM_JOB_ID", "88")
    monkeypatch.setenv("SLURM_JOB_ACCOUNT", "claimed-elsewhere")
    client = owners.client(validate_locally=False)
    result = client.submit(analog_sequence(2), 5).result(timeout=60)
    assert result.state is JobState.DONE
    accepted = [
        e
        for e in log_events(broker.channel(), broker.topology)
        if e.topic == Topic.JOB_ACCEPTED and e.job_id == result.job_id
    ]
    assert accepted[0].data["verified"]["account"] == "qchem"
    assert accepted[0].data["verified"]["allocation"] == "88"
