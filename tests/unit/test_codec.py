"""The codec: every model round-trips; bad bytes only ever raise DecodeError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.core.commands import SLURM_COMMANDS
from schemas import (
    CommandName,
    ControlCommand,
    ControlReply,
    DecodeError,
    DeviceSpecs,
    EncodeError,
    ErrorCode,
    Event,
    JobError,
    JobPosition,
    JobProgress,
    JobReceipt,
    JobRequest,
    JobResult,
    JobState,
    MessageTooLarge,
    Mode,
    QPUState,
    QueueEntry,
    SlurmContext,
    StatusReport,
    Timings,
    decode,
    decode_any,
    encode,
)
from schemas.batches import BatchJob, BatchRequest
from schemas.control import (
    BATCH_COMMANDS,
    BUDGET_CHANGES,
    JOB_COMMANDS,
    RESERVATION_CHANGES,
    SESSION_COMMANDS,
)
from schemas.messages import ALL_MESSAGES, OwnerHeartbeat, SnapshotPointer
from schemas.reservations import Reservation
from schemas.wire import Message

SEQUENCE = '{"version": "1", "register": [], "channels": {}}'
names = st.from_regex(r"^[a-z][a-z0-9_-]{0,15}$", fullmatch=True)
texts = st.text(max_size=40)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
errors = st.builds(
    JobError,
    code=st.sampled_from(ErrorCode),
    message=texts,
    retryable=st.booleans(),
    field=st.none() | names,
    details=st.dictionaries(names, st.integers(-(2**63), 2**64 - 1) | texts, max_size=3),
)
slurm = st.builds(
    SlurmContext,
    job_id=st.integers(1, 10**9).map(str),
    rank=st.none() | st.integers(0, 10_000),
    account=st.none() | names,
    allocation_end=st.none() | moments,
)
requests = st.builds(
    JobRequest,
    job_class=names,
    priority=st.integers(0, 9),
    shots=st.integers(1, 10**6),
    sequence=st.just(SEQUENCE),
    batch_id=st.none() | st.uuids().map(str),
    session_id=st.none() | st.uuids().map(str),
    slurm=st.none() | slurm,
    submitted_at=moments,
    deadline=st.none() | moments,
    max_runtime_s=st.none() | st.floats(0.1, 1e6),
    min_epoch=st.none() | st.integers(0, 1000),
    position_updates=st.booleans(),
)
timings = st.builds(Timings, queued_at=moments, started_at=st.none() | moments, ended_at=moments)
counts = st.dictionaries(
    st.from_regex(r"^[01]{1,8}$", fullmatch=True), st.integers(0, 10**6), max_size=8
)


@st.composite
def results(draw: st.DrawFn) -> JobResult:
    state = draw(st.sampled_from([s for s in JobState if s.is_final]))
    return JobResult(
        job_id=draw(st.uuids().map(str)),
        state=state,
        job_class=draw(names),
        shots=draw(st.integers(0, 10**6)),
        counts=draw(counts),
        error=None if state is JobState.DONE else draw(errors),
        timings=draw(timings),
        backend=draw(st.none() | st.sampled_from(["emulator", "qpu-api", "synthetic"])),
        epoch=draw(st.none() | st.integers(0, 100)),
        attempts=draw(st.integers(0, 5)),
        preemptions=draw(st.integers(0, 5)),
    )


progresses = st.builds(
    JobProgress,
    job_id=st.uuids().map(str),
    shots=st.integers(1, 1000),
    shots_done=st.integers(0, 1000),
    counts=counts,
)


reservations = st.builds(
    lambda start, hours: Reservation(
        name="chem-day", start=start, end=start + timedelta(hours=hours), accounts=("chem",)
    ),
    moments,
    st.integers(1, 48),
)


@st.composite
def commands(draw: st.DrawFn) -> ControlCommand:
    command = draw(st.sampled_from(CommandName))
    return ControlCommand(
        command=command,
        job_id=draw(st.uuids().map(str)) if command in JOB_COMMANDS else None,
        priority=draw(st.integers(0, 9)) if command is CommandName.UPDATE else None,
        mode=draw(st.sampled_from(Mode)) if command is CommandName.MODE else None,
        allocation="4242" if command in SLURM_COMMANDS else None,
        user="alice" if command is CommandName.ALLOCATION_STARTED else None,
        message_id=draw(st.uuids().map(str)) if command is CommandName.DEAD_REQUEUE else None,
        session_id=draw(st.uuids().map(str)) if command in SESSION_COMMANDS else None,
        batch_id=draw(st.uuids().map(str)) if command in BATCH_COMMANDS else None,
        account="phys" if command in BUDGET_CHANGES else None,
        seconds=draw(st.floats(0.5, 1e7)) if command in BUDGET_CHANGES else None,
        reservation=draw(reservations) if command in RESERVATION_CHANGES else None,
        name="chem-day" if command is CommandName.RESERVATION_DELETE else None,
        force=draw(st.booleans()),
        message=draw(st.none() | texts),
        issued_at=draw(moments),
    )


statuses = st.builds(
    StatusReport,
    owner_id=names,
    qpu_state=st.sampled_from(QPUState),
    mode=st.sampled_from(Mode),
    queue_depth=st.dictionaries(names, st.integers(0, 100), max_size=3),
    epoch=st.integers(0, 100),
    backend=names,
)
replies = st.builds(
    ControlReply,
    command_id=st.uuids().map(str),
    command=st.sampled_from(CommandName),
    ok=st.booleans(),
    message=texts,
    error=st.none() | errors,
    status=st.none() | statuses,
)
events = st.builds(
    Event,
    topic=st.sampled_from(
        ["job.accepted", "job.done", "qpu.idle", "control.pause", "owner.activated"]
    ),
    at=moments,
    job_id=st.none() | st.uuids().map(str),
    reason=st.none() | texts,
    result=st.none() | results(),
    progress=st.none() | progresses,
)
devices = st.builds(
    DeviceSpecs,
    device=st.just('{"name": "AnalogDevice"}'),
    epoch=st.integers(0, 99),
    backend=names,
    published_at=moments,
)
pointers = st.builds(
    SnapshotPointer,
    offset=st.integers(0, 2**62),
    event_id=st.uuids().map(str),
    term=st.integers(0, 2**31),
)
heartbeats = st.builds(
    OwnerHeartbeat,
    owner_id=names,
    host=names,
    pid=st.none() | st.integers(0, 2**22),
    backend=st.none() | names,
    sent_at=moments,
)
entries = st.builds(
    QueueEntry,
    job_id=st.uuids().map(str),
    job_class=names,
    user=names,
    priority=st.integers(0, 9),
    shots=st.integers(1, 1000),
    submitted_at=moments,
    position=st.none() | st.integers(0, 10**6),
    eta_s=st.none() | st.floats(0, 1e6),
    held=st.none() | texts,
    state=st.sampled_from([JobState.QUEUED, JobState.RUNNING]),
)
positions = st.builds(JobPosition, job_id=st.uuids().map(str), entry=entries)
receipts = st.builds(JobReceipt, job_id=st.uuids().map(str), number=st.integers(1, 2**31 - 1))
batch_requests = st.builds(
    BatchRequest,
    job_class=names,
    priority=st.integers(0, 9),
    sequence=st.none() | st.just('{"version": "1", "register": [], "channels": {}}'),
    jobs=st.lists(
        st.builds(
            BatchJob,
            job_id=st.uuids().map(str),
            shots=st.integers(1, 1000),
            variables=st.dictionaries(names, st.floats(-10, 10), max_size=3),
        ),
        min_size=1,
        max_size=4,
    ),
    open=st.booleans(),
    submitted_at=moments,
)

any_message = st.one_of(
    requests,
    batch_requests,
    results(),
    progresses,
    positions,
    receipts,
    commands(),
    replies,
    events,
    devices,
    pointers,
    heartbeats,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(any_message)
def test_every_model_round_trips_through_the_codec(message: Message) -> None:
    """Given any valid message, when encoded and decoded by its type, then it is equal."""
    body = encode(message)
    assert decode(body, message.type_name(), type(message)) == message
    assert decode_any(body, message.type_name()) == message


def test_every_wire_model_is_covered_by_the_round_trip_strategies() -> None:
    assert {m.schema_name for m in ALL_MESSAGES} == {
        "qsched.JobRequest",
        "qsched.JobResult",
        "qsched.JobProgress",
        "qsched.JobPosition",
        "qsched.JobReceipt",
        "qsched.ControlCommand",
        "qsched.ControlReply",
        "qsched.Event",
        "qsched.DeviceSpecs",
        "qsched.SnapshotPointer",
        "qsched.OwnerHeartbeat",
    }


@settings(max_examples=300)
@given(
    body=st.binary(max_size=512), type_name=st.sampled_from([m.type_name() for m in ALL_MESSAGES])
)
def test_random_bytes_only_raise_decode_error(body: bytes, type_name: str) -> None:
    """Given arbitrary bytes under any type, decoding raises DecodeError keeping the bytes."""
    try:
        decode_any(body, type_name)
    except DecodeError as exc:
        assert exc.raw == body
        assert exc.type_name == type_name


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(message=requests, data=st.data())
def test_mutated_bytes_only_raise_decode_error(message: JobRequest, data: st.DataObject) -> None:
    """Given a valid body with bytes flipped, cut or appended, decoding never raises otherwise."""
    body = bytearray(encode(message))
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    mutated = bytes(body[:cut]) + data.draw(st.binary(max_size=8))
    try:
        decoded = decode(mutated, JobRequest.type_name(), JobRequest)
    except DecodeError as exc:
        assert exc.raw == mutated
    else:
        assert isinstance(decoded, JobRequest)


def _request() -> JobRequest:
    return JobRequest(job_class="production", shots=10, sequence=SEQUENCE)


@pytest.mark.parametrize(
    ("type_name", "reason"),
    [
        (None, "no 'type' property"),
        ("qsched.JobRequest", "malformed type"),
        ("qsched.JobRequest/2", "unsupported version 2"),
        ("qsched.Nope/1", "unknown schema"),
    ],
)
def test_type_property_problems_are_named(type_name: str | None, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode(encode(_request()), type_name, JobRequest)


def test_a_body_of_another_schema_is_refused() -> None:
    result_type = JobResult.type_name()
    with pytest.raises(DecodeError, match=r"invalid qsched\.JobResult"):
        decode(encode(_request()), result_type, JobResult)
    with pytest.raises(DecodeError, match=r"expected qsched\.JobResult"):
        decode(encode(_request()), JobRequest.type_name(), JobResult)


def test_an_invalid_field_is_named_in_the_error() -> None:
    data = _request().model_dump(mode="json") | {"shots": -3}
    with pytest.raises(DecodeError) as info:
        decode(msgpack.packb(data), JobRequest.type_name(), JobRequest)
    assert info.value.field == "shots"
    assert "shots" in info.value.reason


def test_oversize_messages_are_refused_both_ways() -> None:
    big = JobRequest(job_class="production", shots=1, sequence='{"pad": "' + "x" * 5000 + '"}')
    with pytest.raises(MessageTooLarge) as too_large:
        encode(big, max_bytes=1024)
    assert too_large.value.size_bytes > 1024
    body = encode(big)
    with pytest.raises(DecodeError, match="exceeds 1024 bytes"):
        decode(body, JobRequest.type_name(), JobRequest, max_bytes=1024)


def test_a_value_msgpack_cannot_carry_is_an_encode_error() -> None:
    error = JobError(code=ErrorCode.INTERNAL, message="x", details={"n": 2**64})
    with pytest.raises(EncodeError, match="JobResult"):
        encode(
            JobResult(
                job_id="j",
                state=JobState.ERROR,
                job_class="c",
                shots=1,
                error=error,
                timings=Timings(queued_at=datetime.now(UTC), ended_at=datetime.now(UTC)),
            )
        )


def test_a_result_must_be_final_and_error_consistent() -> None:
    now = datetime.now(UTC)
    t = Timings(queued_at=now, ended_at=now)
    with pytest.raises(ValueError, match="final state"):
        JobResult(job_id="j", state=JobState.RUNNING, job_class="c", shots=1, timings=t)
    with pytest.raises(ValueError, match="must carry an error"):
        JobResult(job_id="j", state=JobState.ERROR, job_class="c", shots=1, timings=t)


def test_a_job_sequence_must_be_a_json_object() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        JobRequest(job_class="production", shots=1, sequence="{nope")
    with pytest.raises(ValueError, match="JSON object"):
        JobRequest(job_class="production", shots=1, sequence="[1, 2]")


@pytest.mark.parametrize("job_id", ["x" * 129, "é" * 40, "../etc", "a b", ""])
def test_a_job_id_that_could_not_travel_as_an_amqp_id_is_refused_at_decoding(job_id: str) -> None:
    """Job ids become AMQP message and correlation ids (at most 255 bytes): a client-chosen
    id is plain ASCII of at most 128 characters, or the job is refused with the field named."""
    body = msgpack.packb(
        {"job_id": job_id, "job_class": "production", "shots": 1, "sequence": "{}"}
    )
    with pytest.raises(DecodeError) as info:
        decode(body, JobRequest.type_name(), JobRequest)
    assert info.value.field == "job_id"
