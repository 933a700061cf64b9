"""The owner's state as plain data and back, for ``owner.snapshot`` events.

A snapshot plus the events after it rebuilds the same state as the whole log (a property test
checks it), so activation reads the last snapshot and a short tail instead of all history.
The order index is not stored: it is rebuilt from the waiting jobs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from consumers.core.fairshare import Usage
from consumers.core.ledger import Ledger
from consumers.core.order import Waiting
from consumers.core.shotrate import ShotRate
from consumers.core.state import OwnerState
from consumers.core.state_data import Batch, BudgetRecord, Run, Session
from schemas.context import Allocation
from schemas.enums import JobState, Mode, QPUState
from schemas.reservations import Reservation

_WAITING = TypeAdapter(list[Waiting])
_RUN = TypeAdapter(Run | None)
_LANES = TypeAdapter(dict[str, Run])
_SESSIONS = TypeAdapter(dict[str, Session])
_ALLOCATIONS = TypeAdapter(dict[str, Allocation])
_BATCHES = TypeAdapter(dict[str, Batch])
_BUDGETS = TypeAdapter(dict[str, BudgetRecord])
_RESERVATIONS = TypeAdapter(dict[str, Reservation])
FORMAT = 1


def to_data(state: OwnerState) -> dict[str, Any]:
    """The state as msgpack-friendly data."""
    return {
        "format": FORMAT,
        "term": state.term,
        "owner_id": state.owner_id,
        "policy": state.policy,
        "qpu": state.qpu.value,
        "mode": state.mode.value if state.mode is not None else None,
        "mode_message": state.mode_message,
        "epoch": state.epoch,
        "calibrated_at": _time(state.calibrated_at),
        "device": state.device,
        "calibration_pending": state.calibration_pending,
        "due_announced": state.due_announced,
        "waiting": _WAITING.dump_python(list(state.waiting.values()), mode="json"),
        "running": _RUN.dump_python(state.running, mode="json"),
        "lanes": _LANES.dump_python(state.lanes, mode="json"),
        "owners": dict(state.owners),
        "finished": {k: v.value for k, v in state.finished.items()},
        "allocations": _ALLOCATIONS.dump_python(state.allocations, mode="json"),
        "ended_allocations": sorted(state.ended_allocations),
        "sessions": _SESSIONS.dump_python(state.sessions, mode="json"),
        "numbers": dict(state.numbers),
        "last_number": state.last_number,
        "last_run_session": state.last_run_session,
        "batches": _BATCHES.dump_python(state.batches, mode="json"),
        "account_usage": state.account_usage.to_data(),
        "user_usage": state.user_usage.to_data(),
        "class_usage": state.class_usage.to_data(),
        "ledger": state.ledger.to_data(),
        "budgets": _BUDGETS.dump_python(state.budgets, mode="json"),
        "reservations": _RESERVATIONS.dump_python(state.reservations, mode="json"),
        "shot_rate": state.shot_rate.to_data(),
        "events": state.events,
        "ignored": state.ignored,
        "last_event_id": state.last_event_id,
    }


def from_data(data: dict[str, Any], half_life_s: float) -> OwnerState:
    """The state `to_data` described, with its order index rebuilt.

    Raises:
        ValueError: not a snapshot of this format.
    """
    if data.get("format") != FORMAT:
        raise ValueError(f"snapshot format {data.get('format')!r} is not {FORMAT}")
    state = OwnerState(
        term=int(data["term"]),
        owner_id=data.get("owner_id"),
        policy=data.get("policy"),
        qpu=QPUState(data["qpu"]),
        mode=Mode(data["mode"]) if data.get("mode") else None,
        mode_message=data.get("mode_message"),
        epoch=int(data["epoch"]),
        calibrated_at=_parse(data.get("calibrated_at")),
        device=data.get("device"),
        calibration_pending=bool(data.get("calibration_pending")),
        due_announced=data.get("due_announced"),
        running=_RUN.validate_python(data.get("running")),
        lanes=_LANES.validate_python(data.get("lanes", {})),
        owners=dict(data.get("owners", {})),
        finished={k: JobState(v) for k, v in data.get("finished", {}).items()},
        allocations=_ALLOCATIONS.validate_python(data.get("allocations", {})),
        ended_allocations=set(data.get("ended_allocations", [])),
        sessions=_sessions(data.get("sessions", {})),
        numbers={k: int(v) for k, v in data.get("numbers", {}).items()},
        last_number=int(data.get("last_number", 0)),
        last_run_session=data.get("last_run_session"),
        batches=_BATCHES.validate_python(data.get("batches", {})),
        account_usage=Usage.from_data(half_life_s, data.get("account_usage", {})),
        user_usage=Usage.from_data(half_life_s, data.get("user_usage", {})),
        class_usage=Usage.from_data(half_life_s, data.get("class_usage", {})),
        ledger=Ledger.from_data(data.get("ledger")),
        budgets=_BUDGETS.validate_python(data.get("budgets", {})),
        reservations=_RESERVATIONS.validate_python(data.get("reservations", {})),
        shot_rate=ShotRate.from_data(data.get("shot_rate")),
        events=int(data.get("events", 0)),
        ignored=int(data.get("ignored", 0)),
        last_event_id=data.get("last_event_id"),
    )
    state.by_number = {number: job_id for job_id, number in state.numbers.items()}
    for job in _WAITING.validate_python(data.get("waiting", [])):
        state.waiting[job.job_id] = job
        state.index.add(job)
    return state


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _sessions(data: dict[str, Any]) -> dict[str, Session]:
    """Sessions as a snapshot holds them (one written before sessions were records: dropped)."""
    if any(not isinstance(v, dict) for v in data.values()):
        return {}
    return _SESSIONS.validate_python(data)
