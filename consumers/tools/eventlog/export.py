"""Writing an export of log records in one of the formats `qsched events export` offers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TextIO

from consumers.tools.eventlog.describe import event_record
from consumers.tools.eventlog.html import render_html
from consumers.tools.eventlog.model import build_timeline
from consumers.tools.eventlog.perfetto import export_trace
from consumers.tools.eventlog.reader import LogRecord
from schemas.envelope import Event

FORMATS = ("jsonl", "perfetto", "html")


def write_export(records: Iterable[LogRecord], fmt: str, out: TextIO) -> int:
    """Write `records` to `out` as `fmt` (one of `FORMATS`).

    Returns:
        How many events were read.

    Raises:
        ValueError: an unknown format.
    """
    if fmt == "jsonl":
        count = 0
        for record in records:
            out.write(json.dumps(event_record(record.event, record.offset)) + "\n")
            count += 1
        return count
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    counted = _Counted(records)
    timeline = build_timeline(counted, budget_marks=fmt == "html")
    if fmt == "perfetto":
        out.write(json.dumps(export_trace(timeline), separators=(",", ":")))
    else:
        out.write(render_html(timeline))
    return counted.count


class _Counted:
    """The events of records, counting them as they go by."""

    def __init__(self, records: Iterable[LogRecord]) -> None:
        self._records = records
        self.count = 0

    def __iter__(self) -> Iterator[Event]:
        for record in self._records:
            self.count += 1
            yield record.event
