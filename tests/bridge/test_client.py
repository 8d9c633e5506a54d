"""``bridge.client.BridgeClient`` against a real bridge: typed errors, resume, silence, backoff.

The in-process harness (``conftest.py``) is a real ``BridgeServer`` on loopback; the dead-server
test stops a real ``framebridge demo`` process with SIGSTOP, the one failure TCP does not report.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.client import BridgeClient
from bridge.client_policy import (
    CLOSE_CODES,
    DEAD_AFTER_HEARTBEATS,
    SLOW_BACKOFF_STEPS,
    ResumeTracker,
    close_rule,
    silence_limit,
)
from bridge.config import ServerConfig
from bridge.errors import BridgeError, ClientClosed, ClientTimeout, Unauthorized
from frames.backoff import Backoff

from .conftest import Harness, make_limits, running_harness
from .test_cli import start

ROOT = Path(__file__).resolve().parents[2]


async def eventually(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def server_side_close(h: Harness, client: BridgeClient, code: int) -> None:
    conn = next(c for c in h.server.conns.values() if c.session.id == client.welcome["session"])
    await asyncio.wait_for(conn.ws.close(code, "test"), 5)


async def next_seq(client: BridgeClient) -> int:
    """The seq of the next sequenced message (heartbeats skipped)."""
    while True:
        msg = await client.recv(5)
        if "seq" in msg:
            return int(msg["seq"])


async def frames_until(client: BridgeClient, seq: int) -> list[int]:
    seqs: list[int] = []
    while not seqs or seqs[-1] < seq:
        msg = await client.recv(5)
        if msg["type"] == "frame":
            seqs.append(msg["seq"])
    return seqs


# -- typed errors ---------------------------------------------------------------------------


@pytest.mark.tokens("good")
async def test_a_refused_token_is_unauthorized_not_a_websockets_error(harness: Harness) -> None:
    # On the old client this escaped as websockets' ConnectionClosedError (4003).
    client = BridgeClient(harness.url, "bad")
    with pytest.raises(Unauthorized) as info:
        await client.connect()
    assert isinstance(info.value, BridgeError) and info.value.code == 4003
    assert client.close_codes == [4003]


async def test_codes_not_retried_end_with_that_code(harness: Harness) -> None:
    async with BridgeClient(harness.url, reconnect_min_s=0.01) as client:
        await client.subscribe(["bus0/*"])
        await server_side_close(harness, client, 1008)
        with pytest.raises(ClientClosed) as info:
            await client.recv(5)
        assert info.value.code == 1008 and client.close_codes == [1008] and not client.delays
        with pytest.raises(ClientClosed):  # calls fail at once, typed, instead of hanging
            await client.ping()


async def test_a_call_without_answer_is_a_client_timeout(harness: Harness) -> None:
    async with BridgeClient(harness.url) as client:
        asked = asyncio.create_task(client.request("bus0", 1, "identify", timeout=0.2))
        request, _ = await asyncio.wait_for(harness.bus.requests.get(), 5)  # never answered
        assert request.addr == 1
        with pytest.raises(ClientTimeout):
            await asyncio.wait_for(asked, 5)


# -- reconnect and resume -------------------------------------------------------------------


@pytest.mark.parametrize("code", [4000, 1001, 1011])
async def test_reconnects_and_resumes_with_no_gap_and_no_duplicate(
    harness: Harness, code: int
) -> None:
    async with BridgeClient(harness.url, reconnect_min_s=0.2, reconnect_max_s=0.4) as client:
        await client.subscribe(["bus0/*"])
        first = harness.bus.frame()
        assert await frames_until(client, first) == [first]
        await server_side_close(harness, client, code)
        # the client has seen the close and waits >= 0.2 s: these land in the gap
        missed = [harness.bus.frame(data=f"{i:02x}") for i in range(5)]
        await eventually(lambda: len(client.resumes) == 1)
        live = harness.bus.frame()
        assert await frames_until(client, live) == [*missed, live]
        assert client.close_codes == [code]
        assert client.resumes[0]["recovered"] == {"bus0": True, "bus1": True}
        assert client.tracker.duplicates == 0


async def test_frames_iterator_yields_frames_and_ends_only_on_close(harness: Harness) -> None:
    client = BridgeClient(harness.url, reconnect=False)
    await client.connect()
    await client.subscribe(["bus0/*", "bus1/*"])
    harness.hub.publish("bus0", {"type": "event", "event": "device_online", "addr": 1}, 0.0)
    seqs = [harness.bus.frame(), harness.buses["bus1"].frame(), harness.bus.frame()]
    got = []
    async for frame in client.frames("bus0"):
        got.append(frame["seq"])
        if len(got) == 2:
            break
    assert got == [seqs[0], seqs[2]]
    await server_side_close(harness, client, 1001)
    with pytest.raises(ClientClosed, match="1001"):  # not a silent end: the bridge went away
        async for _ in client:
            pass
    await client.close()
    async for _ in client:  # closed by us: the iteration just ends
        raise AssertionError("nothing after close")


async def test_backoff_is_full_jitter_from_frames_backoff() -> None:
    server_config = ServerConfig(host="127.0.0.1", port=0, node="test")
    async with running_harness(server_config, make_limits()) as h:
        client = BridgeClient(
            h.url,
            max_reconnects=8,
            reconnect_min_s=0.002,
            reconnect_max_s=0.05,
            rng=random.Random(7),
            open_timeout_s=1.0,
        )
        await client.connect()
    # the bridge is gone for good (1001, then connection refused): every retry fails
    with pytest.raises(ClientClosed, match="gave up after 8"):
        await client.recv(10)
    expected = Backoff(0.002, 0.05, rng=random.Random(7))
    assert client.delays == [expected.next_delay() for _ in range(8)]
    ceilings = [min(0.05, 0.002 * 2**n) for n in range(8)]
    assert all(0.002 <= d <= c for d, c in zip(client.delays, ceilings, strict=True))
    ratios = {round(d / c, 6) for d, c in zip(client.delays[2:], ceilings[2:], strict=True)}
    assert len(ratios) > 1  # drawn, not the plain doubling the old client slept
    await client.close()


# -- dead server ----------------------------------------------------------------------------


async def test_a_silent_server_is_noticed_by_its_heartbeat_and_the_client_resumes() -> None:
    proc, url = await start(
        "demo", "--listen", "127.0.0.1:0", "--devices", "1", "--interval", "0.5",
        "--heartbeat", "0.2",
    )  # fmt: skip
    try:
        async with BridgeClient(
            url, reconnect_min_s=0.05, reconnect_max_s=0.2, open_timeout_s=0.5
        ) as client:
            assert client.welcome["heartbeat_s"] == 0.2
            await client.subscribe(["bus0/*"])
            before = await next_seq(client)
            proc.send_signal(signal.SIGSTOP)  # TCP stays open; nothing is sent any more
            stopped = time.monotonic()
            # websockets' own keepalive would take 20 s + 20 s; the heartbeat watch 2.5 x 0.2 s
            await eventually(lambda: client.silent_drops == 1, timeout=10)
            assert time.monotonic() - stopped >= 0.2 * 2.5 - 0.05  # not before 2.5 heartbeats
            assert client.close_codes == [1006]
            proc.send_signal(signal.SIGCONT)
            await eventually(lambda: len(client.resumes) == 1, timeout=10)
            assert client.resumes[0]["recovered"] == {"bus0": True}
            after = [await next_seq(client) for _ in range(3)]
            assert after == list(range(before + 1, before + 4))  # no gap, no duplicate
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            await proc.wait()


def test_silence_limit_from_the_welcome() -> None:
    assert silence_limit(30.0) == 75.0
    assert silence_limit(2, 3.0) == 6.0
    assert [silence_limit(v) for v in (0, -1, None, "30", True)] == [None] * 5
    assert silence_limit(30.0, 0) is None  # dead_after_heartbeats=0: detection off


# -- bus_reset ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reset",
    [{"type": "event", "event": "bus_reset"}, {"type": "bus_reset"}],
    ids=["event", "message"],
)
async def test_bus_reset_reloads_state_in_both_spellings(
    harness: Harness, reset: dict[str, Any]
) -> None:
    reloaded: asyncio.Queue[tuple[str | None, dict[str, Any], str]] = asyncio.Queue()

    async def on_reload(bus: str | None, state: dict[str, Any], reason: str) -> None:
        await reloaded.put((bus, state, reason))

    async with BridgeClient(harness.url, on_reload=on_reload) as client:
        await client.subscribe(["bus0/*"])
        harness.bus.frame()
        harness.hub.publish("bus0", reset, 0.0)
        got = [await client.recv(5) for _ in range(2)]
        assert got[1]["type"] == reset["type"]  # the consumer sees the reset too
        bus, state, reason = await asyncio.wait_for(reloaded.get(), 5)
        assert (bus, reason) == ("bus0", "bus_reset")
        assert state["type"] == "state" and "bus0" in state["buses"]
        assert client.reloads == [state]


@pytest.mark.history(size=3)
async def test_a_resume_the_history_cannot_cover_reloads_state(harness: Harness) -> None:
    reloaded: asyncio.Queue[tuple[str | None, str]] = asyncio.Queue()
    client = BridgeClient(
        harness.url,
        reconnect_min_s=0.2,
        on_reload=lambda bus, state, reason: reloaded.put_nowait((bus, reason)),
    )
    async with client:
        await client.subscribe(["bus0/*"])
        harness.bus.frame()
        await frames_until(client, 1)
        await server_side_close(harness, client, 4000)
        for _ in range(5):  # more than the history keeps
            harness.bus.frame()
        assert await asyncio.wait_for(reloaded.get(), 5) == ("bus0", "not_recovered")
        assert client.resumes[0]["recovered"]["bus0"] is False
        assert client.reloads[0]["buses"]["bus0"]["seq"] == 6


def test_an_unsequenced_bus_reset_forgets_the_position() -> None:
    t = ResumeTracker()
    t.welcome({"buses": {"b": {"epoch": 1, "seq": 5}, "c": {"epoch": 1, "seq": 2}}})
    assert t.accept({"bus": "b", "epoch": 1, "seq": 6}) is True
    assert t.accept({"bus": "b", "epoch": 1, "seq": 6}) is False and t.duplicates == 1
    assert t.accept({"type": "bus_reset", "bus": "b"}) is True
    assert t.since() == {"c": {"epoch": 1, "seq": 2}}
    t.accept({"type": "bus_reset"})  # no bus: every position
    assert t.since() == {}


# -- one close-code table for Python, the browser and the docs ------------------------------


def _js_table() -> dict[int, tuple[bool, bool]]:
    text = (ROOT / "bridge" / "static" / "js" / "wire.js").read_text()
    body = re.search(r"export const CLOSE_CODES = \{(.*?)\n\};", text, re.S)
    assert body is not None
    row = r"(\d{4}): \{ label: \"[^\"]*\", reconnect: (\w+)(, slow: (\w+))? \}"
    rows = re.findall(row, body[1])
    return {int(code): (retry == "true", slow == "true") for code, retry, _, slow in rows}


def _docs_table() -> dict[int, tuple[bool, bool]]:
    text = (ROOT / "docs" / "websocket.md").read_text()
    section = text.split("## Close codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d{4}) \| [^|]+\| (yes|no)(, slow)? \| (yes|no) \|", section, re.M)
    assert all((retry == "yes") == (resume == "yes") for _, retry, _, resume in rows)
    return {int(code): (retry == "yes", bool(slow)) for code, retry, slow, _ in rows}


def test_python_browser_and_docs_retry_on_the_same_close_codes() -> None:
    python = {code: (rule.retry, rule.slow) for code, rule in CLOSE_CODES.items()}
    assert _js_table() == python
    assert _docs_table() == python
    assert close_rule(None) == CLOSE_CODES[1006] and close_rule(4999).retry is True
    assert not close_rule(4003).retry


def test_the_js_client_uses_the_same_silence_factor_and_slow_start() -> None:
    conn = (ROOT / "bridge" / "static" / "js" / "conn.js").read_text()
    factor = re.search(r"export const DEAD_AFTER_HEARTBEATS = ([\d.]+);", conn)
    steps = re.search(r"const SLOW_BACKOFF_STEPS = (\d+);", conn)
    assert factor is not None and float(factor[1]) == DEAD_AFTER_HEARTBEATS
    assert steps is not None and int(steps[1]) == SLOW_BACKOFF_STEPS
    assert "describeClose(ev.code)" in conn  # the retry decision is the shared table's


# -- refusals before the upgrade ------------------------------------------------------------


@pytest.mark.parametrize(("status", "retried"), [(403, False), (503, True)])
async def test_an_http_refusal_on_reconnect_follows_the_http_table(
    status: int, retried: bool
) -> None:
    # 403 (Host/Origin refused) cannot change by retrying: the client ends, typed. 503 asks
    # for time: the client retries, with the slow backoff, and gets in when it is answered.
    from http import HTTPStatus

    from websockets.asyncio.server import ServerConnection, serve
    from websockets.http11 import Request

    from bridge.client_policy import http_rule

    upgrades: list[int] = []

    def refuse_after_first(conn: ServerConnection, request: Request) -> Any:
        upgrades.append(len(upgrades))
        if len(upgrades) == 2:
            return conn.respond(HTTPStatus(status), "refused\n")
        return None

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # hello
        await ws.send('{"type":"welcome","session":"s","buses":{},"heartbeat_s":30}')
        if len(upgrades) == 1:
            await ws.close(1012, "restart")
            return
        async for raw in ws:  # answer pings, as the bridge does
            msg = json.loads(raw)
            await ws.send(json.dumps({"type": "pong", "id": msg.get("id")}))

    async with serve(handler, "127.0.0.1", 0, process_request=refuse_after_first) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = BridgeClient(f"ws://127.0.0.1:{port}/ws", reconnect_min_s=0.01)
        await client.connect()
        if retried:
            await eventually(lambda: len(upgrades) == 3)
            await asyncio.wait_for(client.ping(), 5)  # answered on the third connection
            assert client.delays[-1] >= 0.01 and http_rule(status).slow
            await client.close()
        else:
            with pytest.raises(ClientClosed, match=str(status)):
                await client.recv(5)
            assert len(upgrades) == 2  # not retried after the 403
