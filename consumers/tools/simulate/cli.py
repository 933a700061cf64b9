"""`qsched simulate --policy OTHER.toml`: the recorded history re-run under another policy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from brokers.cli import settings_of
from consumers.tools.eventlog.errors import EventLogError
from consumers.tools.eventlog.html import render_html
from consumers.tools.eventlog.model import build_timeline
from consumers.tools.eventlog.reader import parse_bound
from consumers.tools.eventlog.source import log_records
from consumers.tools.simulate.engine import simulate
from consumers.tools.simulate.history import read_history
from consumers.tools.simulate.metrics import compare
from consumers.tools.simulate.ordering import ordering_hook
from schemas.enums import Ordering
from schemas.errors import PolicyError
from schemas.policy import Policy, load_policy


@click.command("simulate")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The policy to try (TOML), e.g. the one the owner ran under, or a candidate.",
)
@click.option("--from", "from_", help="First stream offset or ISO time (default: the first).")
@click.option("--to", help="Last stream offset or ISO time (default: the last one now).")
@click.option(
    "--tick-s",
    type=float,
    help="The owner's loop turn (default: owner.tick_s): arrivals adjacent in the log and closer "
    "than this were one intake batch, decided on once.",
)
@click.option(
    "--html",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the simulated history as an HTML timeline.",
)
@click.option(
    "--ordering",
    "orderings",
    multiple=True,
    metavar="[CLASS=]fifo|fair-share",
    help="Order every class (or CLASS) this way instead of as POLICY says; repeatable. "
    "Compares FIFO with fair share on the same recorded history.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object: recorded and simulated.")
@click.pass_context
def simulate_command(
    ctx: click.Context,
    policy_path: Path,
    from_: str | None,
    to: str | None,
    tick_s: float | None,
    html: Path | None,
    orderings: tuple[str, ...],
    as_json: bool,
) -> None:
    """Re-run the recorded arrivals, commands and QPU events through the owner's `step` under
    POLICY, on a QPU whose run times are the recorded ones, and print recorded vs simulated:
    waits (p50/p95) per class and account, utilisation, preemptions, missed deadlines and
    allocations, calibrations, and whether the start order is the same. An ordering plugin that
    POLICY names (``[plugins] ordering``) must be installed here; it is asked again for every
    arrival, under the policy's time limit, as the owner asks it."""
    settings = settings_of(ctx)
    try:
        start, end = parse_bound(from_), parse_bound(to)
    except EventLogError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        raise click.BadParameter(str(exc), param_hint="--policy") from None
    try:
        policy = with_orderings(policy, orderings)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ordering") from None
    hook = ordering_hook(policy)  # a missing plugin fails before the log is read
    with log_records(settings, "qsched-simulate", None, end) as records:
        recorded = read_history(records, policy, start, tick_s or settings.owner.tick_s)
    simulated = simulate(policy, recorded, hook)
    report = {
        "policy": str(policy_path),
        "ordering": {name: c.ordering.value for name, c in policy.classes.items()},
    } | compare(recorded.events, simulated)
    if hook is not None:
        report["ordering_plugin"] = {"name": hook.name, "failures": hook.failures}
    if html is not None:
        html.write_text(render_html(build_timeline(simulated, budget_marks=True)), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo("\n".join(render(report)))


def with_orderings(policy: Policy, orderings: tuple[str, ...]) -> Policy:
    """`policy` with the classes' ordering replaced as ``--ordering`` says (``fifo``: every
    class; ``development=fifo``: one class).

    Raises:
        ValueError: an unknown ordering or class, named.
    """
    classes = dict(policy.classes)
    for given in orderings:
        name, _, value = given.rpartition("=")
        try:
            ordering = Ordering(value.strip())
        except ValueError:
            choices = ", ".join(o.value for o in Ordering)
            raise ValueError(f"{given!r}: the ordering is one of {choices}") from None
        if name and name not in classes:
            raise ValueError(f"{given!r}: no class {name!r} in the policy")
        for class_name in [name] if name else list(classes):
            classes[class_name] = classes[class_name].model_copy(update={"ordering": ordering})
    return policy.model_copy(update={"classes": classes})


def render(report: dict[str, Any]) -> Iterator[str]:
    """Recorded and simulated figures side by side, one row per figure."""
    rec, sim = report["recorded"], report["simulated"]
    span = report.get("span", {})
    yield f"simulated under {report['policy']}; {span.get('from', '-')} .. {span.get('to', '-')}"
    orderings = report.get("ordering", {})
    if orderings:
        yield "ordering: " + ", ".join(f"{name} {value}" for name, value in orderings.items())
    yield f"{'':<34}{'recorded':>12}{'simulated':>12}"

    def row(label: str, a: object, b: object) -> str:
        return f"{label:<34}{a!s:>12}{b!s:>12}"

    yield row("jobs accepted", rec["jobs"]["accepted"], sim["jobs"]["accepted"])
    yield row("jobs started", rec["jobs"]["started"], sim["jobs"]["started"])
    for state in sorted(set(rec["jobs"]["ended"]) | set(sim["jobs"]["ended"])):
        yield row(
            f"  ended {state}",
            rec["jobs"]["ended"].get(state, 0),
            sim["jobs"]["ended"].get(state, 0),
        )
    yield row("  not ended", rec["jobs"]["unfinished"], sim["jobs"]["unfinished"])
    for scope in ("all", "by_class", "by_account"):
        groups = (
            {"all jobs": (rec["wait_s"]["all"], sim["wait_s"]["all"])}
            if scope == "all"
            else {
                k: (rec["wait_s"][scope].get(k, {}), sim["wait_s"][scope].get(k, {}))
                for k in sorted(set(rec["wait_s"][scope]) | set(sim["wait_s"][scope]))
            }
        )
        for name, (a, b) in groups.items():
            label = name if scope == "all" else f"{scope[3:]} {name}"
            yield row(f"wait p50 s, {label}", a.get("p50", "-"), b.get("p50", "-"))
            yield row(f"wait p95 s, {label}", a.get("p95", "-"), b.get("p95", "-"))
    yield row("QPU utilisation", f"{rec['utilisation']:.1%}", f"{sim['utilisation']:.1%}")
    rec_usage, sim_usage = rec.get("qpu_s_by_account", {}), sim.get("qpu_s_by_account", {})
    for account in sorted(set(rec_usage) | set(sim_usage)):
        yield row(f"QPU s, account {account}", rec_usage.get(account, 0), sim_usage.get(account, 0))
    for key, label in (
        ("preemptions", "preemptions"),
        ("missed_deadline", "missed deadline / queue age"),
        ("missed_allocation", "missed allocation"),
        ("over_runtime", "over max runtime"),
        ("calibrations", "calibrations"),
        ("calibrations_due", "calibration due"),
    ):
        yield row(label, rec[key], sim[key])
    order = report["start_order"]
    verdict = "the same" if order["same"] else f"differs from position {order['first_difference']}"
    yield f"start order: {verdict}"
    plugin = report.get("ordering_plugin")
    if plugin is not None:
        yield (
            f"ordering plugin {plugin['name']}: {plugin['failures']} failed call(s) "
            "(those jobs are ordered without a site term, as in the owner)"
        )
