"""Who may connect and what they may see and do. Pure.

Every hello goes through :func:`check_token`, every subscription and ``state`` answer through
:meth:`Principal.may_see` and every request through :meth:`Principal.may_request`, so tenants
and quotas can be added here later without touching the server.

When the configuration lists no tokens, any hello token is accepted and everyone sees and does
everything (a bench or a demo). Otherwise the hello token must be one of them; a token given as
a plain string may do everything, one given as a :class:`TokenRule` may be limited to some
buses and/or to reading (``read_only``: no ``request``, which is what a wall-screen dashboard
should get).
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Iterable
from dataclasses import dataclass

__all__ = ["Principal", "TokenRule", "check_token"]


@dataclass(frozen=True, slots=True)
class TokenRule:
    """One accepted token and what it allows. ``buses`` None: every bus."""

    token: str
    name: str = ""
    buses: frozenset[str] | None = None
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated client. ``name`` is for logs: never the token itself."""

    name: str
    buses: frozenset[str] | None = None  # None: every bus
    read_only: bool = False

    @property
    def restricted(self) -> bool:
        """True when some bus is out of sight (``*`` must then be narrowed to the visible ones)."""
        return self.buses is not None

    def may_see(self, bus: str, addr: int | None) -> bool:
        return self.buses is None or bus in self.buses

    def may_request(self, bus: str, addr: int) -> bool:
        return not self.read_only and self.may_see(bus, addr)

    def visible(self, buses: Iterable[str]) -> list[str]:
        return [b for b in buses if self.may_see(b, None)]

    def access(self, buses: Iterable[str]) -> dict[str, list[str]]:
        """What ``welcome`` tells the client it may read and request, as topic patterns
        (``*``, ``bus0/*``, ``bus0/3``): a page shows write controls only where ``write`` allows.
        """
        read = ["*"] if self.buses is None else [f"{b}/*" for b in self.visible(buses)]
        return {"read": read, "write": [] if self.read_only else list(read)}


ANONYMOUS = Principal("anonymous")


def check_token(token: str, allowed: Collection[str | TokenRule]) -> Principal | None:
    """The principal for ``token``, or None when the bridge must refuse it (close 4003)."""
    if not allowed:
        return ANONYMOUS
    given = token.encode("utf-8", "surrogatepass")
    found: Principal | None = None
    for index, entry in enumerate(allowed):
        rule = entry if isinstance(entry, TokenRule) else TokenRule(entry)
        # constant-time compare, and no early exit: timing must not leak which token matched
        # or how much of one did
        same = hmac.compare_digest(rule.token.encode("utf-8", "surrogatepass"), given)
        if same and found is None:
            found = Principal(rule.name or f"token#{index}", rule.buses, rule.read_only)
    return found
