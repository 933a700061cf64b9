"""The one settings object of qsched.

Sources, strongest first: keyword arguments, environment (``QSCHED_*``, nested with ``__`` so
keys may contain single underscores, e.g. ``QSCHED_OWNER__SHOT_RATE_HZ``), a TOML file (the
`config_file` argument or ``QSCHED_CONFIG``), defaults. `load_settings` is called once at an
entry point and the object is passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

import difflib
import os
import pwd
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from brokers.errors import SettingsError

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
ENV_PREFIX = "QSCHED_"
# Variables qsched reads that are not settings fields.
OTHER_VARIABLES = {
    "QSCHED_CONFIG": "the TOML settings file (same as --config)",
    "QSCHED_TRACE_FILE": "with OTEL_TRACES_EXPORTER=console: write spans as JSON lines to this file",
    # Read by the Slurm scripts of infra/slurm/, which run qsched with them still set.
    "QSCHED_SLURM_ALLOCATION": "set by the TaskProlog: the Slurm job whose end SLURM_JOB_END_TIME is",
    "QSCHED_EPILOG_ENV": "Slurm Epilog: the file with the Epilog's qsched settings",
    "QSCHED_EPILOG_LOG": "Slurm Epilog: its log file (default syslog)",
    "QSCHED_EPILOG_TIMEOUT_S": "Slurm Epilog: hard time limit of its qsched call (default 10)",
    "QSCHED_BIN": "Slurm Epilog: the qsched executable (default: qsched on PATH)",
    "QSCHED_PROLOG_LOG": "Slurm prolog: its log file (default syslog)",
    "QSCHED_PROLOG_TIMEOUT_S": "Slurm prolog: hard time limit of its qsched call (default 10)",
    "QSCHED_PROLOG_SQUEUE": "Slurm prolog: 0 to not ask squeue for the allocation's end",
}
AuthName = Literal["password", "munge"]
QueueType = Literal["classic", "quorum"]


class BrokerSettings(BaseModel):
    """Arguments of the broker-side objects qsched declares."""

    model_config = ConfigDict(extra="forbid")

    events_max_age: str = Field(default="7D", description="stream retention by age (x-max-age)")
    events_max_bytes: int = Field(default=2 * 1024**3, description="stream retention by size")
    job_queue_max_length: int | None = Field(
        default=None, description="x-max-length of each class queue; full classes nack publishes"
    )
    reply_expires_ms: int = Field(
        default=15 * 60 * 1000, description="x-expires of reply queues: how long results wait"
    )
    heartbeat_s: int = Field(
        default=5,
        ge=1,
        description="AMQP heartbeat of the owner's connection: a frozen owner loses its lease "
        "within about twice this",
    )
    consumer_timeout_s: float = Field(
        default=1800.0, description="the broker's consumer_timeout; the owner stays well under it"
    )
    queue_type: QueueType = Field(
        default="classic",
        description="classic: priority queues on one node; quorum: the intake, control, dead, "
        "snapshot and device queues as quorum queues replicated on a cluster (AMQP priority is "
        "then carried in the message and ordered by the owner)",
    )
    replicas: int = Field(
        default=3,
        ge=1,
        description="with queue_type quorum: nodes holding each quorum queue and the event stream",
    )


class OwnerSettings(BaseModel):
    """How the QPU owner runs."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field(
        default="emulator",
        min_length=1,
        description="emulator, qpu-api, synthetic, or a qsched.backends plugin's name",
    )
    prefetch: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="intake window: deliveries in flight per class queue (acked once accepted)",
    )
    snapshot_every_events: int = Field(
        default=5000, ge=10, description="write an owner.snapshot after this many events"
    )
    snapshot_every_s: float = Field(
        default=300.0, gt=0, description="...or after this long, whichever comes first"
    )
    snapshot_max_bytes: int = Field(
        default=64 * 1024**2,
        gt=0,
        description="largest owner.snapshot event (the owner's own state: may exceed "
        "max_message_bytes; keep it under the broker's max_message_size, 128 MiB by default)",
    )
    sequence_cache_bytes: int = Field(
        default=64 * 1024**2,
        ge=0,
        description="sequences kept in memory; older ones are read back from the log",
    )
    sequence_rebuild: bool = Field(
        default=False,
        description="also rebuild each new sequence with Pulser at intake (every pulse against "
        "its channel's limits, ~2-10 ms a distinct sequence); otherwise the schema and the "
        "device's register and channels are checked and pulse limits when the run is built",
    )
    tick_s: float = Field(
        default=0.2, gt=0, description="how often deadlines and run-time limits are checked"
    )
    position_every_s: float = Field(
        default=1.0,
        gt=0,
        description="how often jobs submitted with position_updates are told their place",
    )
    lease_retry_s: float = Field(
        default=0.5, gt=0, description="how often a standby owner tries to take the lease"
    )
    shot_rate_hz: float | None = Field(
        default=None, gt=0, description="pace backends at this many shots/s (None: full speed)"
    )
    progress_every_shots: int = Field(
        default=100, ge=1, description="send a progress message every this many shots"
    )
    control_max_age_s: float = Field(
        default=300.0,
        gt=0,
        description="refuse an operator command issued longer ago than this (stale)",
    )
    device_file: Path | None = Field(
        default=None, description="Pulser device JSON to validate against (default: AnalogDevice)"
    )
    qpu_api_url: str = Field(
        default="http://127.0.0.1:8088", description="Pasqal QPU API base URL (qpu-api backend)"
    )
    qpu_api_poll_s: float = Field(default=0.5, gt=0, description="job status polling interval")
    qpu_api_timeout_s: float = Field(default=10.0, gt=0, description="per-request HTTP timeout")
    qpu_api_request_attempts: int = Field(
        default=4,
        ge=1,
        description="tries of one API request on 5xx, 429, timeouts or refused connections",
    )
    qpu_api_run_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "time limit of one run on the QPU API, submission to end (requests and polling); "
            "past it the run is canceled and fails retryably (BACKEND_TIMEOUT)"
        ),
    )
    qrmi_resource: str | None = Field(
        default=None,
        description="qrmi backend: the QRMI resource name (QRMI reads <NAME>_QRMI_* and "
        "QRMI_JOB_* from the environment, as under Slurm's QRMI plugin)",
    )
    qrmi_type: str = Field(
        default="PasqalLocal", description="qrmi backend: the QRMI ResourceType (e.g. PasqalCloud)"
    )
    qrmi_poll_s: float = Field(default=0.1, gt=0, description="qrmi backend: task status polling")
    qrmi_run_timeout_s: float = Field(
        default=3600.0, gt=0, description="qrmi backend: a task past this is stopped (retryable)"
    )
    qrmi_journal: Path | None = Field(
        default=None,
        description="qrmi backend: file recording each run's QRMI task, so that an owner taking "
        "over adopts a task a dead one left (shared by the owners; None: no adoption)",
    )
    synthetic_failure_rate: float = Field(
        default=0.0, ge=0, le=1, description="synthetic backend: share of runs that fail"
    )
    synthetic_seed: int | None = Field(
        default=None, description="synthetic backend: random seed (None: unseeded)"
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="serve Prometheus metrics on this port at /metrics (None: off; 0: any free "
        "port, named in the owner's log)",
    )
    metrics_bind: str = Field(
        default="127.0.0.1", description="address the metrics endpoint listens on"
    )
    metrics_created_series: bool = Field(
        default=False,
        description="also serve each counter's and histogram's *_created series (off: they "
        "double the series count and Prometheus does not need them)",
    )


class AuthServiceSettings(BaseModel):
    """`qsched auth serve`: the HTTP service behind RabbitMQ's ``rabbitmq_auth_backend_http``."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="address the auth service listens on")
    port: int = Field(default=8099, ge=0, le=65535, description="port the auth service listens on")
    vhosts: tuple[str, ...] = Field(default=("/",), description="vhosts MUNGE users may open")
    presentations: int = Field(
        default=2,
        ge=1,
        description="times one credential may be presented within its first seconds: RabbitMQ "
        "asks the user path once to authenticate and once more to authorise each login",
    )
    presentation_window_s: float = Field(
        default=10.0, gt=0, description="how long after its first use a credential may be reused"
    )


class GatewaySettings(BaseModel):
    """`qsched gateway serve`: the QRMI-compatible HTTP gateway (Warden's API, MUNGE per request)."""

    model_config = ConfigDict(extra="forbid")

    listen: str = Field(
        default="127.0.0.1:4207", description="HOST:PORT the gateway listens on (Warden's port)"
    )
    job_class: str = Field(default="production", description="class of the jobs QRMI tasks become")
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="larger request bodies are refused (413) unread"
    )
    threads: int = Field(
        default=8, ge=1, le=64, description="requests served at once (one broker link each)"
    )
    reply_timeout_s: float = Field(
        default=10.0, gt=0, description="how long a request waits for the owner's answer"
    )


class Settings(BaseSettings):
    """Everything configurable in qsched, documented field by field."""

    model_config = SettingsConfigDict(
        env_prefix="QSCHED_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    amqp_url: str = Field(
        default=DEFAULT_AMQP_URL,
        description="broker URL (amqp:// or amqps://); several separated by ';' for a cluster",
    )
    namespace: str = Field(
        default="qpu",
        pattern=r"^[a-zA-Z0-9_-]+$",
        description="prefix of every exchange and queue name (letters, digits, _ and -)",
    )
    policy_file: Path | None = Field(default=None, description="policy TOML file")
    max_message_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="largest message accepted or sent"
    )
    rabbitmq_server: Path | None = Field(
        default=None, description="rabbitmq-server binary for a private node"
    )
    auth: AuthName = Field(
        default="password",
        description="password: user and password from amqp_url; munge: this unix user and a "
        "fresh MUNGE credential for every connection (needs `qsched auth serve` on the broker)",
    )
    munge_socket: Path | None = Field(default=None, description="munged socket (None: default)")
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    auth_service: AuthServiceSettings = Field(default_factory=AuthServiceSettings)
    owner: OwnerSettings = Field(default_factory=OwnerSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)

    toml_file_path: ClassVar[Path | None] = None

    @field_validator("amqp_url")
    @classmethod
    def _amqp_scheme(cls, value: str) -> str:
        for url in (u.strip() for u in value.split(";")):
            scheme = urlsplit(url).scheme
            if scheme not in ("amqp", "amqps"):
                raise ValueError(
                    f"{scheme or 'no'} scheme: the URL must start with amqp:// or amqps:// "
                    "(e.g. amqp://guest:guest@127.0.0.1:5672/%2F)"
                )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then environment, then the TOML file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_file_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file_path))
        return tuple(sources)

    @property
    def log_max_bytes(self) -> int:
        """Largest record of the event log: its snapshots may exceed `max_message_bytes`."""
        return max(self.max_message_bytes, self.owner.snapshot_max_bytes)

    @property
    def amqp_user(self) -> str:
        """The AMQP ``user_id`` of every published message: the user name in `amqp_url`, or this
        process's unix user with MUNGE auth."""
        if self.auth == "munge":
            return pwd.getpwuid(os.getuid()).pw_name
        return unquote(urlsplit(self.amqp_url).username or "guest")


def known_variables() -> dict[str, str]:
    """Every ``QSCHED_*`` variable qsched reads, with its meaning."""
    names: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            for sub_name, sub_info in sub.model_fields.items():
                names[f"{ENV_PREFIX}{name}__{sub_name}".upper()] = sub_info.description or ""
        else:
            names[f"{ENV_PREFIX}{name}".upper()] = info.description or ""
    return names | OTHER_VARIABLES


def validate_environment(environ: Mapping[str, str]) -> None:
    """Refuse ``QSCHED_*`` variables that name no setting (a typo would be silently ignored).

    Raises:
        SettingsError: naming the variable and the closest known one.
    """
    known = known_variables()
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known:
            close = difflib.get_close_matches(upper, list(known), n=1)
            guess = f"; did you mean {close[0]}?" if close else ""
            raise SettingsError(f"{name} is not a qsched setting{guess} (unset it or fix its name)")


def _describe(exc: ValidationError) -> str:
    """One line naming each wrong setting, its variable and what is wrong."""
    parts = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        key = ".".join(loc)
        variable = f"{ENV_PREFIX}{'__'.join(loc)}".upper()
        if error["type"] == "extra_forbidden":
            parts.append(f"{key} is not a qsched setting")
            continue
        value: Any = error.get("input")
        shown = "" if "amqp_url" in loc else f" (got {value!r})"
        reason = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"setting {key} ({variable}): {reason}{shown}")
    return "; ".join(parts)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build the settings from keyword overrides, ``QSCHED_*`` variables and a TOML file.

    Args:
        config_file: TOML file; defaults to ``$QSCHED_CONFIG`` when set.
        overrides: field values that win over every other source.

    Returns:
        The frozen settings object.

    Raises:
        SettingsError: a missing or unreadable file, an unknown ``QSCHED_*`` variable or key,
            or a value out of range; one line naming the key.
    """
    validate_environment(os.environ)
    env_file = os.environ.get("QSCHED_CONFIG")
    path = config_file or (Path(env_file) if env_file else None)
    if path is not None and not path.is_file():
        raise SettingsError(f"config file {path} does not exist (--config or QSCHED_CONFIG)")

    class _FromFile(Settings):
        toml_file_path: ClassVar[Path | None] = path

    try:
        return _FromFile(**overrides)  # type: ignore[arg-type]
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        where = f" (config file {path})" if path is not None else ""
        raise SettingsError(_describe(exc) + where) from exc
