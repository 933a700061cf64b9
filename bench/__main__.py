"""Run benchmarks: ``python -m bench [NAME...] [--jobs N] [--samples K]``."""

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
    results,
    submit,
)

BENCHMARKS = {
    "dispatch": dispatch.main,
    "submit": submit.main,
    "backlog": backlog.main_with_intake,
    "activation": activation.main,
    "export": export.main,
    "auth": auth.main,
    "metrics": metrics.main,
    "lanes": lanes.main,
    "results": results.main,
    "epilog": epilog.main,
}
# `auth` needs root and MUNGE (infra/slurm/deps.sh): run it by name, `python -m bench auth`.
DEFAULT = ("dispatch", "submit", "backlog", "activation", "export", "lanes", "results", "epilog")
SAMPLED = ("dispatch", "submit", "metrics")  # these take --samples


def main() -> None:
    """Run the named benchmarks (`DEFAULT` when none is named)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run: " + ", ".join(BENCHMARKS))
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--samples", type=int, default=3, help="measurements per figure")
    parser.add_argument("--json", action="store_true", help="export: the figures as a JSON line")
    args = parser.parse_args()
    for name in args.names or DEFAULT:
        if name == "export":
            export.main(args.jobs, as_json=args.json)
        elif name in SAMPLED:
            BENCHMARKS[name](args.jobs, args.samples)
        else:
            BENCHMARKS[name](args.jobs)


if __name__ == "__main__":
    main()
