"""``framebridge check-config FILE``: validate a bridge configuration before deploying it.

Exit 0 and a one-line summary when the file is valid; exit 2 and one line per error (each
naming its key, e.g. ``limits.drain_window_s``) on stderr otherwise. Meant for CI and for
``ExecStartPre=`` in a systemd unit, so a bad file never replaces a running node's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .check_config import check_config


def cmd_check_config(args: argparse.Namespace) -> int:
    config, errors = check_config(args.file)
    if config is None:
        for err in errors:
            sys.stderr.write(f"error: {err}\n")
        sys.stderr.write(f"{args.file}: invalid ({len(errors)} error(s))\n")
        return 2
    mode = "cluster (redis)" if config.redis is not None else "single node"
    sys.stdout.write(
        f"{args.file}: valid: node {config.server.node!r}, {len(config.buses)} bus(es), {mode}\n"
    )
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "check-config", help="validate a bridge config file (exit 0: valid, 2: invalid)"
    )
    p.add_argument("file", help="TOML file (examples/bridge.toml)")
    p.set_defaults(func=cmd_check_config)
