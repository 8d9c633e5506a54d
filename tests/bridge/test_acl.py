"""Tokens and what they allow: pure rules, config parsing, and the server applying them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from bridge.acl import Principal, TokenRule, check_token
from bridge.config import parse_config
from bridge.errors import ConfigError

from .conftest import Harness, recv

VIEWER = TokenRule("view-0", name="viewer", buses=frozenset({"bus0"}), read_only=True)
OPERATOR = TokenRule("op-1", name="operator", buses=frozenset({"bus1"}))


def test_plain_string_token_may_do_everything() -> None:
    p = check_token("a", ["a", VIEWER])
    assert p == Principal("token#0", tenant="token#0")  # each token is a tenant of its own
    assert p.may_see("bus9", 3) and p.may_request("bus9", 3) and not p.restricted


def test_rules_limit_buses_and_requests() -> None:
    viewer = check_token("view-0", ["a", VIEWER, OPERATOR])
    assert viewer is not None and viewer.name == "viewer" and viewer.restricted
    assert viewer.may_see("bus0", 1) and not viewer.may_see("bus1", 1)
    assert not viewer.may_request("bus0", 1)
    assert viewer.visible(["bus0", "bus1"]) == ["bus0"]
    op = check_token("op-1", ["a", VIEWER, OPERATOR])
    assert op is not None and op.may_request("bus1", 2) and not op.may_request("bus0", 2)


def test_unknown_token_is_refused_and_no_tokens_means_anyone() -> None:
    assert check_token("nope", ["a", VIEWER]) is None
    assert check_token("view-", ["a", VIEWER]) is None  # a prefix is not the token
    assert check_token("", ["a"]) is None
    assert check_token("anything", []) == Principal("anonymous")


def _config(tokens: list[Any]) -> Any:
    return parse_config(
        {
            "server": {"tokens": tokens},
            "bus": [{"name": "bus0", "url": "loop://"}, {"name": "bus1", "url": "loop://"}],
        }
    )


def test_config_reads_strings_and_tables() -> None:
    cfg = _config(["plain", {"token": "v", "name": "wall", "buses": ["bus0"], "read_only": True}])
    assert cfg.server.tokens == (
        "plain",
        TokenRule("v", name="wall", buses=frozenset({"bus0"}), read_only=True),
    )


@pytest.mark.parametrize(
    ("tokens", "where"),
    [
        ([""], "server.tokens[0]"),
        ([3], "server.tokens[0]"),
        ([{"name": "x"}], "server.tokens[0].token"),
        ([{"token": "v", "buses": ["bus7"]}], "server.tokens[0].buses"),
        ([{"token": "v", "buses": "bus0"}], "server.tokens[0].buses"),
        ([{"token": "v", "read_only": "yes"}], "server.tokens[0].read_only"),
        (["ok", {"token": "v", "colour": "red"}], "server.tokens[1]"),
        (["a", {"token": "a", "read_only": True}], "server.tokens[1]"),  # the same secret twice
    ],
)
def test_config_names_the_bad_token_entry(tokens: list[Any], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        _config(tokens)
    assert info.value.where == where


async def _hello(harness: Harness, token: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await harness.client(hello=False)
    await ws.send(json.dumps({"type": "hello", "token": token}))
    return ws, await recv(ws)


@pytest.mark.tokens("full", VIEWER, OPERATOR)
async def test_viewer_sees_only_its_bus_and_may_not_request(harness: Harness) -> None:
    ws, welcome = await _hello(harness, "view-0")
    assert list(welcome["buses"]) == ["bus0"]
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"]}))
    answer = await recv(ws)
    assert answer["type"] == "subscribed" and answer["topics"] == ["bus0/*"]
    harness.buses["bus1"].frame(addr=5)  # not for this client
    harness.bus.frame(addr=6)
    got = await recv(ws)
    assert got["bus"] == "bus0" and got["addr"] == 6

    # a hidden bus is answered exactly like one that does not exist
    for n, bus in enumerate(["bus1", "nope"]):
        await ws.send(json.dumps({"type": "subscribe", "id": n, "topics": [f"{bus}/3"]}))
        err = await recv(ws)
        assert err == {
            "type": "error",
            "id": n,
            "code": "bad_value",
            "message": f"no bus named {bus!r}",
        }
    await ws.send(
        json.dumps({"type": "request", "id": 3, "bus": "bus0", "addr": 1, "cmd": "identify"})
    )
    reply = await recv(ws)
    assert reply["type"] == "reply" and reply["ok"] is False
    assert reply["error"]["code"] == "forbidden"  # read-only, on a bus it sees
    for bus in ("bus1", "nope"):
        await ws.send(json.dumps({"type": "request", "id": 5, "bus": bus, "addr": 1, "cmd": 1}))
        assert (await recv(ws))["error"] == {
            "code": "bad_request",
            "message": f"no bus named {bus!r}",
        }
    assert harness.bus.requests.empty() and harness.buses["bus1"].requests.empty()

    await ws.send(json.dumps({"type": "state", "id": 4}))
    state = await recv(ws)
    assert list(state["buses"]) == ["bus0"]
    assert ws.close_code is None  # refusals are answers, not closes


@pytest.mark.tokens("full", VIEWER, OPERATOR)
async def test_resume_of_a_hidden_bus_replays_nothing(harness: Harness) -> None:
    harness.buses["bus1"].frame(addr=1)
    ws, _ = await _hello(harness, "view-0")
    since = {"bus0": {"epoch": 1000, "seq": 0}, "bus1": {"epoch": 2000, "seq": 0}}
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"], "since": since}))
    answer = await recv(ws)
    assert answer["recovered"] == {"bus0": True, "bus1": False}  # as for an unknown bus
    await ws.send(json.dumps({"type": "ping", "id": "p"}))
    assert await recv(ws) == {"type": "pong", "id": "p"}  # nothing of bus1 came before it


@pytest.mark.tokens("full", VIEWER, OPERATOR)
async def test_operator_requests_on_its_bus_only(harness: Harness) -> None:
    ws, _ = await _hello(harness, "op-1")
    await ws.send(json.dumps({"type": "request", "id": 1, "bus": "bus0", "addr": 1, "cmd": 1}))
    assert (await recv(ws))["error"]["code"] == "bad_request"  # bus0 is hidden from it
    await ws.send(json.dumps({"type": "request", "id": 2, "bus": "bus1", "addr": 1, "cmd": 1}))
    req, fut = await harness.buses["bus1"].requests.get()
    assert req.id == 2
    fut.set_result({"ok": True, "addr": 1, "cmd": 1, "data": "", "rtt_ms": 1.0})
    reply = await recv(ws)
    assert reply["id"] == 2 and reply["ok"] is True


@pytest.mark.tokens("full", VIEWER)
async def test_full_token_sees_every_bus(harness: Harness) -> None:
    ws, welcome = await _hello(harness, "full")
    assert sorted(welcome["buses"]) == ["bus0", "bus1"]
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"]}))
    assert (await recv(ws))["topics"] == ["*"]


@pytest.mark.tokens("full", VIEWER)
async def test_unsubscribe_star_undoes_subscribe_star_for_a_limited_token(
    harness: Harness,
) -> None:
    ws, _ = await _hello(harness, "view-0")
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["*"]}))
    assert (await recv(ws))["topics"] == ["bus0/*"]
    await ws.send(json.dumps({"type": "unsubscribe", "id": 2, "topics": ["*"]}))
    assert await recv(ws) == {"type": "unsubscribed", "id": 2, "topics": ["bus0/*"]}
    harness.bus.frame(addr=1)  # no longer for this client
    await ws.send(json.dumps({"type": "ping", "id": "p"}))
    assert await recv(ws) == {"type": "pong", "id": "p"}
