"""Times and durations as typed on the command line: what parses, and one line (exit 2) for
what does not, from `qsched usage` and `qsched budget` (no broker: refused before connecting)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from brokers.cli import main
from schemas.timespec import parse_duration_s, parse_moment

NOW = datetime(2026, 12, 7, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3600", 3600),
        ("90s", 90),
        ("30m", 1800),
        ("10h", 36_000),
        ("2d", 172_800),
        ("1w", 604_800),
        ("0.5h", 1800),
    ],
)
def test_a_duration_is_seconds_or_a_number_with_a_unit(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["0", "0s", "-5", "ten", "3x", "", "1e9999"])
def test_a_duration_that_is_not_one_or_not_above_zero_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("\\", "\\\\")[1:-1] or ".*"):
        parse_duration_s(text)


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("now", NOW),
        ("7d", NOW - timedelta(days=7)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T08:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T08:00+01:00", datetime(2026, 12, 1, 7, tzinfo=UTC)),
    ],
)
def test_a_moment_is_an_iso_time_now_or_a_duration_ago(text: str, moment: datetime) -> None:
    assert parse_moment(text, NOW) == moment


@pytest.mark.parametrize(
    "args",
    [
        ["budget", "set", "phys", "0"],
        ["budget", "set", "phys", "--", "-5"],
        ["budget", "set", "phys", "-5"],
        ["budget", "top-up", "phys", "-1h"],
        ["budget", "top-up", "phys", "ten"],
        ["usage", "--since", "yesterday-ish"],
        ["budget", "set", "phys", "10", "--period", "fortnight"],
    ],
)
def test_bad_durations_and_times_exit_2_with_one_line(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qsched: "), lines
    if args[-1].startswith("-"):  # a negative duration is named as one, not as an option
        assert f"'{args[-1]}': a duration must be more than zero" in lines[0], lines
