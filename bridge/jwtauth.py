"""JWT credentials (PyJWT): signature, ``exp``/``nbf``/``aud``/``iss``, tenant and scopes. Pure.

``[jwt]`` names the algorithms and one key source: a shared ``secret`` (HS256), a PEM
``public_key`` file (RS256/ES256) or a ``jwks`` file (a JSON Web Key Set, the key chosen by the
token's ``kid``). Keys are read once at start; nothing is fetched over the network.

The claims the bridge reads: ``tenant_claim`` (default ``tenant``; must name a configured
tenant), ``sub`` (shown in logs with the tenant), ``exp`` (required: the connection is closed
4010 at that time unless refreshed), and optionally ``read``/``write`` lists of patterns, which
narrow the tenant's own. A token that fails any check gives None; the reason is logged, the
token never.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from .acl import Pattern, parse_pattern
from .errors import ConfigError
from .tenants import JwtConfig

__all__ = ["Claims", "JwtConfig", "JwtVerifier"]  # JwtConfig lives in bridge.tenants (pure)

log = logging.getLogger("bridge.jwtauth")


@dataclass(frozen=True)
class Claims:
    tenant: str
    subject: str
    expires: float | None
    read: tuple[Pattern, ...] | None
    write: tuple[Pattern, ...] | None


class JwtVerifier:
    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        self._key: Any = None
        self._keys: dict[str, Any] = {}
        try:
            if config.secret:
                self._key = config.secret
            elif config.public_key:
                self._key = Path(config.public_key).read_text(encoding="utf-8")
            elif config.jwks:
                jwks = jwt.PyJWKSet.from_json(Path(config.jwks).read_text(encoding="utf-8"))
                self._keys = {k.key_id or "": k.key for k in jwks.keys}
        except (OSError, jwt.PyJWTError, ValueError) as exc:
            raise ConfigError("jwt", f"cannot load the key: {exc}") from None

    def _key_for(self, token: str) -> Any:
        if not self._keys:
            return self._key
        kid = jwt.get_unverified_header(token).get("kid") or ""
        if kid not in self._keys and len(self._keys) == 1 and not kid:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def verify(self, token: str, now: float) -> Claims | None:
        """The token's claims when it is valid at ``now``; None otherwise (reason logged)."""
        cfg = self.config
        try:
            key = self._key_for(token)
            if key is None:
                raise jwt.InvalidKeyError("no key with this kid")
            claims = jwt.decode(
                token,
                key,
                algorithms=list(cfg.algorithms),
                audience=cfg.audience,
                issuer=cfg.issuer,
                options={
                    "require": ["exp", cfg.tenant_claim],
                    "verify_exp": False,  # checked below against ``now`` (a testable clock)
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
            exp, nbf = claims["exp"], claims.get("nbf")
            if not isinstance(exp, (int, float)) or now > exp + cfg.leeway_s:
                raise jwt.ExpiredSignatureError("expired")
            if nbf is not None and (not isinstance(nbf, (int, float)) or now < nbf - cfg.leeway_s):
                raise jwt.ImmatureSignatureError("not yet valid")
            tenant = claims[cfg.tenant_claim]
            if not isinstance(tenant, str):
                raise jwt.InvalidTokenError(f"{cfg.tenant_claim} must be a string")
            return Claims(
                tenant,
                str(claims.get("sub", "jwt"))[:64],
                float(exp) + cfg.leeway_s,
                _patterns(claims.get("read")),
                _patterns(claims.get("write")),
            )
        except (jwt.PyJWTError, ValueError, TypeError, json.JSONDecodeError) as exc:
            log.info("event=jwt_refused reason=%s", type(exc).__name__)
            return None


def _patterns(value: Any) -> tuple[Pattern, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 256:
        raise ValueError("scopes must be a list of patterns")
    return tuple(parse_pattern(str(v)) for v in value)
