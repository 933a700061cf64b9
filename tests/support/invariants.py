"""One checker of the reliability invariants, over the event log and what submitters received.

Every reliability scenario (the simulation, the fuzz test, every chaos test) ends by calling
`check` with the whole event log, the ids of the jobs it actually sent (put into intake), the
results its submitters received, and what was left in the intake queues once every owner was
stopped (unacked deliveries go back to ready when their channel closes, so "left" counts both
unprocessed and unacked messages). It returns a `Verdict` with the figures the reliability report
prints; `Verdict.problems` lists every broken invariant:

0. the run proves something: at least one job was sent and one was accepted (an empty history
   is a failed run, not a clean one);
1. every sent job ends exactly once: accepted then one effective final event, or refused at
   intake (``job.rejected``); a sent job missing from the log is lost;
2. no two jobs ran at once on the QPU (nor on one emulator lane): every ``job.started``, whatever
   its term, while another run is open on the same resource is an overlap. A run is open from
   its start until its end or cut *by the same writer* (an owner superseded by a newer term ends
   only its own runs), or until an activation of a newer term (its owner is gone);
3. no superseded owner started anything: every ``job.started`` of a stale term is a problem
   (split brain), and a job whose only end is written by a superseded owner is lost (`apply`
   ignores stale events);
4. no job ran twice unless its run was cut off: every start after a job's first, whatever its
   term, needs a cut in between (``job.requeued``/``job.preempted``/``job.retrying``, or an
   activation while it ran);
5. nothing ran on the QPU before its epoch (a job's ``min_epoch`` against the last effective
   ``calibration.complete``);
6. every final result reached its submitter with the state the log has (skipped only when the
   caller passes ``received=None``: a world without submitters, such as the simulation);
7. nothing stayed unacked: no message left in the intake queues.

The checker is independent of the product: it reads events as data and imports no owner code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from schemas.enums import JobState
from schemas.envelope import Event
from schemas.events import Topic
from schemas.jobs import JobResult

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
QPU = "the QPU"  # the resource of a run without a lane


@dataclass
class Verdict:
    """Figures of one run and the invariants it broke (empty `problems`: none)."""

    jobs: int = 0
    accepted: int = 0
    lost: int = 0
    duplicated: int = 0
    overlaps: int = 0
    stale_starts: int = 0
    stale_effective: int = 0
    reruns_without_cut: int = 0
    before_epoch: int = 0
    not_delivered: int = 0
    delivery_checked: bool = True
    left_in_queues: int = 0
    activations: int = 0
    starts: int = 0
    stale_events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no invariant broke."""
        return not self.problems


@dataclass
class _Runs:
    """Open runs per resource (the QPU, each lane), with the term of the owner that started
    them, and whether each job's last run was cut off."""

    open: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)
    starts: Counter[str] = field(default_factory=Counter)
    cut: dict[str, bool] = field(default_factory=dict)

    def start(self, verdict: Verdict, event: Event, stale_under: int | None) -> str:
        job_id = event.job_id or ""
        resource = str(event.data.get("lane") or QPU)
        verdict.starts += 1
        if stale_under is not None:
            verdict.stale_starts += 1
            verdict.problems.append(
                f"{job_id} started by a superseded owner (term {event.term} < {stale_under})"
            )
        running = self.open.setdefault(resource, [])
        if running:
            verdict.overlaps += 1
            others = ", ".join(f"{j} (term {t})" for j, t in running)
            verdict.problems.append(
                f"{job_id} (term {event.term}) started on {resource} while {others} ran"
            )
        if self.starts[job_id] and not self.cut.get(job_id, False):
            verdict.reruns_without_cut += 1
            verdict.problems.append(f"{job_id} ran again without its run being cut off")
        self.starts[job_id] += 1
        self.cut[job_id] = False
        running.append((job_id, event.term))
        return resource

    def end(self, job_id: str, term: int | None) -> bool:
        """Close `job_id`'s run started by the writer of `term`; whether one was open."""
        for running in self.open.values():
            for entry in running:
                if entry[0] == job_id and (term is None or entry[1] is None or entry[1] == term):
                    running.remove(entry)
                    return True
        return False

    def activation(self, term: int) -> None:
        """An owner of `term` took over: every run of an older owner was cut off."""
        for running in self.open.values():
            for entry in list(running):
                if entry[1] is None or entry[1] < term:
                    running.remove(entry)
                    self.cut[entry[0]] = True


def check(
    events: Iterable[Event],
    sent: Iterable[str],
    received: Mapping[str, JobResult] | None,
    left_in_queues: int = 0,
) -> Verdict:
    """Check the invariants (module docstring) and count what a report shows.

    Args:
        events: the whole event log, in order.
        sent: ids of the jobs put into intake (whatever became of them).
        received: the final result each submitter got, by job id; None when the run has no
            submitters to answer (the delivery invariant is then not checked, and the verdict
            says so).
        left_in_queues: messages in the intake and control queues after the owners stopped.
    """
    verdict = Verdict(left_in_queues=left_in_queues, delivery_checked=received is not None)
    sent_ids = set(sent)
    verdict.jobs = len(sent_ids)
    term = 0
    epoch = 0
    accepted: set[str] = set()
    min_epoch: dict[str, int] = {}
    finals: Counter[str] = Counter()
    final_state: dict[str, str] = {}
    stale_finals: Counter[str] = Counter()
    runs = _Runs()
    for event in events:
        topic, job_id = event.topic, event.job_id
        stale = event.term is not None and event.term < term
        if topic == ACTIVATED and not stale:
            verdict.activations += 1
            term = max(term, int(event.data.get("term") or 0))
            runs.activation(term)
            continue
        if stale:
            verdict.stale_events += 1
        if topic == Topic.JOB_STARTED and job_id:
            resource = runs.start(verdict, event, term if stale else None)
            wanted = min_epoch.get(job_id, 0)
            if not stale and resource == QPU and wanted > epoch:
                verdict.before_epoch += 1
                verdict.problems.append(f"{job_id} ran at epoch {epoch}, before its epoch {wanted}")
            continue
        if job_id and (topic in CUTS or topic in FINALS):
            closed = runs.end(job_id, event.term)
            if topic in CUTS and (closed or not stale):
                runs.cut[job_id] = True
        if stale:
            if topic in FINALS and job_id:
                stale_finals[job_id] += 1
            continue
        if topic == Topic.CALIBRATION_COMPLETE:
            epoch = int(event.data.get("epoch") or 0)
        elif not job_id:
            continue
        elif topic == Topic.JOB_ACCEPTED:
            accepted.add(job_id)
            job = event.data.get("job")
            min_epoch[job_id] = int((job or {}).get("min_epoch") or 0)
        elif topic in FINALS:
            finals[job_id] += 1
            final_state.setdefault(job_id, topic)
    verdict.accepted = len(accepted)
    if not sent_ids:
        verdict.problems.append("no job was sent: an empty run proves nothing")
    if not accepted:
        verdict.problems.append("no job was accepted: the run proves nothing")
    _ends(verdict, sent_ids, accepted, finals, stale_finals)
    if received is not None:
        _delivered(verdict, sent_ids, final_state, received)
    if left_in_queues:
        verdict.problems.append(f"{left_in_queues} messages left unacked or unread")
    return verdict


def _ends(
    verdict: Verdict,
    sent_ids: set[str],
    accepted: set[str],
    finals: Counter[str],
    stale_finals: Counter[str],
) -> None:
    for job_id in sorted(accepted):
        if finals[job_id] == 0:
            verdict.lost += 1
            verdict.problems.append(f"{job_id} was accepted and never ended")
            if stale_finals[job_id]:
                verdict.stale_effective += 1
    for job_id in sorted(sent_ids - accepted):
        if finals[job_id] == 0:  # refused at intake ends with job.rejected; else it vanished
            verdict.lost += 1
            verdict.problems.append(f"{job_id} was sent and never reached the log")
    for job_id, count in finals.items():
        if count > 1:
            verdict.duplicated += 1
            verdict.problems.append(f"{job_id} ended {count} times")


def _delivered(
    verdict: Verdict,
    sent_ids: set[str],
    final_state: dict[str, str],
    received: Mapping[str, JobResult],
) -> None:
    for job_id in sorted(sent_ids):
        result = received.get(job_id)
        if job_id in final_state and (
            result is None or f"job.{result.state.value.lower()}" != final_state[job_id]
        ):
            verdict.not_delivered += 1
            got = result.state.value if result is not None else "nothing"
            verdict.problems.append(f"{job_id}: the log says {final_state[job_id]}, got {got}")


def done_everywhere(received: Mapping[str, JobResult]) -> bool:
    """Whether every received result is DONE (scenarios without faults of the backend)."""
    return all(r.state is JobState.DONE for r in received.values())
