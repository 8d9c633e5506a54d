"""Who may connect and what they may see and do. Pure.

Every hello goes through a :class:`Credentials` (:func:`check_token` for plain
``server.tokens``, :class:`bridge.tenants.Authenticator` for tenants), every subscription and
``state`` answer through :meth:`Principal.may_see` and every request through
:meth:`Principal.may_request`, so the server never looks at a token itself.

When the configuration lists no tokens and no tenants, any hello token is accepted and everyone
sees and does everything (a bench or a demo). Otherwise the hello token must be one of them; a
token given as a plain string may do everything, one given as a :class:`TokenRule` may be
limited to some buses and/or to reading (``read_only``: no ``request``, which is what a
wall-screen dashboard should get).

Tenants (issue 12) say what they may read and write as :class:`Pattern` s: ``*``, ``bus0/*``,
``bus1/3`` and, for writes, optionally one command: ``bus0/1:write_reg``. Whether a device is
allowed is decided by the patterns alone, never by whether it exists, so an answer never tells a
tenant about a device it may not see.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from frames.commands import STANDARD

__all__ = [
    "ANONYMOUS",
    "UNLIMITED",
    "Credentials",
    "Pattern",
    "Principal",
    "StaticTokens",
    "Tier",
    "TokenRule",
    "check_token",
    "parse_pattern",
]


@dataclass(frozen=True, slots=True)
class TokenRule:
    """One accepted token and what it allows. ``buses`` None: every bus."""

    token: str
    name: str = ""
    buses: frozenset[str] | None = None
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class Tier:
    """What one tenant may use of the bridge (``[tiers.NAME]``); None: no limit.

    ``connections``, ``inflight`` and ``requests_per_s`` count per tenant (every connection of
    it, on every node with Redis); ``subscriptions``, ``messages_per_s``, ``bytes_per_s`` and
    ``bad_messages`` per connection.
    """

    name: str = "unlimited"
    connections: int | None = None  # connections per tenant; over: close 1013
    inflight: int | None = None  # requests queued or on the wire per tenant; over: quota
    max_timeout_s: float | None = None  # a request's timeout_s above it: bad_request
    requests_per_s: float | None = None  # token bucket per tenant; empty: quota
    requests_burst: float | None = None  # the bucket's size (default: max(1, requests_per_s))
    subscriptions: int | None = None  # topics held per connection; over: error quota
    messages_per_s: float | None = None  # inbound messages per connection (reading pauses)
    bytes_per_s: float | None = None  # inbound bytes per connection (reading pauses)
    bad_messages: int | None = None  # malformed messages per minute per connection; over: 1008


UNLIMITED = Tier()

_PATTERN = re.compile(r"^(?:\*|([A-Za-z0-9_.-]{1,64})/(\*|\d{1,3}))(?::([A-Za-z0-9_]{1,32}))?$")


@dataclass(frozen=True, slots=True)
class Pattern:
    """``*`` (bus None), ``bus/*`` (addr None), ``bus/addr``; ``cmd`` (a code) limits writes
    to one command."""

    bus: str | None
    addr: int | None = None
    cmd: int | None = None
    text: str = "*"

    def covers(self, bus: str, addr: int | None) -> bool:
        """``addr`` None: does the pattern allow anything on ``bus``?"""
        if self.bus is None:
            return True
        return self.bus == bus and (addr is None or self.addr is None or self.addr == addr)

    def topic(self) -> str:
        return self.text.partition(":")[0]


def parse_pattern(text: str) -> Pattern:
    """``*``, ``BUS/*``, ``BUS/ADDR``, each optionally ``:COMMAND`` (a name or a number)."""
    match = _PATTERN.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not '*', 'BUS/*' or 'BUS/ADDR' (optionally ':COMMAND')")
    bus, addr_text, cmd_text = match.groups()
    addr = None if addr_text in (None, "*") else int(addr_text)
    if addr is not None and not 0 <= addr <= 255:
        raise ValueError(f"{text!r}: address must be 0..255 or *")
    cmd = None
    if cmd_text is not None:
        found = STANDARD.find(int(cmd_text) if cmd_text.isdigit() else cmd_text)
        if found is None and not cmd_text.isdigit():
            raise ValueError(f"{text!r}: unknown command {cmd_text!r}")
        cmd = found.code if found is not None else int(cmd_text)
    return Pattern(bus, addr, cmd, text.strip())


def _command_code(cmd: int | str) -> int | None:
    if isinstance(cmd, int):
        return cmd
    found = STANDARD.find(cmd)
    return None if found is None else found.code


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated client. ``name`` is for logs: never the token itself.

    ``read``/``write`` None: the legacy rule (``buses`` and ``read_only``) decides. ``tenant``
    groups connections for quotas, metrics and bus fairness ("" for an open bridge: every
    connection on its own). ``expires`` (epoch seconds) ends the connection unless refreshed.
    """

    name: str
    buses: frozenset[str] | None = None  # None: every bus
    read_only: bool = False
    tenant: str = ""
    read: tuple[Pattern, ...] | None = None
    write: tuple[Pattern, ...] | None = None
    tier: Tier = UNLIMITED
    origins: tuple[str, ...] = ()  # browser origins this tenant's pages may use ("" : any)
    expires: float | None = None

    @property
    def restricted(self) -> bool:
        """True when something is out of sight (``*`` must then be narrowed)."""
        if self.read is None:
            return self.buses is not None
        return not any(p.bus is None for p in self.read)

    def may_see(self, bus: str, addr: int | None) -> bool:
        """``addr`` None: may it see anything of ``bus`` (the bus, its bus-level events)?"""
        if self.read is None:
            return self.buses is None or bus in self.buses
        return any(p.covers(bus, addr) for p in self.read)

    def may_request(self, bus: str, addr: int, cmd: int | str | None = None) -> bool:
        if self.write is None:
            return not self.read_only and self.may_see(bus, addr)
        code = None if cmd is None else _command_code(cmd)
        for p in self.write:
            if p.covers(bus, addr) and (p.cmd is None or (code is not None and p.cmd == code)):
                return True
        return False

    def visible(self, buses: Iterable[str]) -> list[str]:
        return [b for b in buses if self.may_see(b, None)]

    def topics(self, bus: str | None, buses: Iterable[str]) -> list[tuple[str, int | None]]:
        """A subscription to ``bus/*`` (``*``: bus None) narrowed to what may be seen, as
        (bus, addr) pairs (addr None: the whole bus)."""
        names = list(buses) if bus is None else [bus]
        out: list[tuple[str, int | None]] = []
        for name in names:
            if self.may_see(name, 0) and self._whole(name):
                out.append((name, None))
                continue
            for p in self.read or ():
                if p.bus == name and p.addr is not None and (name, p.addr) not in out:
                    out.append((name, p.addr))
        return out

    def _whole(self, bus: str) -> bool:
        if self.read is None:
            return self.may_see(bus, None)
        return any(p.bus in (None, bus) and p.addr is None for p in self.read)

    def access(self, buses: Iterable[str]) -> dict[str, list[str]]:
        """What ``welcome`` tells the client it may read and request, as topic patterns
        (``*``, ``bus0/*``, ``bus0/3``; a write pattern may end in ``:command``): a page shows
        write controls only where ``write`` allows.
        """
        names = list(buses)
        if self.read is None:
            read = ["*"] if self.buses is None else [f"{b}/*" for b in self.visible(names)]
            return {"read": read, "write": [] if self.read_only else list(read)}
        shown = {None, *names}
        return {
            "read": [p.text for p in self.read if p.bus in shown],
            "write": [p.text for p in self.write or () if p.bus in shown],
        }

    def client_id(self, session: str) -> str:
        """The bus owners' source name: ``tenant:NAME/SESSION`` groups a tenant's requests."""
        return f"tenant:{self.tenant}/{session}" if self.tenant else session


ANONYMOUS = Principal("anonymous")


@runtime_checkable
class Credentials(Protocol):
    """Turns a hello (or refresh) token into a principal."""

    @property
    def required(self) -> bool:
        """A hello must carry a token."""

    def authenticate(self, token: str, now: float) -> Principal | None:
        """The principal, or None: refuse (close 4003; a refresh gets an error)."""


class StaticTokens:
    """``server.tokens`` as :class:`Credentials` (each token its own tenant)."""

    def __init__(self, tokens: Collection[str | TokenRule]) -> None:
        self.tokens = tokens

    @property
    def required(self) -> bool:
        return bool(self.tokens)

    def authenticate(self, token: str, now: float) -> Principal | None:
        return check_token(token, self.tokens)


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
            name = rule.name or f"token#{index}"
            found = Principal(name, rule.buses, rule.read_only, tenant=name)
    return found
