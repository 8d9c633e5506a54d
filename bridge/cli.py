"""The ``framebridge`` command. Each package adds its own subcommands.

A subcommand module exposes ``add_parsers(subparsers)``; each parser sets ``func`` to a callable
taking the parsed namespace and returning an exit code. Modules are imported lazily per run so
``framebridge encode`` does not pay for websockets or redis.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

# Modules that contribute subcommands, in help order.
SUBCOMMAND_MODULES = (
    "frames.cli",
    "frames.io.cli",
    "frames.io.capture_cli",
    "frames.codegen_cli",
    "firmware_sim.cli",
    "bridge.cli_bridge",
    "bridge.cli_tenants",
    "bridge.cli_ops",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framebridge",
        description="Talk to serial microcontrollers, simulate them, bridge them to the web.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one JSON object per line (ts, level, logger, message, event fields)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    for subparser in sub.choices.values():
        if "-v" in subparser._option_string_actions:  # a subcommand with its own -v keeps it
            continue
        # -v after the subcommand too (``framebridge request … -v``). A separate dest that is
        # absent unless given: a subparser's default would overwrite the count made before it.
        subparser.add_argument(
            "-v",
            "--verbose",
            dest="verbose_after",
            action="count",
            default=argparse.SUPPRESS,
            help="more logging (-vv: debug)",
        )
    return parser


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's ``version``), one source of truth."""
    try:
        return version("framebridge")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def log_level(args: argparse.Namespace) -> int:
    """The subcommand's base level (WARNING for tools; INFO for the long-running services,
    whose link changes an operator must see), one step down per -v (before or after the
    subcommand), never below DEBUG."""
    verbose: int = args.verbose + getattr(args, "verbose_after", 0)
    base: int = getattr(args, "log_base", logging.WARNING)
    return max(logging.DEBUG, base - 10 * verbose)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = log_level(args)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_format == "json":  # for log shippers (bridge/jsonlog.py)
        from bridge.jsonlog import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    # websockets logs every connection at INFO; the bridge logs its own events (and websockets'
    # only with -vv, for debugging a handshake)
    quiet = level if level <= logging.DEBUG else max(level, logging.WARNING)
    logging.getLogger("websockets").setLevel(quiet)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # ``framebridge decode … | head``: the reader left, not an error
        # stdout is gone: point it at devnull so the interpreter's final flush stays quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
