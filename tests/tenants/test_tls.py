"""wss:// with a test CA made here (cryptography); a client certificate names a tenant."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

from bridge.app import Bridge
from firmware_sim.bus import SimulatedBus
from tests.bridge.conftest import recv

from .conftest import TOKENS, build, tenants_config


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, issuer: tuple[x509.Name, Any] | None, *, ca: bool = False, server: bool = False
) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    issuer_name, issuer_key = issuer if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def _write(path: Path, cert: x509.Certificate, key: Any | None = None) -> None:
    data = cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(data)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca, ca_key = _cert("framebridge test CA", None, ca=True)
    server, server_key = _cert("localhost", (ca.subject, ca_key), server=True)
    client, client_key = _cert("acme-device-7", (ca.subject, ca_key))
    stranger_ca, stranger_key = _cert("other CA", None, ca=True)
    stranger, stranger_ckey = _cert("acme-device-7", (stranger_ca.subject, stranger_key))
    paths = {n: tmp_path / f"{n}.pem" for n in ("ca", "cert", "key", "client", "stranger")}
    _write(paths["ca"], ca)
    _write(paths["cert"], server)
    paths["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    _write(paths["client"], client, client_key)
    _write(paths["stranger"], stranger, stranger_ckey)
    return paths


@pytest.fixture
async def tls_bridge(sim: SimulatedBus, pki: dict[str, Path]) -> AsyncIterator[Bridge]:
    raw = tenants_config(sim.url)
    raw["server"]["tls"] = {
        "cert": str(pki["cert"]),
        "key": str(pki["key"]),
        "client_ca": str(pki["ca"]),
    }
    raw["tenant"][0]["client_cert_cn"] = ["acme-device-7"]
    async with Bridge(build(raw)) as b:
        yield b


def _context(pki: dict[str, Path], cert: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if cert is not None:
        context.load_cert_chain(str(pki[cert]))
    return context


async def _hello(url: str, context: ssl.SSLContext, token: str | None) -> dict[str, Any]:
    url = url.replace("127.0.0.1", "localhost")
    async with connect(url, ssl=context, close_timeout=0.5) as ws:
        hello: dict[str, Any] = {"type": "hello"}
        if token is not None:
            hello["token"] = token
        await ws.send(json.dumps(hello))
        return await recv(ws)


async def test_wss_with_a_token_and_with_a_client_certificate(
    tls_bridge: Bridge, pki: dict[str, Path]
) -> None:
    assert tls_bridge.ws_url.startswith("wss://") and tls_bridge.http_url.startswith("https://")
    welcome = await _hello(tls_bridge.ws_url, _context(pki), TOKENS["globex"])
    assert welcome["type"] == "welcome" and welcome["access"]["read"] == ["bus0/3", "bus0/4"]
    # no token: the verified certificate's CN names the tenant
    welcome = await _hello(tls_bridge.ws_url, _context(pki, "client"), None)
    assert welcome["type"] == "welcome" and welcome["access"]["read"] == ["bus0/1", "bus0/2"]
    # without a certificate (or a token) the bridge wants a token
    error = await _hello(tls_bridge.ws_url, _context(pki), None)
    assert error == {"type": "error", "code": "missing_field", "message": "'token' is required"}


async def test_a_certificate_of_another_ca_or_a_plain_client_gets_no_session(
    tls_bridge: Bridge, pki: dict[str, Path]
) -> None:
    # TLS 1.3: the server refuses the certificate after the client's side of the handshake,
    # so the client sees the connection end before the HTTP upgrade's answer
    with pytest.raises((ssl.SSLError, OSError, InvalidHandshake)):
        await _hello(tls_bridge.ws_url, _context(pki, "stranger"), None)
    with pytest.raises(ssl.SSLCertVerificationError):  # the client checks the server too
        await _hello(tls_bridge.ws_url, ssl.create_default_context(), TOKENS["acme"])
