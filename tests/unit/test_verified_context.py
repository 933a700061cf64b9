"""The owner believes only what it can verify (issue 19): a job's allocation, account and
allocation end come from the allocation registry or the policy, never from the client.

Pure core: `step` and `apply` driven by the harness, with `register_claims` off so nothing the
client claims is registered for it."""

from __future__ import annotations

from datetime import timedelta

from consumers.core.commands import Command
from consumers.core.outcomes import AwaitAllocation, Reply
from consumers.core.snapshot import from_data, to_data
from consumers.core.step import Arrival, Dispatch
from consumers.core.view import queue_entries
from schemas.context import ContextSource
from schemas.control import ControlCommand
from schemas.enums import CommandName, ErrorCode, JobState
from schemas.events import JobAccepted, Topic, make_event, payload_of
from schemas.jobs import JobRequest, SlurmContext
from schemas.policy import parse_policy
from tests.unit.core_harness import POLICY, SEQ, T0, Harness

ACCOUNTS = parse_policy(
    "aging_step_s = 60\nshot_rate_hz = 100\njob_overhead_s = 0\n"
    '[accounts]\ndefault = { alice = "chem", "*" = "general" }\n'
)


def _core(policy: object = POLICY) -> Harness:
    return Harness(policy, register_claims=False)  # type: ignore[arg-type]


def _accepted(h: Harness, job_id: str) -> JobAccepted:
    (event,) = [e for e in h.log if e.job_id == job_id and e.topic == Topic.JOB_ACCEPTED]
    return payload_of(event, JobAccepted)


def test_a_job_from_a_registered_allocation_gets_the_registrys_account_and_end() -> None:
    h = _core()
    end = T0 + timedelta(hours=2)
    h.register("2002", "alice", "chem", end)
    claimed = SlurmContext(
        job_id="2002", account="someone-elses", allocation_end=T0 + timedelta(days=3650)
    )
    job = h.submit("alice", slurm=claimed)
    verified = _accepted(h, job).verified
    assert verified is not None and verified.source is ContextSource.ALLOCATION
    assert (verified.allocation, verified.account, verified.allocation_end) == ("2002", "chem", end)
    assert h.state.waiting[job].account == "chem" and h.state.waiting[job].allocation_end == end
    (mismatch,) = [e for e in h.log if e.topic == Topic.JOB_CONTEXT_MISMATCH]
    assert mismatch.job_id == job and mismatch.data["fields"] == ["account", "allocation_end"]
    assert "someone-elses" in (mismatch.reason or "") and "chem" in (mismatch.reason or "")


def test_an_honest_job_logs_no_mismatch() -> None:
    h = _core()
    h.register("7", "alice", "chem", T0 + timedelta(hours=1))
    h.submit(
        "alice",
        slurm=SlurmContext(job_id="7", account="chem", allocation_end=T0 + timedelta(hours=1)),
    )
    h.submit("alice", slurm=SlurmContext(job_id="7"))  # an old client that knows no more
    assert not [e for e in h.log if e.topic == Topic.JOB_CONTEXT_MISMATCH]


def test_an_unknown_allocation_waits_for_its_registration_then_is_refused_naming_it() -> None:
    h = _core()
    job = JobRequest(
        sequence=SEQ, job_class="production", shots=10, slurm=SlurmContext(job_id="fake-2002")
    )
    effects = h.feed(Arrival(job, "alice"))
    assert effects == [AwaitAllocation("fake-2002")] and job.job_id not in h.state.owners
    assert not [e for e in h.log if e.job_id == job.job_id]  # nothing logged while it waits
    grace_s = h.policy.accounts.registration_grace_s
    effects = h.feed(Arrival(job, "alice", reply_to="r", waited_s=grace_s))
    assert h.state.finished[job.job_id] is JobState.REJECTED
    reply = next(e for e in effects if isinstance(e, Reply))
    error = reply.message.error  # type: ignore[union-attr]
    assert error.code is ErrorCode.UNKNOWN_ALLOCATION and "fake-2002" in error.message
    assert "\n" not in error.message


def test_no_room_to_wait_refuses_at_once() -> None:
    h = _core()
    job = JobRequest(sequence=SEQ, job_class="production", shots=10, slurm=SlurmContext(job_id="9"))
    h.feed(Arrival(job, "alice", may_wait=False))
    assert h.state.finished[job.job_id] is JobState.REJECTED


def test_a_registration_arriving_during_the_wait_lets_the_job_in() -> None:
    h = _core()
    job = JobRequest(
        sequence=SEQ, job_class="production", shots=10, slurm=SlurmContext(job_id="31")
    )
    assert h.feed(Arrival(job, "alice")) == [AwaitAllocation("31")]
    h.register("31", "alice", "chem")
    h.feed(Arrival(job, "alice", waited_s=1.0))
    assert h.state.waiting[job.job_id].account == "chem"


def test_another_users_allocation_is_refused_naming_what_was_claimed() -> None:
    h = _core()
    h.register("2002", "alice", "chem")
    job = JobRequest(
        sequence=SEQ,
        job_class="production",
        shots=10,
        slurm=SlurmContext(job_id="2002", account="chem"),
    )
    effects = h.feed(Arrival(job, "mallory", reply_to="r"))
    assert h.state.finished[job.job_id] is JobState.REJECTED
    error = next(e for e in effects if isinstance(e, Reply)).message.error  # type: ignore[union-attr]
    assert error.code is ErrorCode.NOT_YOUR_ALLOCATION
    assert "2002" in error.message and "mallory" in error.message and "alice" not in error.message


def test_outside_allocations_the_account_is_the_sites_default_mapping() -> None:
    h = _core(ACCOUNTS)
    alice = h.submit("alice")
    bob = h.submit("bob")
    assert h.state.waiting[alice].account == "chem" and h.state.waiting[bob].account == "general"
    assert _accepted(h, alice).verified.source is ContextSource.DEFAULT  # type: ignore[union-attr]
    nobody = _core()
    job = nobody.submit("carol")
    assert nobody.state.waiting[job].account is None


def test_require_allocation_refuses_jobs_outside_allocations() -> None:
    policy = parse_policy("[accounts]\nrequire_allocation = true\n")
    h = _core(policy)
    job = JobRequest(sequence=SEQ, job_class="production", shots=10)
    effects = h.feed(Arrival(job, "alice", reply_to="r"))
    assert h.state.finished[job.job_id] is JobState.REJECTED
    error = next(e for e in effects if isinstance(e, Reply)).message.error  # type: ignore[union-attr]
    assert error.code is ErrorCode.ALLOCATION_REQUIRED
    h.register("5", "alice", "chem")
    assert h.submit("alice", slurm=SlurmContext(job_id="5")) in h.state.waiting


def test_fair_share_charges_the_verified_account_whatever_the_client_claims() -> None:
    """Finding 3: after using QPU time under acct-a, claiming a fresh account buys nothing."""
    h = _core()
    h.register("100", "alice", "acct-a")
    h.register("200", "bob", "acct-b")
    for _ in range(3):
        h.submit("alice", slurm=SlurmContext(job_id="100", account="acct-a"))
    h.run_all()
    alice = h.submit("alice", slurm=SlurmContext(job_id="100", account="fresh-account"))
    bob = h.submit("bob", slurm=SlurmContext(job_id="200", account="acct-b"))
    h.started.clear()
    assert h.run_all()[:2] == [bob, alice]  # alice queued first, but acct-a used the QPU
    assert set(h.state.account_usage.snapshot(h.now)) == {"acct-a", "acct-b"}


def test_a_claimed_allocation_end_far_away_does_not_start_a_job_that_cannot_finish() -> None:
    """Finding 4: the registry's end (3 s away) holds a 10 s job, whatever the client says."""
    h = _core()
    h.register("2002", "alice", "chem", h.now + timedelta(seconds=3))
    far = SlurmContext(job_id="2002", allocation_end=h.now + timedelta(days=3650))
    job = h.submit("alice", shots=1000, slurm=far)  # 10 s at 100 shots/s
    h.feed(Dispatch())
    assert h.state.running is None
    (entry,) = queue_entries(h.state, h.policy, h.now)
    assert entry.job_id == job and "allocation 2002 ends in 3 s" in (entry.held or "")


def test_allocation_ended_cancels_every_job_of_the_allocation_whatever_it_claimed() -> None:
    """Finding 5: a job claiming `fake-2002` from inside 2002 never gets in; those of 2002 end."""
    h = _core()
    h.register("2002", "alice", "chem")
    real = h.submit("alice", slurm=SlurmContext(job_id="2002"))
    fake = JobRequest(
        sequence=SEQ, job_class="production", shots=10, slurm=SlurmContext(job_id="fake-2002")
    )
    h.feed(Arrival(fake, "alice", waited_s=60.0))
    ended = ControlCommand(command=CommandName.ALLOCATION_ENDED, allocation="2002", issued_at=h.now)
    h.feed(Command(ended, "slurm"))
    assert h.state.finished[real] is JobState.CANCELED
    assert h.state.finished[fake.job_id] is JobState.REJECTED
    assert h.state.allocations["2002"].ended
    late = h.submit("alice", slurm=SlurmContext(job_id="2002"))
    assert h.state.finished[late] is JobState.CANCELED


def test_the_prolog_user_may_register_and_a_submitter_may_not() -> None:
    h = _core()
    effects = h.register("1", "alice", "chem", by="slurm")  # policy epilog_users: ("slurm",)
    assert effects[-1].message.ok and "1" in h.state.allocations  # type: ignore[attr-defined]
    effects = h.register("2", "mallory", "chem", by="mallory")
    assert not effects[-1].message.ok and "2" not in h.state.allocations  # type: ignore[attr-defined]
    pause = ControlCommand(command=CommandName.PAUSE, issued_at=h.now)
    assert not h.feed(Command(pause, "slurm"))[-1].message.ok  # type: ignore[attr-defined]
    events = [e for e in h.log if e.topic == "control.allocation-started"]
    assert [e.data["ok"] for e in events] == [True, False]  # both in the log: the audit trail
    assert events[0].data["registered"]["user"] == "alice"


def test_a_raised_time_limit_reaches_the_waiting_jobs_of_the_allocation() -> None:
    h = _core()
    h.register("3", "alice", "chem", h.now + timedelta(seconds=1))
    job = h.submit("alice", shots=1000, slurm=SlurmContext(job_id="3"))
    h.register("3", "alice", "chem", h.now + timedelta(hours=1))
    assert h.state.waiting[job].allocation_end == h.now + timedelta(hours=1)
    h.feed(Dispatch())
    assert h.state.running is not None and h.state.running.job.job_id == job


def test_the_registry_survives_a_snapshot_and_a_replay() -> None:
    h = _core()
    h.register("11", "alice", "chem", h.now + timedelta(hours=1))
    h.feed(Command(ControlCommand(command=CommandName.ALLOCATION_ENDED, allocation="11"), "slurm"))
    h.register("12", "bob", None)
    again = from_data(to_data(h.state), h.policy.fair_share_half_life_s)
    assert again.allocations == h.state.allocations and again.allocations["11"].ended
    replayed = Harness(register_claims=False)
    for event in h.log:
        replayed.state.apply(event)
    assert replayed.state.allocations == h.state.allocations


def test_a_job_accepted_before_contexts_were_verified_keeps_its_claim_on_replay() -> None:
    h = _core()
    job = JobRequest(
        sequence=SEQ,
        job_class="production",
        shots=10,
        slurm=SlurmContext(job_id="8", account="old"),
    )
    legacy = make_event(Topic.JOB_ACCEPTED, JobAccepted(job=job, user="alice"), job_id=job.job_id)
    h.emit([legacy])
    waiting = h.state.waiting[job.job_id]
    assert (waiting.allocation, waiting.account) == ("8", "old")
