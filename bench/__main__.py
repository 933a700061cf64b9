"""Run benchmarks: ``python -m bench [NAME...] [--jobs N] [--samples K] [--json]``."""

from __future__ import annotations

import argparse

from bench import (
    activation,
    auth,
    backlog,
    dispatch,
    epilog,
    export,
    lanes,
    metrics,
    preempt,
    profile,
    qrmi,
    queries,
    results,
    session,
    submit,
)

BENCHMARKS = {
    "dispatch": dispatch.main,
    "submit": submit.main,
    "preempt": preempt.main,
    "backlog": backlog.main_with_intake,
    "activation": activation.main,
    "export": export.main,
    "auth": auth.main,
    "metrics": metrics.main,
    "lanes": lanes.main,
    "results": results.main,
    "epilog": epilog.main,
    "profile": profile.main,
    "qrmi": qrmi.main,
    "session": session.main,
    "queries": queries.main,
}
# `auth` needs root and MUNGE (infra/slurm/deps.sh): run it by name, `python -m bench auth`.
# `qrmi` needs root and MUNGE too (the qrmi client's credentials): `python -m bench qrmi`.
# `profile` is a diagnosis, not a figure: run it by name, `python -m bench profile`.
DEFAULT = (
    "dispatch",
    "submit",
    "preempt",
    "backlog",
    "activation",
    "export",
    "lanes",
    "results",
    "epilog",
    "queries",
)
SAMPLED = ("dispatch", "submit", "preempt", "metrics")  # these take --samples
JSON = ("dispatch", "submit", "preempt", "profile", "export")  # these print a --json line


def main() -> None:
    """Run the named benchmarks (`DEFAULT` when none is named)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run: " + ", ".join(BENCHMARKS))
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--samples", type=int, default=3, help="measurements per figure")
    parser.add_argument(
        "--json",
        action="store_true",
        help="also print one JSON line of figures and ratios per benchmark (compare commits)",
    )
    args = parser.parse_args()
    for name in args.names or DEFAULT:
        kwargs: dict[str, object] = {}
        if name in SAMPLED:
            kwargs["samples"] = args.samples
        if name in JSON:
            kwargs["as_json"] = args.json
        BENCHMARKS[name](args.jobs, **kwargs)


if __name__ == "__main__":
    main()
