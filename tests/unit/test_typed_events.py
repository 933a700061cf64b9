"""Events typed end to end: built with their topic's payload model, kept on the event in memory,
stamped by the core with the shell's `now` and ids, and every ignored event kept with why."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumers.core.commands import TABLE, Command
from consumers.core.step import Dispatch, Finished
from consumers.tools.eventlog.describe import job_histories
from consumers.tools.eventlog.reader import LogRecord
from consumers.tools.eventlog.replay import render, replay
from schemas.codec import decode, encode
from schemas.control import ControlCommand
from schemas.enums import CommandName
from schemas.envelope import Event
from schemas.events import (
    ControlApplied,
    JobBack,
    JobProgress,
    JobRetrying,
    Topic,
    command_of,
    is_stamped,
    make_event,
    payload_of,
    topic_of,
)
from schemas.jobs import JobError
from schemas.wire import seeded_ids
from tests.unit.core_harness import POLICY, T0, Harness


def test_an_event_refuses_a_payload_of_another_topic() -> None:
    with pytest.raises(TypeError, match=r"job\.progress event carries JobProgress, not JobBack"):
        make_event(Topic.JOB_PROGRESS, JobBack())
    retrying = JobRetrying(
        error=JobError(code="BACKEND_ERROR", message="x"), retry_at=T0, failures=1
    )
    with pytest.raises(TypeError, match="carries JobBack, not JobRetrying"):
        make_event(Topic.JOB_PREEMPTED, retrying)  # a subclass is another payload
    with pytest.raises(TypeError, match="needs a JobStarted payload"):
        make_event(Topic.JOB_STARTED)
    with pytest.raises(TypeError, match="from its CommandName"):
        make_event(Topic.CONTROL, ControlApplied(ok=True, command_id="c"))


def test_the_payload_stays_on_the_event_and_a_decoded_one_is_parsed_once() -> None:
    progress = JobProgress(shots_done=3, counts={"01": 3})
    event = make_event(Topic.JOB_PROGRESS, progress, job_id="j")
    assert payload_of(event, JobProgress) is progress
    assert payload_of(event.model_copy(update={"term": 2}), JobProgress) is progress
    assert payload_of(event.model_copy(update={"data": {"shots_done": 4}}), JobProgress) == (
        JobProgress(shots_done=4)
    )
    decoded = decode(encode(event), Event.type_name(), Event, 1 << 20)
    first = payload_of(decoded, JobProgress)
    assert first == progress and payload_of(decoded, JobProgress) is first


def test_a_control_topic_comes_from_its_command_name() -> None:
    event = make_event(CommandName.DRAIN, ControlApplied(ok=True, command_id="c"))
    assert event.topic == "control.drain"
    assert topic_of(event) is Topic.CONTROL and command_of(event) is CommandName.DRAIN
    assert command_of(make_event(Topic.JOB_NOTE, None)) is None


def test_events_are_built_unstamped_and_step_stamps_them_with_now_and_the_given_ids() -> None:
    assert not is_stamped(make_event(Topic.JOB_NOTE, None, reason="x"))
    h = Harness(seed=3)
    h.now = T0 + timedelta(hours=1)
    job_id = h.submit()
    h.feed(Dispatch())
    ids = seeded_ids(3)
    expected = [ids() for _ in range(len(h.log))]
    assert [e.event_id for e in h.log] == expected  # every id from the source, in order
    started = h.log[-1]
    assert started.topic == Topic.JOB_STARTED and started.job_id == job_id and started.at == h.now


def test_every_command_has_one_row_saying_who_what_and_whether_it_is_logged() -> None:
    assert set(TABLE) == set(CommandName)
    quiet = {name for name, spec in TABLE.items() if not spec.logged}
    assert CommandName.STATUS in quiet and CommandName.PAUSE not in quiet
    epilog = {name for name, spec in TABLE.items() if spec.epilog}
    assert CommandName.ALLOCATION_ENDED in epilog and CommandName.PAUSE not in epilog
    h = Harness()
    before = len(h.log)
    h.feed(Command(ControlCommand(command=CommandName.STATUS), "guest"))
    assert len(h.log) == before  # read-only and accepted: not logged
    h.feed(Command(ControlCommand(command=CommandName.PAUSE), "mallory"))
    assert [e.topic for e in h.log[before:]] == ["control.pause"]  # refused: logged


def test_an_ignored_event_is_kept_with_why_and_shown_by_history_and_replay_explain() -> None:
    h = Harness()
    job_id = h.submit()
    h.feed(Dispatch())
    h.now += timedelta(seconds=1)
    h.feed(Finished(job_id, {"0": 100}))
    done = h.log[-1]
    h.emit([done.model_copy(update={"event_id": "again"})])  # a copy of its final event
    stale = make_event(Topic.JOB_NOTE, None, job_id=job_id, event_id="stale", at=h.now)
    h.state.apply(stale.model_copy(update={"term": 0}))
    whys = h.state.ignored_of(job_id)
    assert whys == {
        "again": f"job {job_id} ended DONE before",
        "stale": "stale term 0: an owner of term 1 is active",
    }
    assert h.state.ignored == 2
    reply = h.feed(Command(ControlCommand(command=CommandName.HISTORY, job_id=job_id), "alice"))
    assert reply[-1].reply.ignored == whys  # type: ignore[attr-defined]
    history = job_histories([*h.log, stale], job_id, whys)[job_id]
    assert [e.ignored for e in history.entries if e.ignored] == list(whys.values())

    records = [LogRecord(i, event) for i, event in enumerate(h.log)]
    (point,) = replay(records, POLICY, explain=True)
    (shown,) = point.report["ignored_events"]
    assert shown["offset"] == len(h.log) - 1 and shown["why"] == whys["again"]
    assert f"ignored at offset {shown['offset']}: job.done {job_id}" in render(point)
    (plain,) = replay(records, POLICY)
    assert "ignored_events" not in plain.report
