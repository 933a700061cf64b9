"""`qsched owner ...` under cProfile (the loop's thread); the stats go to the file named first.

Used by `bench profile`: ``python -m bench.profile_owner OUT.prof --backend synthetic``.
"""

from __future__ import annotations

import cProfile
import sys

from brokers.cli import main as qsched


def main() -> None:
    """Run the owner with the remaining arguments; dump the profile when it stops."""
    out, args = sys.argv[1], sys.argv[2:]
    profile = cProfile.Profile()
    profile.enable()
    try:
        qsched(["owner", *args])
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
