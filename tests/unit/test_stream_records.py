"""A stream record holds one event or several; readers get the same events either way."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from brokers.stream import JOB_ID_HEADER, JOB_IDS_HEADER, StreamRecord, events_of, job_ids_of
from schemas.codec import encode
from schemas.events import Topic, make_event, stamp
from schemas.jobs import JobRequest
from schemas.records import EventRecord


def _event(topic: Topic, job_id: str):  # a stamped event, as the log holds them
    return stamp(make_event(topic, job_id=job_id), datetime.now(UTC), f"e-{job_id}")


def _record(message: object, offset: int = 7, headers: dict[str, object] | None = None):
    props = SimpleNamespace(type=message.type_name(), headers=headers)  # type: ignore[attr-defined]
    return StreamRecord(offset, props, encode(message), "job.accepted")  # type: ignore[arg-type]


def test_an_old_one_event_record_reads_as_its_event_at_index_0() -> None:
    event = _event(Topic.JOB_DONE, "j1")
    assert [e.model_dump(mode="json") for e in events_of(_record(event))] == [
        event.model_dump(mode="json")
    ]


def test_a_record_of_several_events_reads_as_each_in_order() -> None:
    events = [_event(Topic.JOB_DONE, f"j{i}") for i in range(3)]
    record = _record(EventRecord(events=events), headers={JOB_IDS_HEADER: "j0 j1 j2"})
    assert [e.model_dump(mode="json") for e in events_of(record)] == [
        e.model_dump(mode="json") for e in events
    ]
    assert job_ids_of(record) == ["j0", "j1", "j2"]


def test_a_record_that_is_no_event_reads_as_none() -> None:
    job = JobRequest(job_class="production", shots=1, sequence="{}")
    assert events_of(_record(job)) == []
    garbage = StreamRecord(1, SimpleNamespace(type="qsched.Event/1", headers=None), b"\xc1", "")  # type: ignore[arg-type]
    assert events_of(garbage) == []


def test_job_ids_come_from_either_header() -> None:
    event = _event(Topic.JOB_DONE, "j1")
    assert job_ids_of(_record(event, headers={JOB_ID_HEADER: "j1"})) == ["j1"]
    assert job_ids_of(_record(event)) == []
