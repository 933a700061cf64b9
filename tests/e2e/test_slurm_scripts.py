"""The Slurm scripts of infra/slurm/ on their own (no Slurm needed): the Epilog never blocks or
fails a job when qsched cannot be told, and the TaskProlog exports what squeue says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
