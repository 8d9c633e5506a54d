"""Who may connect and what they may see. Pure.

Every hello goes through :func:`check_token` and every delivery/request through
:meth:`Principal.may_see`/:meth:`Principal.may_request`, so tenants and per-token rules can be
added here later without touching the server. Today: when the configuration lists tokens the
hello token must be one of them; otherwise any token is accepted, and everyone sees everything.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["Principal", "check_token"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated client. ``name`` is for logs: never the token itself."""

    name: str

    def may_see(self, bus: str, addr: int | None) -> bool:
        return True

    def may_request(self, bus: str, addr: int) -> bool:
        return True


def check_token(token: str, allowed: Collection[str]) -> Principal | None:
    """The principal for ``token``, or None when the bridge must refuse it (close 4003)."""
    if not allowed:
        return Principal("anonymous")
    for index, candidate in enumerate(allowed):
        # constant-time compare: the token is a secret and timing would leak its prefix
        if hmac.compare_digest(
            candidate.encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass")
        ):
            return Principal(f"token#{index}")
    return None
