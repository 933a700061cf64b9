"""The scheduling policy file (TOML): job classes, operators, modes.

This is data every layer reads: `brokers` declares one queue per class, the owner schedules by
it, the client checks class names. Loading is pure apart from reading the file; a bad file raises
`PolicyError` with the line the TOML parser blames, or the field pydantic blames.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.budgets import BudgetsPolicy
from schemas.enums import Mode, Ordering, Placement
from schemas.errors import PolicyError
from schemas.reservations import Reservation

ALL_MODES = (Mode.PRODUCTION, Mode.DEVELOPMENT, Mode.MAINTENANCE)
# Backlog limits by default: one user's flood cannot fill the owner's memory, and `status` and
# `queue` stay fast at the total (bench queries).
DEFAULT_MAX_WAITING_PER_USER = 2_000
DEFAULT_MAX_WAITING_TOTAL = 100_000


class JobClassPolicy(BaseModel):
    """One job class.

    Attributes:
        rank: 0 is served first; classes of lower rank always go before higher ranks.
        preempts: classes whose running job this class may interrupt.
        weight: share of QPU time between classes of equal rank.
        max_shots: per-job shot limit of the class (the device's `max_runs` also applies).
        modes: site modes in which jobs of this class may start.
        submitters: AMQP users allowed to submit; empty means everyone.
        ordering: how the class's jobs are ordered among themselves (`Ordering`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rank: int = Field(ge=0)
    preempts: tuple[str, ...] = ()
    weight: float = Field(default=1.0, gt=0)
    max_shots: int | None = Field(default=None, gt=0)
    modes: tuple[Mode, ...] = ALL_MODES
    submitters: tuple[str, ...] = ()
    calibrates: bool = Field(
        default=False, description="runs during CALIBRATING and outside the calibration window"
    )
    max_runtime_s: float | None = Field(
        default=None, gt=0, description="a run longer than this ends TIMED_OUT (caps the job's)"
    )
    max_queue_age_s: float | None = Field(
        default=None, gt=0, description="a job waiting longer than this ends TIMED_OUT"
    )
    max_waiting: int | None = Field(
        default=None, gt=0, description="backlog limit: waiting jobs of this class"
    )
    placement: dict[Mode, Placement] = Field(
        default_factory=dict,
        description="per mode, where jobs run: qpu (the default), emulator or either",
    )
    ordering: Ordering = Field(
        default=Ordering.FAIR_SHARE,
        description="within the class: fair-share (grace, site term, priority with aging, "
        "account and user usage, age) or fifo (acceptance order only, as Warden does)",
    )
    exclusive_sessions_s: float | None = Field(
        default=None,
        gt=0,
        description="between two jobs of a session of this class, the QPU waits this long at most"
        " for the next one (None: it never waits)",
    )

    def placement_in(self, mode: Mode) -> Placement:
        """Where jobs of this class run in `mode`."""
        return self.placement.get(mode, Placement.QPU)


class RetryPolicy(BaseModel):
    """How a job whose run failed with a retryable backend error is run again.

    Attributes:
        attempts: runs a job may make in all when they fail retryably (1: never retry).
        backoff_s: wait before the first retry; doubles for each further one.
        max_backoff_s: the longest wait between two runs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(default=3, ge=1, description="runs per job for retryable failures")
    backoff_s: float = Field(default=2.0, ge=0, description="wait before the first retry")
    max_backoff_s: float = Field(default=60.0, ge=0, description="cap of the doubling wait")

    def backoff_after(self, failures: int) -> float:
        """The wait before the run that follows `failures` failed runs (pure)."""
        return float(min(self.backoff_s * 2.0 ** max(failures - 1, 0), self.max_backoff_s))


def _default_classes() -> dict[str, JobClassPolicy]:
    return {
        "calibration": JobClassPolicy(
            rank=0, preempts=("production", "development"), modes=ALL_MODES, calibrates=True
        ),
        "production": JobClassPolicy(
            rank=1, preempts=("development",), modes=(Mode.PRODUCTION, Mode.DEVELOPMENT)
        ),
        "development": JobClassPolicy(rank=2, modes=(Mode.PRODUCTION, Mode.DEVELOPMENT)),
    }


class LanesPolicy(BaseModel):
    """Emulator lanes beside the QPU (see `consumers.owner.lanes`).

    Attributes:
        emulators: emulator worker processes (0: no lanes).
        shot_rate_hz: pace the lanes at this many shots per second (None: full speed).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    emulators: int = Field(default=0, ge=0, le=64)
    shot_rate_hz: float | None = Field(default=None, gt=0)

    @property
    def names(self) -> tuple[str, ...]:
        """The lanes' names, ``emulator-1`` ... ``emulator-N``."""
        return tuple(f"emulator-{i}" for i in range(1, self.emulators + 1))


class PluginsPolicy(BaseModel):
    """Site plugins the owner loads by entry-point name (see `consumers.plugins`).

    Attributes:
        admission: `qsched.admission` plugins, asked in this order for each new job.
        ordering: a `qsched.ordering` plugin: the site term in the ordering key.
        event_sinks: `qsched.event_sinks` plugins: every event also goes to each.
        options: per plugin name, the keyword arguments its factory gets.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    admission: tuple[str, ...] = ()
    ordering: str | None = None
    event_sinks: tuple[str, ...] = ()
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    timeout_s: float = Field(
        default=1.0, gt=0, description="time limit of one admission or ordering call"
    )
    on_error: Literal["hold", "refuse", "accept"] = Field(
        default="hold", description="what a job gets when an admission plugin raises or hangs"
    )
    recheck_s: float = Field(
        default=30.0, gt=0, description="held jobs are put to the admission plugins again after"
    )
    sink_buffer: int = Field(
        default=10_000, gt=0, description="events kept per sink while it is slow (oldest dropped)"
    )

    @property
    def names(self) -> tuple[tuple[str, str], ...]:
        """(control point, plugin name) of every plugin the policy asks for."""
        ordering = (("ordering", self.ordering),) if self.ordering else ()
        return (
            *(("admission", n) for n in self.admission),
            *ordering,
            *(("event_sinks", n) for n in self.event_sinks),
        )


class SessionsPolicy(BaseModel):
    """Sessions (QRMI acquire/release, the SDK's and Pulser's open batches): their time limits.

    Attributes:
        max_time_s: a session's length when it asks for none; `max_time_cap_s` caps any ask.
        idle_timeout_s: a session with no job waiting or running for this long ends;
            `idle_timeout_cap_s` caps any ask.
        remembered: ended sessions kept (their ids refuse new jobs) before the oldest is dropped.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_time_s: float = Field(default=8 * 3600.0, gt=0)
    max_time_cap_s: float = Field(default=24 * 3600.0, gt=0)
    idle_timeout_s: float = Field(default=600.0, gt=0)
    idle_timeout_cap_s: float = Field(default=3600.0, gt=0)
    remembered: int = Field(default=10_000, gt=0)


class AccountsPolicy(BaseModel):
    """Where a job's account comes from (never from the client: `schemas.context`).

    Attributes:
        default: per user, the account of jobs outside any Slurm allocation (interactive use);
            the key ``"*"`` gives every user not listed. A user with no entry has no account.
        require_allocation: refuse jobs that name no Slurm allocation.
        registration_grace_s: how long a job naming an allocation the registry does not know
            waits for the prolog's ``allocation-started`` (ranks can be faster than the
            prolog's message) before it is refused, naming the allocation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: dict[str, str] = Field(
        default_factory=dict, description="user -> account outside allocations ('*': any user)"
    )
    require_allocation: bool = Field(
        default=False, description="refuse jobs that come from no registered Slurm allocation"
    )
    registration_grace_s: float = Field(
        default=10.0, ge=0, description="wait this long for an unknown allocation's prolog"
    )

    def default_account(self, user: str) -> str | None:
        """The account of `user`'s jobs outside any allocation (None: no account)."""
        return self.default.get(user, self.default.get("*"))


class Policy(BaseModel):
    """The whole policy file; defaults give the three classes of DESIGN.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: dict[str, JobClassPolicy] = Field(default_factory=_default_classes)
    operators: tuple[str, ...] = ("guest",)
    operator_group: str | None = Field(
        default=None, description="unix group whose members are operators too (grp/SSSD/LDAP)"
    )
    epilog_users: tuple[str, ...] = Field(
        default=("slurm",),
        description="users the Slurm prolog and epilog run as: allocation-started/-ended only",
    )
    gateway_users: tuple[str, ...] = Field(
        default=(),
        description="broker users of QRMI gateways: they act for the MUNGE-verified user they name",
    )
    accounts: AccountsPolicy = Field(default_factory=AccountsPolicy)
    mode: Mode = Mode.PRODUCTION
    mode_message: str | None = None
    max_preemptions: int = Field(
        default=2, ge=0, description="after this many, a job runs to its end"
    )
    calibration_valid_s: float | None = Field(
        default=None, gt=0, description="how long a calibration stays valid (None: no window)"
    )
    calibration_lead_s: float = Field(
        default=600.0,
        gt=0,
        description="the owner calls for calibration this long before a reservation in whose "
        "window the calibration window would close",
    )
    shot_rate_hz: float = Field(
        default=5.0,
        gt=0,
        description="for duration estimates (ETAs: until the QPU's runs measured a rate)",
    )
    job_overhead_s: float = Field(default=1.0, ge=0, description="for duration estimates")
    fair_share_half_life_s: float = Field(default=3600.0, gt=0)
    aging_step_s: float = Field(default=600.0, gt=0, description="+1 priority per step waited")
    session_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="a session's next job goes first in its class this long after its run ends",
    )
    session_max_consecutive: int | None = Field(
        default=4,
        gt=0,
        description="grace (and exclusivity) ends after this many consecutive QPU runs of one "
        "session; its next job then waits its turn by fair share (None: no bound)",
    )
    session_turn_max_qpu_s: float | None = Field(
        default=300.0,
        gt=0,
        description="grace (and exclusivity) ends once one session's consecutive QPU runs "
        "used this many QPU seconds (None: no bound)",
    )
    max_waiting_per_user: int | None = Field(
        default=DEFAULT_MAX_WAITING_PER_USER,
        gt=0,
        description="backlog limit: waiting jobs of one user (None: no limit)",
    )
    max_waiting_total: int | None = Field(
        default=DEFAULT_MAX_WAITING_TOTAL,
        gt=0,
        description="backlog limit: waiting jobs in all (None: no limit)",
    )
    sessions: SessionsPolicy = Field(default_factory=SessionsPolicy)
    plugins: PluginsPolicy = Field(default_factory=PluginsPolicy)
    lanes: LanesPolicy = Field(default_factory=LanesPolicy)
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy, description="retry budget for retryable backend failures"
    )
    budgets: BudgetsPolicy = Field(
        default_factory=BudgetsPolicy, description="QPU-time budgets per account (and user)"
    )
    reservations: tuple[Reservation, ...] = Field(
        default=(),
        description="reservations of the policy file (an operator's of the same name wins)",
    )

    @model_validator(mode="after")
    def _references_exist(self) -> Policy:
        problems = class_reference_problems(self.classes)
        if problems:
            raise ValueError(problems[0][1])
        return self

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in serving order (rank, then name)."""
        return tuple(sorted(self.classes, key=lambda n: (self.classes[n].rank, n)))


def class_reference_problems(classes: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """What is wrong between the classes, each with the class to blame: no class at all, or a
    class that preempts one that does not exist. Pure; it reads validated classes and raw TOML
    tables alike, so `qsched policy check` reports these beside the errors of single fields."""
    if not classes:
        return [(None, "at least one job class is needed")]
    found: list[tuple[str | None, str]] = []
    for name, cls in classes.items():
        raw = cls.preempts if isinstance(cls, JobClassPolicy) else None
        if isinstance(cls, Mapping):
            raw = cls.get("preempts")
        if not isinstance(raw, list | tuple):
            continue  # missing, or a field error of its own
        unknown = [c for c in raw if isinstance(c, str) and c not in classes]
        if unknown:
            found.append((name, f"class {name!r} preempts unknown classes {unknown}"))
    return found


def parse_policy(text: str) -> Policy:
    """Parse policy TOML text.

    Raises:
        PolicyError: with the line (TOML syntax) or field (schema) that is wrong.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(str(exc), _toml_error_line(str(exc), text)) from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        reason = f"{where}: {first['msg']}" if where else first["msg"]
        raise PolicyError(reason, _line_of(text, first["loc"])) from None


def _toml_error_line(message: str, text: str) -> int | None:
    """tomllib (before 3.14) puts the position only in its message: "(at line 3, column 1)"."""
    found = re.search(r"at line (\d+)", message)
    if found:
        return int(found.group(1))
    return max(len(text.splitlines()), 1) if "end of document" in message else None


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line of the deepest key of `loc` that appears in the text."""
    for key in reversed([str(p) for p in loc]):
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if stripped.startswith((f"{key} ", f"{key}=", f"[{key}", f"[classes.{key}")):
                return number
    return None


def load_policy(path: Path | None) -> Policy:
    """Read the policy file at `path`, or the defaults when `path` is None.

    Raises:
        PolicyError: unreadable or invalid file.
    """
    if path is None:
        return Policy()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read {path}: {exc.strerror}") from None
    return parse_policy(text)
