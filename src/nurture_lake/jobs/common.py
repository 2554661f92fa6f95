"""Arguments and start-up shared by every job."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime

from nurture_lake.config import ConfigError, NurtureConfig, load_config, parse_override


def job_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with the options every job takes: ``--env``, ``--set``, ``--master``."""
    parser = argparse.ArgumentParser(prog=f"nurture-lake {prog}", description=description)
    parser.add_argument(
        "--env", default="local",
        help="environment name (conf/<env>.yaml) or a path to a YAML file (default: local)",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one configuration value, e.g. --set storage.lake_root=/tmp/lake (repeatable)",
    )
    parser.add_argument("--master", default=None, help="Spark master URL (default: from config, or the active session)")
    return parser


def add_stream_args(parser: argparse.ArgumentParser, *, verb: str) -> None:
    """``--region`` (repeatable) and the trigger options every streaming job takes."""
    parser.add_argument("--region", action="append", default=None,
                        help=f"region to {verb} (repeatable; default: every configured region)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", dest="once", action="store_true", default=True,
                      help=f"{verb} everything new, then stop (availableNow; the default)")
    mode.add_argument("--continuous", dest="once", action="store_false",
                      help="keep running with a processingTime trigger (ingest.processing_time)")
    parser.add_argument("--timeout-seconds", type=float, default=None,
                        help="with --continuous: stop after this many seconds (default: run until killed)")


def add_decision_window_args(parser: argparse.ArgumentParser, *, verb: str) -> None:
    """``--region`` (repeatable) and ``--as-of``: which logged decisions a learning job reads."""
    parser.add_argument("--region", action="append", default=None,
                        help=f"region whose decisions to {verb} (repeatable; default: every region)")
    parser.add_argument("--as-of", default=None, type=datetime.fromisoformat,
                        help="use only reward windows closed by this instant (default: all closed windows)")


def load_job_config(args: argparse.Namespace) -> NurtureConfig:
    """Load the configuration named by ``--env`` with ``--set`` overrides; exit 2 with the message if invalid."""
    try:
        overrides = dict(parse_override(text) for text in args.overrides)
        return load_config(args.env, overrides=overrides)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` (``None`` → ``sys.argv[1:]``)."""
    return parser.parse_args(list(argv) if argv is not None else None)


def log(message: str) -> None:
    """Progress output for long jobs: a timestamped line on stderr, flushed at once."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
