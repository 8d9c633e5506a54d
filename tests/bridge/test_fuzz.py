"""Fuzzed client messages: always an answer or an error reply, never a crash or a close."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import contract as c
from bridge.errors import ContractError

from .conftest import Harness, recv

# Any code point, lone surrogates included: JSON escapes ("\ud800") can carry them.
any_text = st.text(st.characters(exclude_categories=()), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
types = st.sampled_from(["hello", "subscribe", "unsubscribe", "request", "state", "ping", "x", ""])
keys = st.sampled_from(["id", "token", "topics", "since", "bus", "addr", "cmd", "data", "args"])
messages = st.one_of(
    st.text(max_size=40),
    json_values.map(json.dumps),
    st.builds(
        lambda t, extra: json.dumps({"type": t, **extra}),
        types,
        st.dictionaries(keys, json_values, max_size=5),
    ),
)


@given(messages)
@settings(max_examples=400, deadline=None)
def test_parser_raises_only_contract_errors(text: str) -> None:
    try:
        c.parse_client_message(text)
    except ContractError as exc:
        assert exc.code and exc.message


async def test_fuzzed_messages_never_break_the_connection(harness: Harness) -> None:
    ws = await harness.client()
    answered: list[dict[str, Any]] = []
    samples: list[str] = []

    @given(messages)
    @settings(max_examples=150, suppress_health_check=list(HealthCheck), database=None)
    def collect(text: str) -> None:
        samples.append(text)

    collect()
    for text in samples:
        if '"hello"' in text:
            continue
        await ws.send(text)
        await ws.send('{"type":"ping","id":"probe"}')
        while True:  # every message is answered (or queues a request); then the probe
            msg = await recv(ws)
            if msg.get("id") == "probe":
                break
            answered.append(msg)
        # answer any request the fuzz got through so the bus queue stays empty
        while not harness.bus.requests.empty():
            _, fut = harness.bus.requests.get_nowait()
            fut.set_result({"ok": False, "error": {"code": "timeout", "message": "fuzz"}})
    assert ws.close_code is None
    assert len(harness.server.conns) == 1
    await asyncio.sleep(0)


async def test_lone_surrogates_get_an_error_reply_before_and_after_hello(
    harness: Harness,
) -> None:
    ws = await harness.client(hello=False)
    await ws.send('{"type":"ping","id":"\\udc00"}')
    err = await recv(ws)
    assert err["type"] == "error" and err["code"] == "bad_value" and "id" not in err
    await ws.send(json.dumps({"type": "hello", "token": "t"}))
    assert (await recv(ws))["type"] == "welcome"
    await ws.send('{"type":"ping","id":"\\ud800"}')
    assert (await recv(ws))["code"] == "bad_value"
    await ws.send('{"type":"subscribe","topics":["*"],"since":{"\\udc00":{"epoch":1,"seq":1}}}')
    assert (await recv(ws))["code"] == "bad_value"
    await ws.send(json.dumps({"type": "ping", "id": 5}))
    assert await recv(ws) == {"type": "pong", "id": 5}  # still connected
