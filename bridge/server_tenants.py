"""The server's tenant plumbing: credentials, TLS, client certificates, shared quotas, and the
warning an open bridge logs at start. Thin adapters around the pure :mod:`bridge.tenants` and
:mod:`bridge.quota`, kept out of :mod:`bridge.server` so that stays one connection's loop."""

from __future__ import annotations

import logging
import ssl
from typing import Any

from .acl import Principal
from .config import BridgeConfig
from .quota import TenantPolicy
from .tenants import Authenticator, TlsConfig

__all__ = ["announce", "authenticator", "certified", "share_quotas", "tls_context"]

log = logging.getLogger("bridge.server")


def authenticator(config: BridgeConfig) -> Authenticator:
    verifier = None
    if config.tenancy.jwt is not None:
        from .jwtauth import JwtVerifier  # PyJWT only when JWTs are configured

        verifier = JwtVerifier(config.tenancy.jwt)
    return Authenticator(config.tenancy, config.server.tokens, verifier)


def tls_context(tls: TlsConfig | None) -> ssl.SSLContext | None:
    """``[server] tls``: wss:// and https://; with ``client_ca``, client certificates
    (verified; their subject CN may name a tenant, ``client_cert_cn``)."""
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert, tls.key)
    if tls.client_ca is not None:
        context.load_verify_locations(tls.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if tls.client_cert_required else ssl.CERT_OPTIONAL
    return context


def certified(transport: Any, auth: Authenticator) -> Principal | None:
    """The tenant a verified client certificate names (its subject CN), or None."""
    cert = None if transport is None else transport.get_extra_info("peercert")
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return auth.for_certificate(value)
    return None


def share_quotas(config: BridgeConfig, policy: Any, node: str) -> Any:
    """With ``[redis]``, tenants' connection counts and request rates are shared by every node
    (:mod:`bridge.quota_redis`); returns the started sharer (``stop()`` it), or None."""
    redis_cfg = config.redis
    if redis_cfg is None or not isinstance(policy, TenantPolicy):
        return None
    from redis import asyncio as aioredis

    from .quota_redis import SharedCounts

    options = {
        "socket_connect_timeout": redis_cfg.connect_timeout_s,
        "socket_timeout": redis_cfg.command_timeout_s,
    }
    client: Any = (
        aioredis.RedisCluster.from_url(redis_cfg.url, **options)
        if redis_cfg.cluster
        else aioredis.from_url(redis_cfg.url, **options)
    )
    tenants = [t.name for t in config.tenancy.tenants]
    shared = SharedCounts(client, policy, node, prefix=redis_cfg.prefix, tenants=tenants)
    shared.start()
    return shared


def announce(auth: Authenticator, host: str, port: int, tls: bool) -> None:
    """The listening line, and a warning when anyone may connect (no credentials at all)."""
    log.info("event=listening host=%s port=%s scheme=%s", host, port, "wss" if tls else "ws")
    if auth.required:
        return
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    where = "loopback only" if loopback else "NOT loopback: anyone who can reach it"
    log.warning(
        "event=open_bridge no tokens or tenants are configured: every client may read and "
        "command every device (%s; set [server] listen to change it)",
        where,
    )
