"""Site plugins without a broker: what their answers do to the core, the time limit, the gate,
the sinks' buffers and retries, loading by entry-point name, and the reference plugins."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from consumers.core.step import Arrival, Readmitted
from consumers.core.view import queue_entries
from consumers.plugins.api import JobFacts, Verdict
from consumers.plugins.gate import Gate
from consumers.plugins.loading import Loaded, Origin, PluginError, Plugins, load_plugins
from consumers.plugins.reference import AccountCheck, AccountTerm, JsonlSink
from consumers.plugins.sinks import SinkFanout
from consumers.plugins.timed import PluginFailure, TimedCaller
from schemas.enums import ErrorCode, JobState
from schemas.envelope import Event
from schemas.events import Topic
from schemas.jobs import JobError, JobRequest, SlurmContext
from schemas.policy import PluginsPolicy, parse_policy
from tests.support.waiting import wait_until
from tests.unit.core_harness import SEQ, Harness

# ---- the core: holds and site terms ---------------------------------------------------------


def test_given_an_admission_hold_when_dispatching_then_the_held_job_waits_with_its_reason() -> None:
    h = Harness()
    held = h.submit(hold="admission plugin quota: account chem is over its QPU budget")
    other = h.submit()
    assert h.run_all() == [other]
    (entry,) = queue_entries(h.state, h.policy, h.now)
    assert entry.job_id == held
    assert entry.held == "held: admission plugin quota: account chem is over its QPU budget"


def test_given_a_held_job_when_readmitted_then_it_runs_and_a_refusal_ends_it_rejected() -> None:
    h = Harness()
    freed = h.submit(hold="admission plugin quota: over budget")
    refused = h.submit(hold="admission plugin quota: over budget")
    h.feed(Readmitted(freed))
    effects = h.feed(Readmitted(refused, refusal=_refusal("account closed")))
    assert h.run_all() == [freed]
    assert h.state.finished[refused] is JobState.REJECTED
    (reply,) = effects
    assert reply.message.error.message == "refused by admission plugin quota: account closed"  # type: ignore[attr-defined]
    topics = [e.topic for e in h.log if e.job_id == freed]
    assert topics.count(Topic.JOB_ADMISSION) == 2  # held, then let go


def _refusal(reason: str) -> JobError:
    return JobError(
        code=ErrorCode.ADMISSION_REFUSED, message=f"refused by admission plugin quota: {reason}"
    )


def test_given_site_terms_when_dispatching_then_higher_terms_start_first_within_a_class() -> None:
    h = Harness()
    low = h.submit(site_term=-1.0, priority=9)
    plain = h.submit(priority=5)
    high = h.submit(site_term=2.0)
    assert h.run_all() == [high, plain, low]


def test_the_site_term_is_recorded_in_job_accepted_and_survives_a_replay() -> None:
    h = Harness()
    h.submit(site_term=3.0)
    accepted = next(e for e in h.log if e.topic == Topic.JOB_ACCEPTED)
    assert accepted.data["site_term"] == 3.0
    h.activate()
    (job,) = h.state.waiting.values()
    assert job.site_term == 3.0


# ---- the time limit -------------------------------------------------------------------------


def test_a_call_that_raises_fails_with_its_error_and_the_caller_serves_on() -> None:
    caller = TimedCaller("t", timeout_s=5.0)
    with pytest.raises(PluginFailure, match="ZeroDivisionError"):
        caller.call(lambda: 1 / 0)
    assert caller.call(lambda x: x + 1, 1) == 2


def test_a_hung_call_fails_at_its_limit_then_fails_fast_until_it_returns() -> None:
    release = threading.Event()
    caller = TimedCaller("t", timeout_s=0.2)
    began = time.monotonic()
    with pytest.raises(PluginFailure, match=r"no answer within 0\.2 s"):
        caller.call(release.wait)
    assert time.monotonic() - began < 5.0
    began = time.monotonic()
    with pytest.raises(PluginFailure, match="still inside a call"):
        caller.call(lambda: 1)
    assert time.monotonic() - began < 0.2  # no second wait for the same hang
    release.set()
    wait_until(lambda: not caller.busy, "the hung call to return", 10.0)
    assert caller.call(lambda: 7) == 7


# ---- the gate -------------------------------------------------------------------------------


def _loaded(point: str, name: str, plugin: object) -> Loaded:
    return Loaded(Origin(point, name, f"tests:{name}", "tests", "0"), plugin)


class Raising:
    def admit(self, job: JobFacts) -> Verdict:
        raise RuntimeError("accounting database unreachable")

    def term(self, job: JobFacts) -> float:
        raise RuntimeError("no grants table")


class Hanging:
    def __init__(self) -> None:
        self.release = threading.Event()

    def admit(self, job: JobFacts) -> Verdict:
        self.release.wait()
        return Verdict.accept()


def _arrival(account: str | None = "chem", job_class: str = "production") -> Arrival:
    """A job of alice from her allocation of `account` (registered by `_harness`)."""
    slurm = SlurmContext(job_id=f"alloc-{account}") if account else None
    return Arrival(JobRequest(sequence=SEQ, job_class=job_class, shots=10, slurm=slurm), "alice")


def _harness() -> Harness:
    """A core whose registry has alice's allocations of accounts chem, spam and phys."""
    h = Harness()
    for account in ("chem", "spam", "phys"):
        h.register(f"alloc-{account}", "alice", account)
    return h


def _gate(*admission: object, ordering: object = None, **settings: object) -> Gate:
    return Gate(
        Plugins(
            settings=PluginsPolicy(**settings),  # type: ignore[arg-type]
            admission=tuple(_loaded("admission", f"a{i}", p) for i, p in enumerate(admission)),
            ordering=_loaded("ordering", "o", ordering) if ordering is not None else None,
        )
    )


def test_the_reference_admission_plugin_refuses_holds_and_accepts_by_account() -> None:
    check = AccountCheck(blocked=["spam"], over_budget=["chem"])
    gate = Gate(Plugins(admission=(_loaded("admission", "accounts", check),)))
    state = _harness().state
    refused, _ = gate.review(_arrival("spam"), state, Harness().policy)
    held, _ = gate.review(_arrival("chem"), state, Harness().policy)
    accepted, _ = gate.review(_arrival("phys"), state, Harness().policy)
    assert refused.problem is not None and refused.problem.code is ErrorCode.ADMISSION_REFUSED
    assert (
        refused.problem.message
        == "refused by admission plugin accounts: account spam may not use the QPU"
    )
    assert held.hold == "admission plugin accounts: account chem is over its QPU budget"
    assert accepted.problem is None and accepted.hold is None


def test_a_raising_admission_plugin_holds_the_job_with_the_error_and_logs_plugin_failed() -> None:
    h = _harness()
    arrival, failures = _gate(Raising()).review(_arrival(), h.state, h.policy)
    assert arrival.hold is not None and "accounting database unreachable" in arrival.hold
    (event,) = failures
    assert event.topic == Topic.PLUGIN_FAILED and event.job_id == arrival.job.job_id
    assert event.data["plugin"] == "a0" and event.data["point"] == "admission"


@pytest.mark.parametrize("on_error", ["refuse", "accept"])
def test_on_error_refuse_or_accept(on_error: str) -> None:
    h = _harness()
    arrival, _ = _gate(Raising(), on_error=on_error).review(_arrival(), h.state, h.policy)
    if on_error == "refuse":
        assert arrival.problem is not None and arrival.problem.retryable
    else:
        assert arrival.problem is None and arrival.hold is None


def test_a_hanging_admission_plugin_costs_one_time_limit_then_fails_fast() -> None:
    h = _harness()
    hanging = Hanging()
    gate = _gate(hanging, timeout_s=0.3)
    began = time.monotonic()
    first, failures = gate.review(_arrival(), h.state, h.policy)
    second, _ = gate.review(_arrival(), h.state, h.policy)
    assert time.monotonic() - began < 5.0
    assert first.hold is not None and "no answer within 0.3 s" in first.hold
    assert second.hold is not None and "still inside a call" in second.hold
    assert failures[0].topic == Topic.PLUGIN_FAILED
    hanging.release.set()


def test_jobs_the_core_refuses_anyway_are_not_put_to_the_plugins() -> None:
    h = _harness()
    arrival, failures = _gate(Raising()).review(_arrival(job_class="nope"), h.state, h.policy)
    assert arrival.hold is None and failures == []


def test_the_ordering_plugin_gives_the_term_and_a_failing_one_leaves_it_out() -> None:
    h = _harness()
    good, _ = _gate(ordering=AccountTerm({"chem": 2})).review(_arrival(), h.state, h.policy)
    bad, failures = _gate(ordering=Raising()).review(_arrival(), h.state, h.policy)
    assert good.site_term == 2.0
    assert bad.site_term is None and "ordered without a site term" in (failures[0].reason or "")


def test_held_jobs_are_asked_again_after_recheck_s() -> None:
    h = _harness()
    check = AccountCheck(over_budget=["chem"])
    gate = Gate(
        Plugins(
            settings=PluginsPolicy(recheck_s=0.1),
            admission=(_loaded("admission", "accounts", check),),
        )
    )
    arrival, _ = gate.review(_arrival(), h.state, h.policy)
    h.feed(arrival)
    assert gate.recheck(h.state) == ([], [])  # asked moments ago
    check.over_budget = frozenset()
    asked: list[Readmitted] = []
    wait_until(lambda: bool(asked.extend(gate.recheck(h.state)[0]) or asked), "a re-ask", 10.0)
    assert asked == [Readmitted(arrival.job.job_id)]


class HangsForOneJob:
    """Hangs (briefly, each time) for jobs of 13 shots; holds the others until `open`."""

    def __init__(self) -> None:
        self.open = False

    def admit(self, job: JobFacts) -> Verdict:
        if job.shots == 13:
            time.sleep(0.6)
            return Verdict.hold("never")
        return Verdict.accept() if self.open else Verdict.hold("closed")


def test_a_job_whose_asks_hang_does_not_starve_the_other_held_jobs() -> None:
    h = _harness()
    plugin = HangsForOneJob()
    gate = _gate(plugin, timeout_s=0.2, recheck_s=0.1)
    hanging, _ = gate.review(
        Arrival(JobRequest(sequence=SEQ, job_class="production", shots=13), "alice"),
        h.state,
        h.policy,
    )
    h.feed(hanging)
    waiting, _ = gate.review(_arrival(), h.state, h.policy)  # the plugin may still be inside
    h.feed(waiting)
    plugin.open = True
    asked: list[Readmitted] = []

    def readmitted() -> bool:
        asked.extend(gate.recheck(h.state)[0])
        return Readmitted(waiting.job.job_id) in asked

    wait_until(readmitted, "the other held job admitted while one job's asks hang", 10.0)


# ---- event sinks ----------------------------------------------------------------------------


class Collecting:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.seen: list[str] = []

    def send(self, events: Sequence[Event]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("webhook down")
        self.seen += [e.event_id for e in events]


def _events(n: int) -> list[Event]:
    return [Event(topic="job.note", reason=str(i)) for i in range(n)]


def _fanout(*sinks: object, **settings: object) -> SinkFanout:
    loaded = tuple(_loaded("event_sinks", f"s{i}", s) for i, s in enumerate(sinks))
    return SinkFanout(Plugins(settings=PluginsPolicy(**settings), event_sinks=loaded))  # type: ignore[arg-type]


def test_a_sink_that_fails_twice_still_sees_every_event_in_order() -> None:
    sink = Collecting(failures=2)
    fanout = _fanout(sink)
    events = _events(50)
    for event in events:
        fanout.offer(event)
    wait_until(lambda: len(sink.seen) == 50, "every event at the sink", 30.0)
    assert sink.seen == [e.event_id for e in events]
    fanout.close()


def test_a_hung_sink_never_blocks_offer_and_loses_only_the_oldest_events() -> None:
    release = threading.Event()

    class Stuck:
        def send(self, events: Sequence[Event]) -> None:
            release.wait()

    fanout = _fanout(Stuck(), sink_buffer=10, timeout_s=0.01)
    began = time.monotonic()
    for event in _events(1000):
        fanout.offer(event)
    assert time.monotonic() - began < 2.0
    reports: list[Event] = []
    wait_until(lambda: bool(reports.extend(fanout.take_reports()) or reports), "a report", 10.0)
    assert reports[0].data["dropped"] >= 1000 - 10 - 500  # buffer of 10, one batch in flight
    release.set()
    fanout.close()


def test_a_sink_that_always_fails_is_reported_as_plugin_failed_with_the_events_lost() -> None:
    sink = Collecting(failures=10**9)
    fanout = _fanout(sink)
    fanout.offer(_events(1)[0])
    reports: list[Event] = []
    wait_until(lambda: bool(reports.extend(fanout.take_reports()) or reports), "a report", 30.0)
    (report,) = reports
    assert report.topic == Topic.PLUGIN_FAILED and report.data["dropped"] == 1
    assert "webhook down" in report.data["error"]
    fanout.close(0.1)


def test_the_jsonl_sink_appends_one_line_per_event(tmp_path: Path) -> None:
    sink = JsonlSink(str(tmp_path / "events.jsonl"))
    events = _events(3)
    sink.send(events[:2])
    sink.send(events[2:])
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["event_id"] for line in lines] == [e.event_id for e in events]


# ---- loading --------------------------------------------------------------------------------


def test_the_reference_plugins_load_by_name_with_their_options() -> None:
    policy = parse_policy(
        """
[plugins]
admission = ["accounts"]
ordering = "account-term"
event_sinks = ["jsonl"]
[plugins.options.accounts]
blocked = ["spam"]
[plugins.options.account-term]
terms = { chem = 2 }
[plugins.options.jsonl]
path = "/tmp/qsched-test-never-written.jsonl"
"""
    )
    plugins = load_plugins(policy)
    assert [p.name for p in plugins.loaded] == ["accounts", "account-term", "jsonl"]
    assert plugins.admission[0].origin.distribution == "qsched"
    assert plugins.admission[0].origin.module == "consumers.plugins.reference"
    facts = JobFacts("j", "production", "alice", 1, account="chem")
    assert plugins.site_term(facts) == 2.0


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[plugins]\nadmission = ["nope"]', "no admission plugin named 'nope'"),
        ('[plugins]\nordering = "accounts"', "no ordering plugin named 'accounts'"),
        (
            '[plugins]\nadmission = ["accounts"]\n[plugins.options.accounts]\ncolour = 1',
            "failed to load: TypeError",
        ),
    ],
)
def test_a_missing_or_unbuildable_plugin_is_a_plugin_error(toml: str, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        load_plugins(parse_policy(toml))
