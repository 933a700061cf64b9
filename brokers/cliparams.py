"""Click parameter types every package's commands share: a job id (or its first characters) and
a job class name. A value that cannot be one is a usage error (exit 2) raised before anything is
asked of the broker or the owner, so a plain typo never reaches them as a "job" or a class."""

from __future__ import annotations

import re
from typing import Any

import click

from schemas.wire import ID_PATTERN, JOB_CLASS_PATTERN, MAX_ID_LENGTH, MIN_JOB_PREFIX

MAX_CLASS_LENGTH = 64


class JobIdParam(click.ParamType):
    """A job id or at least `MIN_JOB_PREFIX` of its first characters (the owner resolves it)."""

    name = "job_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The id as given; too short or not id-shaped fails as a usage error."""
        text = str(value).strip()
        if len(text) < MIN_JOB_PREFIX:
            self.fail(
                f"{text!r} is too short to name a job: give at least {MIN_JOB_PREFIX} "
                "characters of its id",
                param,
                ctx,
            )
        if len(text) > MAX_ID_LENGTH or not re.fullmatch(ID_PATTERN, text):
            self.fail(f"{text!r} is not a job id (letters, digits, '-', '.', ':', '_')", param, ctx)
        return text


class JobClassParam(click.ParamType):
    """A job class name as the policy writes it (lower case; whether it exists is the broker's
    and the owner's to say)."""

    name = "class"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The name as given; one that no class can have fails as a usage error."""
        text = str(value)
        if len(text) <= MAX_CLASS_LENGTH and re.fullmatch(JOB_CLASS_PATTERN, text):
            return text
        lower = text.strip().lower()
        guess = (
            f" (did you mean {lower!r}?)"
            if len(lower) <= MAX_CLASS_LENGTH and re.fullmatch(JOB_CLASS_PATTERN, lower)
            else ""
        )
        self.fail(
            f"{text!r} is not a job class name: lower-case letters, digits, _ and -{guess}",
            param,
            ctx,
        )


JOB_ID = JobIdParam()
JOB_CLASS = JobClassParam()
