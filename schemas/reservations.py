"""Reservations: a window of QPU time owned by some accounts or users (like Slurm's
``scontrol create reservation``), as operators create them (``control.reservation-create``).

During the window only the reservation's accounts/users (and classes, when it names some) start
jobs on the QPU; others wait, and no job of others starts that would not finish (by its
estimate) before the window opens. Flags: ``maintenance`` puts the site in maintenance mode for
the window (it needs no accounts); ``exclusive`` also keeps others' jobs off the emulator lanes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Flag = Literal["exclusive", "maintenance"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Reservation(BaseModel):
    """One reservation (the window is [start, end))."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    start: AwareDatetime
    end: AwareDatetime
    accounts: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    classes: tuple[str, ...] = Field(default=(), description="only these classes (empty: all)")
    flags: tuple[Flag, ...] = ()
    by: str | None = Field(default=None, description="the operator who created or updated it")

    @model_validator(mode="after")
    def _window_and_owners(self) -> Reservation:
        if self.end <= self.start:
            raise ValueError(
                f"reservation {self.name}: end {self.end.isoformat()} is not after start "
                f"{self.start.isoformat()}"
            )
        if "maintenance" not in self.flags and not (self.accounts or self.users):
            raise ValueError(f"reservation {self.name} needs --accounts or --users")
        if self.accounts and self.users:
            raise ValueError(f"reservation {self.name}: give --accounts or --users, not both")
        return self

    @property
    def maintenance(self) -> bool:
        """Whether the site is in maintenance mode during the window."""
        return "maintenance" in self.flags

    def owners(self) -> str:
        """Who the window is for, in words."""
        if self.maintenance and not (self.accounts or self.users):
            return "maintenance"
        if self.accounts:
            return "accounts " + ",".join(self.accounts)
        return "users " + ",".join(self.users)

    def line(self) -> str:
        """One line for people."""
        flags = f" [{','.join(self.flags)}]" if self.flags else ""
        classes = f" classes {','.join(self.classes)}" if self.classes else ""
        return (
            f"{self.name}: {self.start.isoformat(timespec='seconds')} .. "
            f"{self.end.isoformat(timespec='seconds')} for "
            f"{self.owners()}{classes}{flags}"
        )
