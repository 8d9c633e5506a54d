"""JWT credentials against PyJWT: HS256, RS256 (PEM), ES256 (JWKS); every refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bridge.errors import ConfigError
from bridge.jwtauth import JwtConfig, JwtVerifier

NOW = 1_800_000_000.0
SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret!"


def claims(**over: Any) -> dict[str, Any]:
    base = {"tenant": "acme", "sub": "alice", "exp": NOW + 60, "aud": "bridge", "iss": "idp"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def hs() -> JwtVerifier:
    return JwtVerifier(JwtConfig(secret=SECRET, audience="bridge", issuer="idp", leeway_s=0))


def test_a_valid_hs256_token_gives_tenant_subject_expiry_and_scopes() -> None:
    token = jwt.encode(claims(read=["bus0/1"]), SECRET, algorithm="HS256")
    got = hs().verify(token, NOW)
    assert got is not None and (got.tenant, got.subject, got.expires) == ("acme", "alice", NOW + 60)
    assert got.read is not None and [p.text for p in got.read] == ["bus0/1"] and got.write is None


@pytest.mark.parametrize(
    "bad",
    [
        claims(exp=NOW - 1),  # expired
        claims(nbf=NOW + 30),  # not yet valid
        claims(aud="other"),  # wrong audience
        claims(iss="elsewhere"),  # wrong issuer
        claims(exp=None),  # no exp: required
        claims(tenant=None),  # no tenant
        claims(read="bus0/*"),  # scopes not a list
    ],
)
def test_refused_claims(bad: dict[str, Any]) -> None:
    assert hs().verify(jwt.encode(bad, SECRET, algorithm="HS256"), NOW) is None


def test_wrong_key_none_alg_and_garbage_are_refused() -> None:
    assert (
        hs().verify(jwt.encode(claims(), "another-secret-another-secret-another!", "HS256"), NOW)
        is None
    )
    unsigned = jwt.encode(claims(), None, algorithm="none")
    assert hs().verify(unsigned, NOW) is None
    assert hs().verify("a.b.c", NOW) is None


def test_rs256_with_a_pem_public_key(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    v = JwtVerifier(JwtConfig(("RS256",), public_key=str(tmp_path / "pub.pem"), audience="bridge"))
    assert v.verify(jwt.encode(claims(), key, algorithm="RS256"), NOW) is not None
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert v.verify(jwt.encode(claims(), other, algorithm="RS256"), NOW) is None
    hs_token = jwt.encode(claims(), SECRET, algorithm="HS256")  # an algorithm not configured
    assert v.verify(hs_token, NOW) is None


def test_es256_from_a_jwks_file_chosen_by_kid(tmp_path: Path) -> None:
    keys = {kid: ec.generate_private_key(ec.SECP256R1()) for kid in ("k1", "k2")}
    jwks = {"keys": []}
    for kid, key in keys.items():
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwk.update(kid=kid, alg="ES256", use="sig")
        jwks["keys"].append(jwk)
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    v = JwtVerifier(JwtConfig(("ES256",), jwks=str(tmp_path / "jwks.json"), audience="bridge"))
    for kid, key in keys.items():
        token = jwt.encode(claims(), key, algorithm="ES256", headers={"kid": kid})
        assert v.verify(token, NOW) is not None
    swapped = jwt.encode(claims(), keys["k1"], algorithm="ES256", headers={"kid": "k2"})
    assert v.verify(swapped, NOW) is None
    unknown = jwt.encode(claims(), keys["k1"], algorithm="ES256", headers={"kid": "k9"})
    assert v.verify(unknown, NOW) is None


def test_config_needs_exactly_one_matching_key_source() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        JwtConfig().check("jwt")
    with pytest.raises(ConfigError, match="secret goes with HS"):
        JwtConfig(("RS256",), secret="x").check("jwt")
    with pytest.raises(ConfigError, match="algorithms"):
        JwtConfig(("XX1",), secret="x").check("jwt")
