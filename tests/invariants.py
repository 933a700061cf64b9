"""One checker of the reliability invariants, over the event log and what submitters received.

Every chaos scenario ends by calling `check` with the whole event log, the jobs its submitters
sent, the results they received, and what was left in the intake queues once every owner was
stopped (unacked deliveries go back to ready when their channel closes, so "left" counts both
unprocessed and unacked messages). It returns a `Verdict` with the figures the reliability report
prints; `Verdict.problems` lists every broken invariant:

1. every accepted job ends exactly once (one effective final event), and every sent job was
   accepted or refused in the log (none lost);
2. no two jobs ran at once: a ``job.started`` while another run is open (not ended, cut by a
   preemption/requeue/retry, or cut by a new owner's activation) is an overlap;
3. no event of a stale term took effect: a job whose only end is written by an owner whose term
   was already superseded is a violation (`apply` ignores such events);
4. no job ran twice on the backend unless its first run was cut off: every start after a job's
   first needs a cut in between (``job.requeued``/``job.preempted``/``job.retrying``, or an
   activation while it ran);
5. every final result reached its submitter, with the state the log has;
6. nothing stayed unacked: no message left in the intake queues.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from schemas.enums import JobState
from schemas.events import Topic
from schemas.messages import Event, JobResult

CUTS = frozenset({Topic.JOB_REQUEUED, Topic.JOB_PREEMPTED, Topic.JOB_RETRYING})
ACTIVATED = Topic.OWNER_ACTIVATED.value
FINALS = frozenset(
    t.value
    for t in (
        Topic.JOB_DONE,
        Topic.JOB_ERROR,
        Topic.JOB_CANCELED,
        Topic.JOB_TIMED_OUT,
        Topic.JOB_REJECTED,
    )
)


@dataclass
class Verdict:
    """Figures of one run and the invariants it broke (empty `problems`: none)."""

    jobs: int = 0
    accepted: int = 0
    lost: int = 0
    duplicated: int = 0
    overlaps: int = 0
    stale_effective: int = 0
    reruns_without_cut: int = 0
    not_delivered: int = 0
    left_in_queues: int = 0
    activations: int = 0
    stale_events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no invariant broke."""
        return not self.problems


def check(
    events: Iterable[Event],
    sent: Iterable[str],
    received: Mapping[str, JobResult],
    left_in_queues: int = 0,
) -> Verdict:
    """Check the six invariants (module docstring) and count what a report shows.

    Args:
        events: the whole event log, in order.
        sent: ids of the jobs the submitters sent.
        received: the final result each submitter got, by job id.
        left_in_queues: messages in the intake and control queues after the owners stopped.
    """
    verdict = Verdict(left_in_queues=left_in_queues)
    sent_ids = set(sent)
    verdict.jobs = len(sent_ids)
    term = 0
    accepted: set[str] = set()
    finals: Counter[str] = Counter()
    final_state: dict[str, str] = {}
    stale_finals: Counter[str] = Counter()
    open_run: str | None = None
    starts: Counter[str] = Counter()
    cut_since_start: dict[str, bool] = {}
    for event in events:
        topic, job_id = event.topic, event.job_id
        if topic == ACTIVATED:
            verdict.activations += 1
            term = max(term, int(event.data.get("term") or 0))
            if open_run is not None:
                cut_since_start[open_run] = True  # its owner died: the run was cut off
                open_run = None
            continue
        if event.term is not None and event.term < term:
            verdict.stale_events += 1
            if topic in FINALS and job_id:
                stale_finals[job_id] += 1
            continue
        if not job_id:
            continue
        if topic == Topic.JOB_ACCEPTED:
            accepted.add(job_id)
        elif topic == Topic.JOB_STARTED:
            if open_run is not None:
                verdict.overlaps += 1
                verdict.problems.append(f"{job_id} started while {open_run} was running")
            if starts[job_id] and not cut_since_start.get(job_id, False):
                verdict.reruns_without_cut += 1
                verdict.problems.append(f"{job_id} ran again without its run being cut off")
            starts[job_id] += 1
            cut_since_start[job_id] = False
            open_run = job_id
        elif topic in CUTS:
            cut_since_start[job_id] = True
            if open_run == job_id:
                open_run = None
        elif topic in FINALS:
            finals[job_id] += 1
            final_state.setdefault(job_id, topic)
            if open_run == job_id:
                open_run = None
    verdict.accepted = len(accepted)
    for job_id in accepted:
        if finals[job_id] == 0:
            verdict.lost += 1
            verdict.problems.append(f"{job_id} was accepted and never ended")
            if stale_finals[job_id]:
                verdict.stale_effective += 1
    for job_id in sent_ids - accepted:
        if finals[job_id] == 0:  # refused at intake ends with job.rejected; else it vanished
            verdict.lost += 1
            verdict.problems.append(f"{job_id} was sent and never reached the log")
    for job_id, count in finals.items():
        if count > 1:
            verdict.duplicated += 1
            verdict.problems.append(f"{job_id} ended {count} times")
    for job_id in sent_ids:
        result = received.get(job_id)
        if job_id in final_state and (
            result is None or f"job.{result.state.value.lower()}" != final_state[job_id]
        ):
            verdict.not_delivered += 1
            got = result.state.value if result is not None else "nothing"
            verdict.problems.append(f"{job_id}: the log says {final_state[job_id]}, got {got}")
    if left_in_queues:
        verdict.problems.append(f"{left_in_queues} messages left unacked or unread")
    return verdict


def done_everywhere(received: Mapping[str, JobResult]) -> bool:
    """Whether every received result is DONE (scenarios without faults of the backend)."""
    return all(r.state is JobState.DONE for r in received.values())
