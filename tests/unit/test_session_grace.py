"""Session grace in the pure core: scoped to the session's user (and allocation), bounded by the
policy's ``session_max_consecutive`` and ``session_turn_max_qpu_s`` (issue 19, finding 6)."""

from __future__ import annotations

from consumers.core.snapshot import from_data, to_data
from consumers.core.step import Command, Dispatch
from schemas.control import ControlCommand
from schemas.enums import CommandName, JobState
from schemas.events import ContextMismatch, Topic, payload_of
from schemas.policy import parse_policy
from tests.unit.core_harness import Harness

BASE = "aging_step_s = 600\nshot_rate_hz = 100\njob_overhead_s = 0\nsession_grace_s = 30\n"
UNBOUNDED = parse_policy(BASE + "session_max_consecutive = 1000\nsession_turn_max_qpu_s = 1e9\n")
FOUR_RUNS = parse_policy(BASE + "session_max_consecutive = 4\nsession_turn_max_qpu_s = 1e9\n")
QPU_CAP = parse_policy(BASE + "session_max_consecutive = 1000\nsession_turn_max_qpu_s = 2.5\n")


def _flood(h: Harness, jobs: int = 8) -> tuple[list[str], str]:
    """Alice queues `jobs` jobs of one session, then bob one job; every run takes 1 s."""
    mine = [h.submit(session_id="loop") for _ in range(jobs)]
    return mine, h.submit(user="bob")


def _bob_runs_after(h: Harness, bob: str) -> int:
    """How many of alice's runs went before bob's job started."""
    order = h.run_all()
    return order.index(bob)


def test_without_a_bound_a_session_holds_the_qpu_for_all_its_jobs() -> None:
    """Given no effective bound (the situation of finding 6), then alice's 8 session jobs all
    run before bob's earlier-usage-free job: the reference for the bounded tests."""
    h = Harness(UNBOUNDED)
    _, bob = _flood(h)
    assert _bob_runs_after(h, bob) == 8


def test_grace_ends_after_the_policys_consecutive_runs_and_fair_share_decides() -> None:
    """Given ``session_max_consecutive = 4``, when alice's session has 8 jobs and bob one,
    then bob's job runs after alice's 4th run (his usage is lower), and alice's turn starts
    again after it."""
    h = Harness(FOUR_RUNS)
    mine, bob = _flood(h)
    order = h.run_all()
    assert order.index(bob) == 4
    assert order[5:] == mine[4:]
    assert h.state.sessions["loop"].turn_runs == 4  # a new turn began after bob's run


def test_grace_ends_once_the_turn_used_the_policys_qpu_seconds() -> None:
    """Given ``session_turn_max_qpu_s = 2.5`` and runs of 1 s, then grace lasts 3 runs."""
    h = Harness(QPU_CAP)
    _, bob = _flood(h)
    assert _bob_runs_after(h, bob) == 3


def test_the_default_policy_bounds_a_session() -> None:
    """Given the default policy, a session's 8 queued jobs do not all run before bob's."""
    h = Harness(parse_policy(BASE))
    assert h.policy.session_max_consecutive is not None
    _, bob = _flood(h)
    assert _bob_runs_after(h, bob) < 8


def test_another_users_job_naming_a_session_gets_no_grace_and_is_logged() -> None:
    """Given alice's implicit session right after its run, when carol queues and then bob
    names alice's session, then carol's job runs before bob's (no grace for him), the log has
    a ``job.context_mismatch`` naming the session, and canceling the session leaves bob's job
    waiting."""
    h = Harness(UNBOUNDED)
    h.submit(session_id="loop")
    h.feed(Dispatch())
    h.finish_running()
    carol = h.submit(user="carol")
    bob = h.submit(user="bob", session_id="loop")
    assert h.state.waiting[bob].session_id is None
    noted = [e for e in h.log if e.topic == Topic.JOB_CONTEXT_MISMATCH and e.job_id == bob]
    assert len(noted) == 1 and "another user's" in (noted[0].reason or "")
    assert payload_of(noted[0], ContextMismatch).fields == ("session_id",)
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == carol
    h.finish_running()
    cancel = ControlCommand(command=CommandName.SESSION_CANCEL, session_id="loop")
    h.feed(Command(cancel, "alice", reply_to="r"))
    assert h.state.finished.get(bob) is not JobState.CANCELED
    assert bob in h.state.waiting or bob in h.started


def test_the_sessions_own_job_from_another_allocation_gets_no_grace() -> None:
    """Given alice's session opened from allocation 1, then her job from allocation 2 naming it
    runs outside it (logged), while her job from allocation 1 joins it."""
    h = Harness(UNBOUNDED)
    first = h.submit(session_id="loop", slurm={"job_id": "1"})
    assert h.state.sessions["loop"].allocation == "1"
    elsewhere = h.submit(session_id="loop", slurm={"job_id": "2"})
    same = h.submit(session_id="loop", slurm={"job_id": "1"})
    assert h.state.waiting[elsewhere].session_id is None
    assert h.state.waiting[same].session_id == "loop"
    assert h.state.waiting[first].session_id == "loop"
    assert any(e.topic == Topic.JOB_CONTEXT_MISMATCH and e.job_id == elsewhere for e in h.log)


def test_a_turn_survives_a_snapshot() -> None:
    """Given a session mid-turn, then snapshot + restore keeps its turn's runs and QPU time."""
    h = Harness(FOUR_RUNS)
    _flood(h, jobs=3)
    for _ in range(2):
        h.feed(Dispatch())
        h.finish_running()
    restored = from_data(to_data(h.state), h.policy.fair_share_half_life_s)
    session = restored.sessions["loop"]
    assert (session.turn_runs, session.turn_qpu_s) == (2, h.state.sessions["loop"].turn_qpu_s)
    assert restored.last_run_session == "loop"
