"""The bridge's network edge, as decisions: which browser may talk to it, how many connections one
source may hold, and what to do as file descriptors run out. Pure: no sockets, no asyncio.

Each check takes what the adapter (:mod:`bridge.edge`) read off the wire — header values, a
peer address, a file-descriptor number, counts — and returns a verdict; the adapter does the I/O.

Browser safety (``Origin`` and ``Host``):

- A web page of another site can open a WebSocket to ``ws://127.0.0.1:8765`` (browsers do not
  apply the same-origin policy to WebSockets); its handshake carries that site's ``Origin``.
  Allowed: no ``Origin`` at all (not a browser: scripts, the CLI, the Python client), the
  bridge's own origin — a page whose ``Origin`` names the host the request was sent to (the
  ``Host`` header, which :meth:`BrowserGuard.host_ok` has checked first), with ``http`` or
  ``https`` (a TLS proxy in front) — and whatever ``allowed_origins`` lists.
- DNS rebinding points a name the attacker owns at the bridge's address, so the page is
  same-origin with it and sends ``Host: evil.example``. ``Host`` must therefore name the bridge:
  the listen address, or any IP address when it listens on all of them (an IP literal cannot be
  rebound), ``localhost`` and the loopback addresses when it listens on one of those, or an
  entry of ``allowed_hosts`` (``name`` for any port, ``name:port`` for one). A request with no
  ``Host`` (HTTP/1.0; no browser sends that) passes. ``"*"`` in either list turns that check
  off.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit

__all__ = [
    "BrowserGuard",
    "FdZone",
    "SourceLimiter",
    "SourceVerdict",
    "fd_zone",
    "normalize_origin",
    "source_key",
    "split_host",
]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_WILDCARDS = {"", "0.0.0.0", "::"}


def split_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` header value → (lower-case host without brackets, port or None); None when it
    is not a host[:port] at all."""
    value = value.strip().lower()
    if not value or any(ch in value for ch in "/@ \t?#\\"):
        return None
    if value.startswith("["):  # [v6]:port
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    elif value.count(":") > 1:  # a bare IPv6 address (not valid in Host, but unambiguous)
        host, port_text = value, None
    else:
        host, _, port_text = value.partition(":")
        port_text = port_text if ":" in value else None
    if port_text is not None and not (port_text.isdigit() and int(port_text) <= 65535):
        return None
    return host.rstrip("."), None if port_text is None else int(port_text)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_origin(origin: str) -> str | None:
    """``Origin`` (or a configured origin) → ``scheme://host[:port]``, lower-case, default port
    dropped; ``"null"`` stays ``"null"``; None when it is not an origin."""
    origin = origin.strip()
    if origin.lower() == "null":
        return "null"
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if not scheme or not host or parts.path not in ("", "/") or parts.query or parts.username:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


@dataclass(frozen=True)
class BrowserGuard:
    """``Host`` and ``Origin`` checks for one listen address and the configured lists."""

    listen_host: str
    allowed_origins: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] = frozenset()
    any_origin: bool = False
    any_host: bool = False

    @classmethod
    def build(
        cls, listen_host: str, allowed_origins: Iterable[str], allowed_hosts: Iterable[str]
    ) -> BrowserGuard:
        """Normalise the lists once (the config has already refused malformed entries)."""
        origins = [o.strip() for o in allowed_origins]
        hosts = [h.strip().lower().rstrip(".") for h in allowed_hosts]
        return cls(
            listen_host=listen_host.strip("[]").lower(),
            allowed_origins=frozenset(filter(None, (normalize_origin(o) for o in origins))),
            allowed_hosts=frozenset(h for h in hosts if h != "*"),
            any_origin="*" in origins,
            any_host="*" in hosts,
        )

    def host_ok(self, host_header: str | None) -> bool:
        """Does ``Host`` name this bridge (see the module docstring)?"""
        if host_header is None or self.any_host:
            return True
        parsed = split_host(host_header)
        if parsed is None:
            return False
        host, port = parsed
        if host in self.allowed_hosts or (
            port is not None and f"{_bracket(host)}:{port}" in self.allowed_hosts
        ):
            return True
        listen = self.listen_host
        if listen in _WILDCARDS:  # every local address: any IP literal, or localhost
            return _is_ip(host) or host == "localhost"
        if _is_loopback(listen) and _is_loopback(host):
            # localhost resolves to 127.0.0.1 or ::1; a browser sends whichever name was typed
            return True
        return host == listen

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        """May a page of ``origin`` use this bridge (``host_header``: the request's ``Host``,
        already accepted by :meth:`host_ok`)?"""
        if origin is None or self.any_origin:
            return True
        norm = normalize_origin(origin)
        if norm is None:
            return False
        if norm in self.allowed_origins:
            return True
        if norm == "null" or host_header is None:
            return False
        own = split_host(host_header)
        if own is None:
            return False
        _scheme, _, authority = norm.partition("://")
        theirs = split_host(authority)
        if theirs is None:
            return False
        # same host; the port must match too, except that a default port may be implied on
        # either side (Origin drops :80/:443; a TLS proxy's Host may keep or drop it)
        return theirs[0] == own[0] and (theirs[1] == own[1] or theirs[1] is None or own[1] is None)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# -- per-source limits ----------------------------------------------------------------------------


def source_key(address: str) -> str:
    """The unit the per-source limits count: the IPv4 address, or the IPv6 /64 (one host gets a
    whole /64, so counting single v6 addresses would limit nothing). IPv4-mapped v6 is v4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


class SourceVerdict(Enum):
    ADMIT = "admit"
    TOO_MANY = "too_many"  # answer 429 to its request, then close
    DROP = "drop"  # close at once: too many handshakes in progress from there


@dataclass
class _Counts:
    open: int = 0
    handshaking: int = 0


@dataclass
class SourceLimiter:
    """Connections and handshakes in progress per source (:func:`source_key`).

    :meth:`opened` on accept, :meth:`handshake_done` when the HTTP/WebSocket handshake has been
    answered, :meth:`closed` when the connection is gone. Refused connections are counted too,
    until they close: a flood from one source is bounded by what it holds, not by what it
    tries. Loopback sources are not limited unless ``limit_loopback`` (a reverse proxy on the
    same host makes every client loopback, and local benchmarks open thousands).
    """

    max_connections: int
    max_handshakes: int
    limit_loopback: bool = False
    _counts: dict[str, _Counts] = field(default_factory=dict)

    def exempt(self, address: str) -> bool:
        return not self.limit_loopback and _is_loopback(address.split("%", 1)[0])

    def opened(self, address: str) -> SourceVerdict:
        if self.exempt(address):
            return SourceVerdict.ADMIT
        counts = self._counts.setdefault(source_key(address), _Counts())
        counts.open += 1
        counts.handshaking += 1
        if counts.handshaking > self.max_handshakes:
            return SourceVerdict.DROP
        if counts.open > self.max_connections:
            return SourceVerdict.TOO_MANY
        return SourceVerdict.ADMIT

    def handshake_done(self, address: str) -> None:
        counts = self._counts.get(source_key(address))
        if counts is not None and counts.handshaking > 0 and not self.exempt(address):
            counts.handshaking -= 1

    def closed(self, address: str, *, handshaking: bool) -> None:
        if self.exempt(address):
            return
        key = source_key(address)
        counts = self._counts.get(key)
        if counts is None:
            return
        counts.open -= 1
        if handshaking and counts.handshaking > 0:
            counts.handshaking -= 1
        if counts.open <= 0:
            del self._counts[key]

    def count(self, address: str) -> tuple[int, int]:
        """(connections, handshakes in progress) of ``address``'s source."""
        counts = self._counts.get(source_key(address), _Counts())
        return counts.open, counts.handshaking


# -- file descriptors -----------------------------------------------------------------------------


class FdZone(Enum):
    OK = "ok"
    TIGHT = "tight"  # refuse new WebSocket clients (503); plain HTTP (/healthz) still answered
    EXHAUSTED = "exhausted"  # close at once: the last descriptors are for buses, logs, /healthz


def fd_zone(fd: int, soft_limit: int, reserve: int) -> FdZone:
    """Where a newly accepted socket's descriptor number falls.

    Linux hands out the lowest free number, so a socket numbered ``fd`` means at least ``fd + 1``
    descriptors are open: an O(1) reading of the pressure, no ``/proc`` walk per accept. The top
    ``reserve`` descriptors below the soft limit are kept back: the lower three quarters of them
    still serve plain HTTP, the last quarter nothing.
    """
    if soft_limit <= 0:
        return FdZone.OK
    if fd >= soft_limit - max(reserve // 4, 1):
        return FdZone.EXHAUSTED
    if fd >= soft_limit - reserve:
        return FdZone.TIGHT
    return FdZone.OK
