"""`qsched usage`'s plain table (issue 22 item 4): sreport-like, aligned, never cut (a rich
table cut 'development' to 'developm…' at 80 columns or piped)."""

from __future__ import annotations

import pytest

from producers.usage_cli import print_usage
from schemas.reports import UsageReport, UsageRow


def test_the_usage_table_is_plain_aligned_and_keeps_long_names_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = UsageReport(
        rows=[
            UsageRow(
                account="quantum-chemistry-2026",
                job_class="development",
                jobs=9,
                runs=9,
                shots=1800,
                qpu_s=10.857,
                wait_s=294.12,
                started=9,
            ),
            UsageRow(account="", job_class="production", jobs=3, runs=3, shots=600, qpu_s=27.7),
        ]
    )
    print_usage(report)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "QPU usage, the start .. now"
    header, rule, first, second = out[1:]
    assert header.split() == [
        "account",
        "job_class",
        "jobs",
        "runs",
        "shots",
        "qpu_s",
        "emulator_s",
        "mean_wait_s",
        "preemptions",
    ]
    assert first.split()[:2] == ["quantum-chemistry-2026", "development"]
    assert second.split()[:2] == ["(none)", "production"]
    assert len({len(line) for line in (header, rule, first, second)}) == 1  # aligned
    assert first.index("1800") + 4 == second.index("600") + 3  # figures right-aligned
