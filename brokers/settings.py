"""The one settings object of qsched.

Sources, strongest first: keyword arguments, environment (``QSCHED_*``, nested with ``__`` so
keys may contain single underscores, e.g. ``QSCHED_OWNER__SHOT_RATE_HZ``), a TOML file (the
`config_file` argument or ``QSCHED_CONFIG``), defaults. `load_settings` is called once at an
entry point and the object is passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
BackendName = Literal["emulator", "qpu-api", "synthetic"]
AuthName = Literal["password", "munge"]


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
        description="AMQP heartbeat: a frozen owner loses its lease within ~2x this",
    )
    consumer_timeout_s: float = Field(
        default=1800.0, description="the broker's consumer_timeout; the owner stays well under it"
    )


class OwnerSettings(BaseModel):
    """How the QPU owner runs."""

    model_config = ConfigDict(extra="forbid")

    backend: BackendName = "emulator"
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
    sequence_cache_bytes: int = Field(
        default=64 * 1024**2,
        ge=0,
        description="sequences kept in memory; older ones are read back from the log",
    )
    tick_s: float = Field(
        default=0.2, gt=0, description="how often deadlines and run-time limits are checked"
    )
    lease_retry_s: float = Field(default=0.5, gt=0)
    shot_rate_hz: float | None = Field(
        default=None, gt=0, description="pace backends at this many shots/s (None: full speed)"
    )
    progress_every_shots: int = Field(default=100, ge=1)
    device_file: Path | None = Field(default=None, description="Pulser device JSON; AnalogDevice")
    qpu_api_url: str = "http://127.0.0.1:8088"
    qpu_api_poll_s: float = Field(default=0.5, gt=0, description="job status polling interval")
    qpu_api_timeout_s: float = Field(default=10.0, gt=0, description="per-request HTTP timeout")
    synthetic_failure_rate: float = Field(default=0.0, ge=0, le=1)
    synthetic_seed: int | None = None


class AuthServiceSettings(BaseModel):
    """`qsched auth serve`: the HTTP service behind RabbitMQ's ``rabbitmq_auth_backend_http``."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8099, ge=0, le=65535)
    vhosts: tuple[str, ...] = Field(default=("/",), description="vhosts MUNGE users may open")
    presentations: int = Field(
        default=2,
        ge=1,
        description="times one credential may be presented within its first seconds: RabbitMQ "
        "asks the user path once to authenticate and once more to authorise each login",
    )
    presentation_window_s: float = Field(default=10.0, gt=0)


class Settings(BaseSettings):
    """Everything configurable in qsched, documented field by field."""

    model_config = SettingsConfigDict(
        env_prefix="QSCHED_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    amqp_url: str = Field(default=DEFAULT_AMQP_URL, description="broker URL (amqp://...)")
    namespace: str = Field(default="qpu", pattern=r"^[a-zA-Z0-9_-]+$")
    policy_file: Path | None = None
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
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

    toml_file_path: ClassVar[Path | None] = None

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
    def amqp_user(self) -> str:
        """The AMQP ``user_id`` of every published message: the user name in `amqp_url`, or this
        process's unix user with MUNGE auth."""
        if self.auth == "munge":
            return pwd.getpwuid(os.getuid()).pw_name
        return unquote(urlsplit(self.amqp_url).username or "guest")


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build the settings from keyword overrides, ``QSCHED_*`` variables and a TOML file.

    Args:
        config_file: TOML file; defaults to ``$QSCHED_CONFIG`` when set.
        overrides: field values that win over every other source.

    Returns:
        The frozen settings object.
    """
    env_file = os.environ.get("QSCHED_CONFIG")
    path = config_file or (Path(env_file) if env_file else None)

    class _FromFile(Settings):
        toml_file_path: ClassVar[Path | None] = path

    return _FromFile(**overrides)  # type: ignore[arg-type]
