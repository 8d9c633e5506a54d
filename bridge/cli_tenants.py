"""``framebridge hash-token``: what a ``[[tenant]] token_sha256`` lists for a token.

The token is read from stdin (never from the command line, where ``ps`` and shell history would
keep it); one trailing newline is dropped, so ``echo "$TOKEN" | framebridge hash-token`` works.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .tenants import hash_token

__all__ = ["add_parsers", "cmd_hash_token"]


def cmd_hash_token(args: argparse.Namespace) -> int:
    text = sys.stdin.read()
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    if not text:
        sys.stderr.write("hash-token: no token on stdin\n")
        return 2
    sys.stdout.write(hash_token(text) + "\n")
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "hash-token", help="print the sha-256 (token_sha256) of a token read from stdin"
    )
    p.set_defaults(func=cmd_hash_token)
