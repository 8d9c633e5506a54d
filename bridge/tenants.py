"""Tenants: who they are, how they prove it, and the principal each credential gives. Pure.

A tenant (``[[tenant]]``) has a name, a :class:`~bridge.acl.Tier` of quotas, read and write
:class:`~bridge.acl.Pattern` s, optionally its own browser ``allowed_origins``, and credentials:

- static tokens, stored only as their sha-256 (``token_sha256``; ``framebridge hash-token``
  prints it). A hello token is hashed once and compared with every stored hash in constant time
  (:func:`hmac.compare_digest`, no early exit), so neither the config nor the timing gives a
  token away;
- JWTs (``[jwt]``, :mod:`bridge.jwtauth`): the tenant is the token's ``tenant`` claim (a
  configured tenant), the scopes may narrow its patterns;
- client certificates (TLS), by the certificate subject's common name (``client_cert_cn``).

``server.tokens`` keep working: each is a tenant of its own, without quotas.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .acl import ANONYMOUS, UNLIMITED, Pattern, Principal, Tier, TokenRule, check_token
from .errors import ConfigError

__all__ = [
    "DEFAULT_TIERS",
    "Authenticator",
    "JwtConfig",
    "Tenancy",
    "Tenant",
    "TlsConfig",
    "hash_token",
]


def hash_token(token: str) -> str:
    """What ``token_sha256`` lists: the hex sha-256 of the token's UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


DEFAULT_TIERS: Mapping[str, Tier] = {
    "free": Tier("free", 5, 2, 30.0, 5.0, None, 64, 50.0, 64 * 1024.0, 20),
    "pro": Tier("pro", 15, 5, 60.0, 20.0, None, 256, 200.0, 256 * 1024.0, 60),
    "enterprise": Tier("enterprise", 50, 10, 120.0, 100.0, None, 1024, 500.0, 1024 * 1024.0, 120),
}


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    tier: Tier = UNLIMITED
    token_sha256: tuple[bytes, ...] = ()  # raw 32-byte digests
    read: tuple[Pattern, ...] = ()
    write: tuple[Pattern, ...] = ()
    allowed_origins: tuple[str, ...] = ()  # normalized origins; empty: the server's rule only
    client_cert_cn: tuple[str, ...] = ()

    def principal(self, name: str = "", expires: float | None = None) -> Principal:
        return Principal(
            name or self.name,
            tenant=self.name,
            read=self.read,
            write=self.write,
            tier=self.tier,
            origins=self.allowed_origins,
            expires=expires,
        )


_ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512")


@dataclass(frozen=True)
class JwtConfig:
    """``[jwt]`` (checked by :mod:`bridge.jwtauth`, which needs PyJWT only when configured)."""

    algorithms: tuple[str, ...] = ("HS256",)
    secret: str | None = None  # HS*: the shared secret
    public_key: str | None = None  # RS*/ES*: a PEM file
    jwks: str | None = None  # RS*/ES*: a JWKS (JSON) file
    audience: str | None = None  # required ``aud`` when set
    issuer: str | None = None  # required ``iss`` when set
    leeway_s: float = 30.0  # clock skew allowed on exp/nbf
    tenant_claim: str = "tenant"

    def check(self, where: str) -> None:
        bad = [a for a in self.algorithms if a not in _ALGORITHMS]
        if bad or not self.algorithms:
            raise ConfigError(f"{where}.algorithms", f"must be some of {', '.join(_ALGORITHMS)}")
        sources = [s for s in (self.secret, self.public_key, self.jwks) if s]
        if len(sources) != 1:
            raise ConfigError(where, "give exactly one of secret, public_key, jwks")
        hmac_algs = all(a.startswith("HS") for a in self.algorithms)
        if bool(self.secret) != hmac_algs:
            raise ConfigError(where, "secret goes with HS* algorithms, keys with RS*/ES*")


@dataclass(frozen=True)
class TlsConfig:
    """``[server] tls = {cert, key, client_ca, client_cert_required}``."""

    cert: str
    key: str
    client_ca: str | None = None  # ask for client certificates signed by this CA
    client_cert_required: bool = False  # without one the handshake fails


@dataclass(frozen=True)
class Tenancy:
    """``[tiers.*]``, ``[[tenant]]`` and ``[jwt]`` of one config (empty: no tenants)."""

    tiers: Mapping[str, Tier] = field(default_factory=dict)
    tenants: tuple[Tenant, ...] = ()
    jwt: Any = None  # bridge.jwtauth.JwtConfig | None

    @property
    def enabled(self) -> bool:
        return bool(self.tenants)

    def tenant(self, name: str) -> Tenant | None:
        for t in self.tenants:
            if t.name == name:
                return t
        return None

    def origins(self) -> tuple[str, ...]:
        """Every tenant's own origins (the handshake lets them through; hello decides)."""
        out: dict[str, None] = {}
        for t in self.tenants:
            out.update(dict.fromkeys(t.allowed_origins))
        return tuple(out)


class Authenticator:
    """A hello or refresh token → a :class:`Principal` (see the module docstring).

    Secrets are never logged and never kept in the clear: a static token is hashed at once.
    """

    def __init__(
        self,
        tenancy: Tenancy,
        tokens: Collection[str | TokenRule] = (),
        verifier: Any = None,  # bridge.jwtauth.JwtVerifier
    ) -> None:
        self.tenancy = tenancy
        self.tokens = tokens
        self.verifier = verifier
        self._hashes: list[tuple[bytes, Tenant]] = [
            (digest, t) for t in tenancy.tenants for digest in t.token_sha256
        ]
        self._by_cn: dict[str, Tenant] = {cn: t for t in tenancy.tenants for cn in t.client_cert_cn}

    @property
    def required(self) -> bool:
        return bool(self.tokens) or self.tenancy.enabled or self.verifier is not None

    def authenticate(self, token: str, now: float) -> Principal | None:
        if not self.required:
            return ANONYMOUS
        if token.count(".") == 2 and self.verifier is not None:
            principal = self._jwt(token, now)
            if principal is not None:
                return principal  # else: maybe a static token with two dots
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found: Tenant | None = None
        for stored, tenant in self._hashes:  # no early exit: timing says nothing
            if hmac.compare_digest(stored, digest) and found is None:
                found = tenant
        if found is not None:
            return found.principal()
        if self.tokens:
            return check_token(token, self.tokens)
        return None

    def for_certificate(self, common_name: str | None) -> Principal | None:
        """The tenant a verified client certificate names (by its subject CN)."""
        tenant = None if common_name is None else self._by_cn.get(common_name)
        return None if tenant is None else tenant.principal(f"{tenant.name}/cert")

    def _jwt(self, token: str, now: float) -> Principal | None:
        claims = self.verifier.verify(token, now)
        if claims is None:
            return None
        tenant = self.tenancy.tenant(claims.tenant)
        if tenant is None:
            return None
        principal = tenant.principal(f"{tenant.name}/{claims.subject}", claims.expires)
        if claims.read is not None:  # scopes narrow the tenant's patterns, never widen them
            principal = replace(principal, read=_narrow(tenant.read, claims.read))
        if claims.write is not None:
            principal = replace(principal, write=_narrow(tenant.write, claims.write))
        return principal


def _narrow(allowed: tuple[Pattern, ...], asked: tuple[Pattern, ...]) -> tuple[Pattern, ...]:
    """The asked patterns the tenant's own patterns cover (by bus and address)."""
    out = []
    for p in asked:
        for a in allowed:
            place = a.bus is None or (
                p.bus is not None and a.bus == p.bus and a.addr in (None, p.addr)
            )
            if place and a.cmd in (None, p.cmd):
                out.append(p)
                break
    return tuple(out)
