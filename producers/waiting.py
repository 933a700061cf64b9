"""Waiting for results in a terminal or a script, saying what the jobs wait for.

Results are pushed: a submitter's come to its reply queue, and ``result --wait`` asks the owner
to send the job's result and progress there too (`producers.results`). While results are
outstanding the waiter asks the owner every few seconds for its status and for the first
unfinished job's place in line, and shows the jobs' state (QUEUED, RUNNING, final), position and
ETA, why they are held (the owner's hold reason, the maintenance message, a paused or down QPU),
then the shots measured so far (from the owner's progress messages). In a terminal that is one
live progress bar on stderr; piped, or with ``--json``, the waiter is quiet (a timeout's message
still says what the jobs wait for). Ctrl-C and timeouts end with what to do next.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producers.client import JobHandle, QPUClient
from producers.errors import ClientError, CommandRefused, NoOwnerAnswered, ResultTimeout
from producers.results import fetch_result_from_owner
from producers.views import ALERT_STATES, short
from schemas.enums import CommandName, JobState
from schemas.jobs import JobResult
from schemas.reports import QueueEntry, StatusReport

STATUS_EVERY_S = 5.0
# Unanswered commands expire into the dead-letter queue: ask less often while no owner answers.
STATUS_EVERY_NO_OWNER_S = 30.0
STATUS_TIMEOUT_S = 3.0
POLL_S = 0.5
NO_OWNER = (
    "no QPU owner is running in this namespace: the jobs stay queued until one starts "
    "(qsched owner, with the same QSCHED_NAMESPACE)"
)


class StoppedWaiting(ClientError):
    """The user pressed Ctrl-C while waiting; the jobs go on without the waiter."""

    exit_code = 130

    def __init__(self, message: str, hint: str, job_ids: list[str]) -> None:
        super().__init__(message, hint=hint)
        self.details = {"job_ids": job_ids}


def stopped_before_waiting(job_ids: Sequence[str]) -> StoppedWaiting:
    """Ctrl-C after the jobs were sent but before anything was heard of them: they are queued."""
    which = (
        f"job {job_ids[0]} is still QUEUED"
        if len(job_ids) == 1
        else f"{len(job_ids)} jobs are still QUEUED (ids above)"
    )
    return StoppedWaiting(
        f"stopped waiting; {which} and will run", _what_to_do(job_ids), list(job_ids)
    )


def _what_to_do(job_ids: Sequence[str]) -> str:
    one = job_ids[0] if len(job_ids) == 1 else "ID"
    return f"follow it: qsched result {one} --wait; cancel it: qsched cancel {one}"


class Waiter:
    """Waits for the results of `handles` and reports what they wait for.

    Args:
        client: the client the jobs were submitted with (their results come to it).
        handles: the submitted jobs.
        console: where the live view goes (stderr).
        quiet: show nothing (``--json``); a console that is no terminal shows nothing either.
        watch: ask the owner to send the results here (jobs submitted by another client).
    """

    def __init__(
        self,
        client: QPUClient,
        handles: Sequence[JobHandle],
        console: Console,
        quiet: bool = False,
        watch: bool = False,
    ) -> None:
        self.client = client
        self.handles = list(handles)
        self.console = console
        self.quiet = quiet
        self.watch = watch
        self.status: StatusReport | None = None
        self.entry: QueueEntry | None = None
        self.owner_answers = True

    def _state(self, handle: JobHandle) -> JobState:
        result = self.client.results.get(handle.job_id)
        if result is not None:
            return result.state
        running = self.status.running if self.status else None
        if handle.last_progress is not None or (running and running.job_id == handle.job_id):
            return JobState.RUNNING
        entry = self.entry
        if entry is not None and entry.job_id == handle.job_id:
            return entry.state
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
            return "no QPU owner"
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

    def _place(self, waiting: list[JobHandle]) -> str:
        """The first waiting job's position and ETA, from the owner's last answer."""
        entry = self.entry
        if entry is None or entry.held is not None or entry.position is None:
            return ""
        if not any(h.job_id == entry.job_id for h in waiting):
            return ""
        which = "" if len(self.handles) == 1 else f"{short(entry.job_id)} "
        eta = "" if entry.eta_s is None else f", starts in ~{entry.eta_s:.0f} s"
        if entry.eta_unknown is not None:
            eta = f", the QPU is {entry.eta_unknown}"
        return f"{which}position {entry.position}{eta}"

    def summary(self) -> str:
        """One line: the jobs' states and why the queued ones wait."""
        states = [self._state(h) for h in self.handles]
        waiting = [h for h, s in zip(self.handles, states, strict=True) if s is JobState.QUEUED]
        if len(self.handles) == 1:
            text = f"job {short(self.handles[0].job_id)} {states[0].value}"
        else:
            counts = {s: states.count(s) for s in dict.fromkeys(states)}
            text = ", ".join(f"{n} {s.value}" for s, n in counts.items())
        notes = [self._place(waiting), self._why(waiting)] if waiting else []
        why = " · ".join(n for n in notes if n)
        return f"{text} · {why}" if why else text

    def _ask_status(self) -> float:
        """Ask the owner for its status and the first job's place; seconds until asking again.

        Whether an owner runs at all is asked of the broker first (`QPUClient.owner_running`):
        a status command that no owner takes would expire into the dead-letter queue.
        """
        if self.client.owner_running() is False:
            self.owner_answers = False
            return STATUS_EVERY_S  # cheap to ask again: nothing is sent to an owner
        try:
            reply = self.client.control(CommandName.STATUS, timeout=STATUS_TIMEOUT_S)
            self.owner_answers = True
            self.status = reply.status
            self._ask_place()
            return STATUS_EVERY_S
        except NoOwnerAnswered:
            self.owner_answers = False
            return STATUS_EVERY_NO_OWNER_S

    def _ask_place(self) -> None:
        """The first unfinished job's place in line (and, watching, a push of its result)."""
        first = next((h for h in self.handles if h.job_id not in self.client.results), None)
        if first is None:
            return
        try:
            _, self.entry = fetch_result_from_owner(
                self.client, first.job_id, wait=self.watch, timeout=STATUS_TIMEOUT_S
            )
        except CommandRefused:
            self.entry = None  # not accepted by the owner yet

    def wait(self, timeout_s: float | None) -> list[JobResult]:
        """The results, in the order of `handles`.

        Raises:
            ResultTimeout: some jobs have no result after `timeout_s` (they stay queued).
            StoppedWaiting: Ctrl-C; the jobs go on.
        """
        ids = [h.job_id for h in self.handles]
        total = sum(h.shots for h in self.handles)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        live = self.console.is_terminal and not self.quiet
        next_status = 0.0
        told_no_owner = False
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
                        next_status = time.monotonic() + self._ask_status()
                        if live and not self.owner_answers and not told_no_owner:
                            bar.console.print(NO_OWNER, style="yellow")  # whole, never cut
                            told_no_owner = True
                    if live:
                        bar.update(task, description=self.summary(), completed=self.shots_done())
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
