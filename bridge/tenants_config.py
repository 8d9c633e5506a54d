"""``[tiers.NAME]``, ``[[tenant]]``, ``[jwt]`` and ``[server] tls`` → typed values. Pure.

Called by :func:`bridge.config.parse_config`; errors name the key, as everywhere in the config.
The names are a contract (outside tools write them): see ``docs/tenants.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from .acl import Pattern, Tier, parse_pattern
from .config_table import Table, require_positive, strings
from .errors import ConfigError
from .guard import normalize_origin
from .tenants import DEFAULT_TIERS, JwtConfig, Tenancy, Tenant, TlsConfig

__all__ = ["parse_tenancy", "parse_tls"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _tier(name: str, raw: Any, where: str) -> Tier:
    t = Table(raw, where)
    values: dict[str, Any] = {"name": name}
    for f in fields(Tier):
        if f.name == "name":
            continue
        kind: type = int if f.name in ("connections", "inflight", "subscriptions") else float
        if f.name == "bad_messages":
            kind = int
        value = t.get(f.name, kind, None)
        if value is not None:
            require_positive(t.at(f.name), value)
        values[f.name] = value
    t.done()
    return Tier(**values)


def _patterns(t: Table, key: str) -> tuple[Pattern, ...]:
    out = []
    for i, value in enumerate(t.get(key, list, [])):
        try:
            if not isinstance(value, str):
                raise ValueError(f"must be a string, got {value!r}")
            out.append(parse_pattern(value))
        except ValueError as exc:
            raise ConfigError(f"{t.at(key)}[{i}]", str(exc)) from None
    return tuple(out)


def _tenant(raw: Any, where: str, tiers: Mapping[str, Tier], buses: set[str]) -> Tenant:
    t = Table(raw, where)
    name = t.get("name", str, "")
    if not _NAME.match(name):
        raise ConfigError(t.at("name"), "a tenant needs a name of letters, digits, _ . - (<= 64)")
    tier_name = t.get("tier", str, "")
    tier = tiers.get(tier_name)
    if tier is None:
        known = ", ".join(sorted(tiers)) or "none"
        raise ConfigError(t.at("tier"), f"no tier named {tier_name!r} (tiers: {known})")
    hashes = []
    for i, value in enumerate(t.get("token_sha256", list, [])):
        if not isinstance(value, str) or not _HEX64.match(value.strip().lower()):
            raise ConfigError(f"{t.at('token_sha256')}[{i}]", "must be 64 hex digits (sha-256)")
        hashes.append(bytes.fromhex(value.strip()))
    read, write = _patterns(t, "read"), _patterns(t, "write")
    for key, patterns in (("read", read), ("write", write)):
        for p in patterns:
            if p.bus is not None and p.bus not in buses:
                raise ConfigError(t.at(key), f"no bus named {p.bus!r}")
        if key == "read" and any(p.cmd is not None for p in patterns):
            raise ConfigError(t.at(key), "a read pattern names no command")
    cns = t.get("client_cert_cn", list, [])
    if not all(isinstance(cn, str) and cn for cn in cns):
        raise ConfigError(t.at("client_cert_cn"), "must be a list of names")
    origins = strings(t, "allowed_origins", normalize_origin, "an origin")
    tenant = Tenant(
        name=name,
        tier=tier,
        token_sha256=tuple(hashes),
        read=read,
        write=write,
        allowed_origins=tuple(o if o == "*" else (normalize_origin(o) or o) for o in origins),
        client_cert_cn=tuple(cns),
    )
    t.done()
    return tenant


def _jwt(raw: Any, where: str, base: Path | None) -> JwtConfig:
    t = Table(raw, where)
    algorithms = t.get("algorithms", list, ["HS256"])
    secret = t.get("secret", str, None)
    secret_env = t.get("secret_env", str, None)
    if secret_env is not None:
        secret = os.environ.get(secret_env)
        if not secret:
            raise ConfigError(t.at("secret_env"), f"environment variable {secret_env} is not set")

    def path(key: str) -> str | None:
        value: str | None = t.get(key, str, None)
        if value is not None and base is not None and not Path(value).is_absolute():
            return str(base / value)
        return value

    cfg = JwtConfig(
        algorithms=tuple(str(a) for a in algorithms),
        secret=secret,
        public_key=path("public_key"),
        jwks=path("jwks"),
        audience=t.get("audience", str, None),
        issuer=t.get("issuer", str, None),
        leeway_s=require_positive(t.at("leeway_s"), t.get("leeway_s", float, 30.0), zero=True),
        tenant_claim=t.get("tenant_claim", str, "tenant"),
    )
    cfg.check(where)
    t.done()
    return cfg


def parse_tenancy(
    tiers_raw: Any, tenants_raw: Any, jwt_raw: Any, buses: set[str], base: Path | None
) -> Tenancy:
    tiers: dict[str, Tier] = dict(DEFAULT_TIERS)
    if tiers_raw is not None:
        if not isinstance(tiers_raw, Mapping):
            raise ConfigError("tiers", "must be a table of [tiers.NAME] tables")
        for name, raw in tiers_raw.items():
            if not _NAME.match(name):
                raise ConfigError(f"tiers.{name}", "a tier name is letters, digits, _ . -")
            tiers[name] = _tier(name, raw, f"tiers.{name}")
    tenants = tuple(
        _tenant(raw, f"tenant[{i}]", tiers, buses) for i, raw in enumerate(tenants_raw or [])
    )
    names = [t.name for t in tenants]
    if len(set(names)) != len(names):
        raise ConfigError("tenant", "tenant names must be unique")
    digests = [d for t in tenants for d in t.token_sha256]
    if len(set(digests)) != len(digests):
        raise ConfigError("tenant", "the same token_sha256 is listed twice")
    jwt = None if jwt_raw is None else _jwt(jwt_raw, "jwt", base)
    return Tenancy(tiers, tenants, jwt)


def parse_tls(raw: Any, where: str, base: Path | None) -> TlsConfig | None:
    if raw is None:
        return None
    t = Table(raw, where)

    def path(key: str, required: bool) -> str | None:
        value: str | None = t.get(key, str, None)
        if value is None:
            if required:
                raise ConfigError(t.at(key), "is required (a PEM file)")
            return None
        if base is not None and not Path(value).is_absolute():
            value = str(base / value)
        return value

    cert, key = path("cert", True), path("key", True)
    assert cert is not None and key is not None
    tls = TlsConfig(
        cert=cert,
        key=key,
        client_ca=path("client_ca", False),
        client_cert_required=t.get("client_cert_required", bool, False),
    )
    if tls.client_cert_required and tls.client_ca is None:
        raise ConfigError(t.at("client_cert_required"), "needs client_ca")
    t.done()
    return tls
