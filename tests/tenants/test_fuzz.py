"""Hypothesis: any hello or refresh payload gives a welcome, an error or a close; never a crash,
never a principal from a token that is not configured, never the token in an answer."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.connection import Close, Send
from bridge.jwtauth import JwtConfig, JwtVerifier
from bridge.quota import TenantPolicy

from .test_pure import ACME, Clock, config, core

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
tokens = st.one_of(
    st.text(max_size=80),
    st.just(ACME),
    st.builds(
        lambda a, b, c: f"{a}.{b}.{c}",
        st.text(max_size=20),
        st.text(max_size=40),
        st.text(max_size=20),
    ),
    json_values,
)


def payload(kind: str, token: Any, extra: dict[str, Any]) -> str:
    return json.dumps({**extra, "type": kind, "token": token})


def verifier() -> JwtVerifier:
    return JwtVerifier(JwtConfig(secret="fuzz-secret-fuzz-secret-fuzz-secret!", audience="b"))


@settings(max_examples=300, deadline=None)
@given(
    token=tokens,
    extra=st.dictionaries(st.sampled_from(["id", "x", "since"]), json_values, max_size=2),
)
def test_any_hello(token: Any, extra: dict[str, Any]) -> None:
    conn, _, _ = core()
    conn.auth.verifier = verifier()  # type: ignore[attr-defined]
    actions = conn.receive(payload("hello", token, extra), 1000.0)
    assert len(actions) == 1
    [action] = actions
    if isinstance(action, Close):
        assert action.code == 4003 and token != ACME
    elif action.message["type"] == "welcome":
        assert token == ACME  # never a welcome for a token that is not configured
    else:
        assert action.message["type"] == "error"
        if isinstance(token, str) and len(token) > 3:
            assert token not in json.dumps(action.message)  # a secret is never echoed


@settings(max_examples=300, deadline=None)
@given(token=tokens, rid=st.one_of(st.none(), st.integers(), st.text(max_size=10)))
def test_any_refresh(token: Any, rid: Any) -> None:
    clock = Clock()
    conn, _, _ = core(config(), clock, policy=TenantPolicy(100, clock))
    conn.auth.verifier = verifier()  # type: ignore[attr-defined]
    conn.receive(json.dumps({"type": "hello", "token": ACME}), 1000.0)
    before = conn.session.principal
    [action] = conn.receive(payload("refresh", token, {} if rid is None else {"id": rid}), 1000.0)
    assert isinstance(action, Send)
    if token == ACME and action.message["type"] == "refreshed":
        assert conn.session.principal.tenant == "acme"
    else:
        assert action.message["type"] == "error"
        assert conn.session.principal is before
