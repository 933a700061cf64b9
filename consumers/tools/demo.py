"""`qsched demo`: a broker, an owner on the emulator, a workload from MPI ranks, a timeline.

Runs in a fresh namespace so the timeline shows only this run; the namespace's queues are deleted
at the end unless ``--keep``. It ends by writing the log as an HTML timeline and a Perfetto trace
and printing their paths.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import click

from brokers.bootstrap import ensure_broker
from brokers.cli import settings_of
from brokers.connection import channel, connect, redact
from brokers.stream import read_stream
from brokers.topology import build_topology, declare, delete
from consumers.tools.eventlog.export import write_export
from consumers.tools.eventlog.reader import LogRecord, read_log
from consumers.tools.timeline import build_timeline, render_text
from schemas.envelope import Event
from schemas.policy import load_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mpi_sweep.py"


def _records(url: str, stream: str) -> list[LogRecord]:
    conn = connect(url, name="qsched-demo")
    try:
        return list(read_log(conn, stream))
    finally:
        conn.close()


def _write_exports(records: list[LogRecord], out_dir: Path, namespace: str) -> list[Path]:
    """The log as an HTML timeline and a Perfetto trace in `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt, suffix in (("html", "timeline.html"), ("perfetto", "perfetto.json")):
        path = out_dir / f"qsched-{namespace}-{suffix}"
        with open(path, "w", encoding="utf-8") as out:
            write_export(records, fmt, out)
        written.append(path)
    return written


def _wait_active(url: str, stream: str, timeout_s: float) -> None:
    with channel(url, name="qsched-demo-wait") as ch:
        for record in read_stream(
            ch,
            stream,
            "first",
            stop=lambda r: r.properties.type == Event.type_name() and b"owner.activated" in r.body,
            max_wait_s=timeout_s,
        ):
            del record
            return
    raise click.ClickException(f"no owner became active within {timeout_s} s")


@click.command("demo")
@click.option("--ranks", default=4, show_default=True, help="MPI ranks submitting jobs.")
@click.option("--jobs-per-rank", default=3, show_default=True)
@click.option("--shots", default=200, show_default=True)
@click.option("--shot-rate", default=1000.0, show_default=True, help="Emulator pacing, shots/s.")
@click.option("--keep", is_flag=True, help="Keep the demo namespace's queues and history.")
@click.option(
    "--out-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=lambda: os.environ.get("TMPDIR", "/tmp"),
    help="Where the HTML timeline and the Perfetto trace go (default: $TMPDIR or /tmp).",
)
@click.pass_context
def demo(
    ctx: click.Context,
    ranks: int,
    jobs_per_rank: int,
    shots: int,
    shot_rate: float,
    keep: bool,
    out_dir: Path,
) -> None:
    """Run the whole product once: broker, owner on the emulator, MPI workload, results, timeline."""
    base = settings_of(ctx)
    broker = ensure_broker(base)
    namespace = f"demo{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(update={"amqp_url": broker.url, "namespace": namespace})
    topology = build_topology(settings, load_policy(settings.policy_file))
    click.echo(f"broker ({broker.kind}): {redact(broker.url)}  namespace: {namespace}")
    with channel(broker.url) as ch:
        declare(ch, topology)
    env = dict(os.environ) | {"QSCHED_AMQP_URL": broker.url, "QSCHED_NAMESPACE": namespace}
    qsched = shutil.which("qsched") or str(Path(sys.executable).with_name("qsched"))
    owner_log = Path(os.environ.get("TMPDIR", "/tmp")) / f"qsched-{namespace}-owner.log"
    with open(owner_log, "wb") as log:
        owner = subprocess.Popen(
            [qsched, "owner", "--backend", "emulator", "--shot-rate", str(shot_rate)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_active(broker.url, topology.events_stream, 60)
        click.echo(
            f"owner active (log: {owner_log}); {ranks} MPI ranks submit {jobs_per_rank} jobs each"
        )
        mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
        started = time.monotonic()
        subprocess.run(
            [
                mpiexec,
                "-n",
                str(ranks),
                sys.executable,
                str(EXAMPLE),
                "--shots",
                str(shots),
                "--jobs-per-rank",
                str(jobs_per_rank),
            ],
            env=env,
            check=True,
        )
        wall_s = time.monotonic() - started
        records = _records(broker.url, topology.events_stream)
        events = [r.event for r in records]
        bars = build_timeline(events)
        click.echo("\nQPU timeline (█ done, ✗ error, ░ canceled, ↯ interrupted)")
        click.echo(render_text(bars))
        states = Counter(b.state for b in bars)
        busy_s = sum(((b.ended_at - b.started_at).total_seconds() for b in bars if b.ended_at), 0.0)
        click.echo(
            f"\n{len(bars)} runs: {dict(states)}; QPU busy {busy_s:.1f} s of {wall_s:.1f} s wall-clock; {len(events)} events in {topology.events_stream}"
        )
        html, perfetto = _write_exports(records, Path(out_dir), namespace)
        click.echo(f"HTML timeline: {html}\nPerfetto trace: {perfetto} (open in ui.perfetto.dev)")
    finally:
        owner.terminate()
        try:
            owner.wait(timeout=15)
        except subprocess.TimeoutExpired:
            owner.kill()
        if not keep:
            with channel(broker.url) as ch:
                delete(ch, topology)
        broker.close()
