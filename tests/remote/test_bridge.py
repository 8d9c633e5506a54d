"""The bridge polling a bus through ser2net's RFC 2217 port while a WebSocket client watches;
ser2net killed and restarted, and a second user kicking the bridge off (``kickolduser``): each
gives ``bus_down`` then ``bus_up``, requests fail fast meanwhile and are answered after."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.client import BridgeClient
from bridge.config import (
    BridgeConfig,
    BusConfig,
    DeviceConfig,
    HistoryConfig,
    PollConfig,
    ServerConfig,
)
from frames.errors import LinkDown
from frames.io import Master
from tests.bridge.conftest import make_limits

from .ser2net import Ser2net, serial_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyserial's threads


@pytest.fixture
def own_server() -> Iterator[Ser2net]:
    """A ser2net of this test's own: the tests kill it."""
    with serial_server() as s:
        yield s


@pytest.fixture
async def bridge(own_server: Ser2net) -> AsyncIterator[Bridge]:
    config = BridgeConfig(
        server=ServerConfig(host="127.0.0.1", port=0, node="remote"),
        limits=make_limits(),
        history=HistoryConfig(size=4096),
        buses=(
            BusConfig(
                "bus0",
                own_server.rfc2217_url,
                timeout_s=0.3,
                retries=0,
                reconnect_min_s=0.05,
                reconnect_max_s=0.5,
                devices=(DeviceConfig(1, "thermo", "boiler"), DeviceConfig(2, "thermo")),
                polls=(PollConfig("read_regs", interval_s=0.05),),
            ),
        ),
    )
    async with Bridge(config) as b:
        yield b


async def next_message(client: BridgeClient, pred: Any, timeout: float = 10.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await client.recv(max(0.01, deadline - loop.time()))
        if pred(msg):
            return msg


def event(name: str) -> Any:
    return lambda m: m["type"] == "event" and m["event"] == name


def polled_reply(m: dict[str, Any]) -> bool:
    return bool(m["type"] == "frame" and m["dir"] == "rx" and m["cmd"] == 3)


async def test_polling_through_rfc2217_survives_a_ser2net_restart(
    bridge: Bridge, own_server: Ser2net
) -> None:
    async with BridgeClient(bridge.ws_url) as client:
        await client.subscribe(["bus0/*"])
        first = await next_message(client, polled_reply)
        assert "temperature" in first["fields"]["named"]
        ok = await client.request("bus0", 2, "write_reg", args={"reg": 2, "value": 2250})
        assert ok["ok"] is True
        # a request on the wire when the server dies ends at once, not at its timeout
        pending = asyncio.ensure_future(client.request("bus0", 9, "identify", timeout=5))
        await asyncio.to_thread(own_server.kill)
        down = await next_message(client, event("bus_down"))
        gone = await asyncio.wait_for(pending, 5)
        assert gone["ok"] is False and gone["error"]["code"] in ("bus_down", "timeout")
        refused = await asyncio.wait_for(client.request("bus0", 1, "identify"), 5)
        assert refused["error"]["code"] == "bus_down"
        await asyncio.to_thread(own_server.start)
        up = await next_message(client, event("bus_up"))
        assert up["seq"] > down["seq"]
        await next_message(client, polled_reply)  # polling resumed
        again = await client.request("bus0", 2, "read_regs", args={"start": 2, "count": 1})
        assert again["ok"] and again["fields"]["values"] == [2250]
        assert client.close_codes == []  # the client stayed connected throughout


async def test_a_second_user_kicks_the_bridge_and_it_comes_back(
    bridge: Bridge, own_server: Ser2net
) -> None:
    async with BridgeClient(bridge.ws_url) as client:
        await client.subscribe(["bus0/*"])
        await next_message(client, polled_reply)
        intruder = await asyncio.to_thread(
            socket.create_connection, ("127.0.0.1", own_server.rfc_port), 5
        )
        try:
            down = await next_message(client, event("bus_down"))
        finally:
            intruder.close()
        up = await next_message(client, event("bus_up"))
        assert up["seq"] > down["seq"]
        ok = await client.request("bus0", 1, "identify")
        assert ok["ok"] and ok["fields"]["model"] == "THERMO-1"


def test_sync_master_reconnects_after_a_restart(own_server: Ser2net) -> None:
    with Master(own_server.rfc2217_url, timeout=0.3, retries=0, reconnect_max=0.2) as m:
        assert m.identify(1)
        own_server.kill()
        with pytest.raises(LinkDown):
            m.identify(1)  # fails fast: the lost connection, not a timeout
        own_server.start()
        for _ in range(50):  # each try waits for its backoff interval; bounded
            try:
                assert m.identify(1)["model"] == "THERMO-1"
                break
            except LinkDown:
                time.sleep(0.05)
        else:
            pytest.fail("no reply after the restart")
        assert m.stats.link_failures >= 1
