"""Waiting for results in a terminal or a script, saying what the jobs wait for.

While results are outstanding the waiter asks the owner for its status every few seconds and
shows, per job, its state (QUEUED, RUNNING, final), why it is held (the owner's hold reason, the
maintenance message, a paused or down QPU) and the shots measured so far (from the owner's
progress messages). In a terminal that is one live line with a shot bar on stderr; otherwise a
line on stderr each time something changes. Ctrl-C and timeouts end with what to do next.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producers.client import JobHandle, QPUClient
from producers.errors import ClientError, NoOwnerAnswered, ResultTimeout
from producers.views import ALERT_STATES, short
from schemas.enums import CommandName, JobState
from schemas.messages import JobResult, StatusReport

STATUS_EVERY_S = 5.0
# Unanswered commands expire into the dead-letter queue: ask less often while no owner answers.
STATUS_EVERY_NO_OWNER_S = 30.0
STATUS_TIMEOUT_S = 3.0
POLL_S = 0.5


class StoppedWaiting(ClientError):
    """The user pressed Ctrl-C while waiting; the jobs go on without the waiter."""

    exit_code = 130

    def __init__(self, message: str, hint: str, job_ids: list[str]) -> None:
        super().__init__(message, hint=hint)
        self.details = {"job_ids": job_ids}


def _what_to_do(job_ids: Sequence[str]) -> str:
    one = job_ids[0] if len(job_ids) == 1 else "ID"
    return f"follow it: qsched result {one} --wait; cancel it: qsched cancel {one}"


class Waiter:
    """Waits for the results of `handles` and reports what they wait for.

    Args:
        client: the client the jobs were submitted with (their results come to it).
        handles: the submitted jobs.
        console: where the live view or the lines go (stderr).
    """

    def __init__(self, client: QPUClient, handles: Sequence[JobHandle], console: Console) -> None:
        self.client = client
        self.handles = list(handles)
        self.console = console
        self.status: StatusReport | None = None
        self.owner_answers = True
        self._last_line = ""

    def _state(self, handle: JobHandle) -> JobState:
        result = self.client.results.get(handle.job_id)
        if result is not None:
            return result.state
        running = self.status.running if self.status else None
        if handle.last_progress is not None or (running and running.job_id == handle.job_id):
            return JobState.RUNNING
        return JobState.QUEUED

    def shots_done(self) -> int:
        """Shots measured so far over all jobs."""
        done = 0
        for handle in self.handles:
            result = self.client.results.get(handle.job_id)
            if result is not None:
                done += (
                    handle.shots if result.state is JobState.DONE else sum(result.counts.values())
                )
            elif handle.last_progress is not None:
                done += handle.last_progress.shots_done
        return done

    def _why(self, waiting: list[JobHandle]) -> str:
        """Why the queued jobs wait, from the last status report."""
        if not self.owner_answers:
            return "no QPU owner is answering; the jobs stay queued until one runs"
        status = self.status
        if status is None:
            return ""
        notes = []
        if status.qpu_state in ALERT_STATES:
            notes.append(f"QPU {status.qpu_state.value}")
        reasons = {
            status.held_reasons[h.job_id] for h in waiting if h.job_id in status.held_reasons
        }
        notes += sorted(reasons)
        if status.mode_message:
            notes.append(f"{status.mode.value}: {status.mode_message}")
        return "; ".join(notes)

    def summary(self) -> str:
        """One line: the jobs' states and why the queued ones wait."""
        states = [self._state(h) for h in self.handles]
        waiting = [h for h, s in zip(self.handles, states, strict=True) if s is JobState.QUEUED]
        if len(self.handles) == 1:
            text = f"job {short(self.handles[0].job_id)} {states[0].value}"
        else:
            counts = {s: states.count(s) for s in dict.fromkeys(states)}
            text = ", ".join(f"{n} {s.value}" for s, n in counts.items())
        why = self._why(waiting) if waiting else ""
        return f"{text} · {why}" if why else text

    def _ask_status(self) -> None:
        try:
            reply = self.client.control(CommandName.STATUS, timeout=STATUS_TIMEOUT_S)
        except NoOwnerAnswered:
            self.owner_answers = False
            return
        self.owner_answers = True
        self.status = reply.status

    def _show_line(self, total: int) -> None:
        line = f"{self.summary()} · shots {self.shots_done()}/{total}"
        if line != self._last_line:
            self.console.print(line, highlight=False, soft_wrap=True)
            self._last_line = line

    def wait(self, timeout_s: float | None) -> list[JobResult]:
        """The results, in the order of `handles`.

        Raises:
            ResultTimeout: some jobs have no result after `timeout_s` (they stay queued).
            StoppedWaiting: Ctrl-C; the jobs go on.
        """
        ids = [h.job_id for h in self.handles]
        total = sum(h.shots for h in self.handles)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        live = self.console.is_terminal
        next_status = 0.0
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("shots"),
            TimeElapsedColumn(),
        )
        try:
            with Progress(*columns, console=self.console, transient=True, disable=not live) as bar:
                task = bar.add_task("", total=total)
                while not all(j in self.client.results for j in ids):
                    now = time.monotonic()
                    if now >= next_status:
                        self._ask_status()
                        every = STATUS_EVERY_S if self.owner_answers else STATUS_EVERY_NO_OWNER_S
                        next_status = time.monotonic() + every
                    if live:
                        bar.update(task, description=self.summary(), completed=self.shots_done())
                    else:
                        self._show_line(total)
                    if deadline is not None and time.monotonic() > deadline:
                        missing = [j for j in ids if j not in self.client.results]
                        raise ResultTimeout(
                            f"{len(missing)} of {len(ids)} jobs have no result after "
                            f"{timeout_s:g} s; they stay queued ({self.summary()})",
                            hint=_what_to_do(missing),
                        )
                    self.client.poll(POLL_S)
        except KeyboardInterrupt:
            missing = [j for j in ids if j not in self.client.results]
            if not missing:
                return [self.client.results[j] for j in ids]
            states = {self._state(h).value for h in self.handles if h.job_id in missing}
            which = (
                f"job {missing[0]} is still {'/'.join(sorted(states))}"
                if len(missing) == 1
                else f"{len(missing)} jobs are still {'/'.join(sorted(states))} (ids above)"
            )
            raise StoppedWaiting(
                f"stopped waiting; {which} and will run", _what_to_do(missing), missing
            ) from None
        return [self.client.results[j] for j in ids]


def stderr_console() -> Console:
    """The console the waiting view writes to."""
    return Console(file=sys.stderr)
