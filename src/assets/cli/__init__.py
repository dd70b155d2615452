"""The `assets` console script: parses options and calls one domain function per command.

Each command group lives in its own module exposing ``register(subparsers)``; handlers return an
exit code. Every `AssetsError` becomes a one-line ``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import NoReturn, Sequence

from pydantic import ValidationError

from assets.errors import AssetsError

# Command groups, each owning its own module (assets.cli.<name>).
_GROUPS = ("core", "credit", "crop", "fields", "sensors", "users", "tiles", "runs", "store", "alerts")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming the fix, like every other error."""

    def error(self, message: str) -> "NoReturn":
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


class _NoTracebackForBadInput(logging.Filter):
    """Prefect logs a flow or task failure with its traceback before the CLI prints the one-line
    error; for an `AssetsError` (bad input, a locked file...) keep Prefect's line, drop the
    traceback. Real bugs keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], AssetsError):
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_expected_failures() -> None:
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTracebackForBadInput) for f in logger.filters):
            logger.addFilter(_NoTracebackForBadInput())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="assets",
        description="Verify farmers' field claims against satellite imagery and sensors, "
        "value them and set credit limits.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for name in _GROUPS:
        module = importlib.import_module(f"assets.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("GDAL_CACHEMAX", "64")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # results, not task chatter; override to see it
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_expected_failures()
    try:
        import rasterio

        with rasterio.Env(GDAL_CACHEMAX=64):
            return int(args.handler(args) or 0)
    except AssetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a setting from the environment (ASSETS_*) or an option of the wrong kind
        from assets.config import describe_invalid

        print(f"error: {describe_invalid(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `assets query ... | head`: the reader has gone, which is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot raise again
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
