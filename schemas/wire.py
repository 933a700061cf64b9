"""The base of every wire model and the forms its ids and times take.

Each model names its schema and version in class variables; the codec puts them in the AMQP
``type`` property as ``<schema>/<version>``. Bump the version when a change is not backward
compatible, and keep decoding the old one for as long as queues may still hold it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

MAX_PRIORITY = 9
# Job and command ids travel as AMQP message and correlation ids (short strings: at most 255
# bytes), so a client-chosen id is held to plain ASCII of a bounded length.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
MAX_ID_LENGTH = 128
# A class name is part of its queue's name: lower-case ASCII, as policies write it.
JOB_CLASS_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
# The fewest first characters of a job id that may name it (the owner resolves prefixes; the
# CLI refuses shorter ones as a usage error before asking).
MIN_JOB_PREFIX = 4


IdSource = Callable[[], str]  # where the owner's core takes event ids from (`new_id`, seeded)


def new_id() -> str:
    """A fresh UUID4 as text, the form of every job, command and event id."""
    return str(uuid.uuid4())


def seeded_ids(seed: int) -> IdSource:
    """Ids of the form of `new_id` drawn from `seed`: a simulation's ids, the same every run."""
    rng = random.Random(seed)
    return lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (only shells call this; the core takes `now`)."""
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of all wire models: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_name: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        """The AMQP ``type`` property for this model, e.g. ``qsched.JobRequest/1``."""
        return f"{cls.schema_name}/{cls.schema_version}"
