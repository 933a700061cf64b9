"""Run benchmarks: ``python -m bench [dispatch|submit] [--jobs N] [--samples K]``."""

from __future__ import annotations

import argparse

from bench import activation, backlog, dispatch, export, submit

BENCHMARKS = {
    "dispatch": dispatch.main,
    "submit": submit.main,
    "backlog": backlog.main_with_intake,
    "activation": activation.main,
    "export": export.main,
}


def main() -> None:
    """Run the named benchmarks (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run: " + ", ".join(BENCHMARKS))
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--samples", type=int, default=3, help="measurements per figure")
    args = parser.parse_args()
    for name in args.names or list(BENCHMARKS):
        BENCHMARKS[name](args.jobs, args.samples)


if __name__ == "__main__":
    main()
