"""``nurture-lake <job> [options]`` — one console script for every job."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from nurture_lake.jobs import JOBS


def main(argv: Sequence[str] | None = None) -> None:
    """Dispatch to ``nurture_lake.jobs.<job>.main``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print("usage: nurture-lake <job> [options]   (nurture-lake <job> --help for a job's options)\n")
        print("jobs:")
        for name, module in JOBS.items():
            doc = (importlib.import_module(module).__doc__ or "").strip().splitlines()
            print(f"  {name:<18} {doc[0] if doc else ''}")
        raise SystemExit(0 if args else 2)
    job = args[0]
    if job not in JOBS:
        print(f"nurture-lake: unknown job {job!r}; known: {', '.join(JOBS)}", file=sys.stderr)
        raise SystemExit(2)
    importlib.import_module(JOBS[job]).main(args[1:])


if __name__ == "__main__":
    main()
