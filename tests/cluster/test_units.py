"""In-process checks of the cluster parts that need no second node: request routing's at-most-once
and late replies, the payload format, the backlog bound while Redis is away."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bridge import contract as c
from bridge.cluster.keys import Keys, PayloadError, decode_payload, encode_payload
from bridge.cluster.link import RedisLink
from bridge.cluster.remote import RequestRouter
from bridge.cluster.store import RedisStore
from bridge.config import RedisConfig
from bridge.store import Stamped
from tests.servers import free_port


class FakeLink:
    """What the router uses of a link: publish (recorded) and key names."""

    def __init__(self, listeners: int = 1) -> None:
        self.node = "B"
        self.keys = Keys("fb")
        self.listeners = listeners
        self.sent: list[tuple[str, str]] = []

    async def publish(self, channel: str, text: str) -> int:
        self.sent.append((channel, text))
        return self.listeners

    def failed(self, part: str, exc: BaseException) -> None: ...


class Owner:
    def __init__(self) -> None:
        self.calls = 0

    def submit(self, request: c.Request, client: str = "") -> asyncio.Future[dict[str, Any]]:
        self.calls += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        fut.set_result({"ok": True, "client": client})
        return fut


async def test_a_request_delivered_twice_runs_once_and_a_late_reply_is_dropped() -> None:
    link = FakeLink()
    router = RequestRouter(link, default_timeout_s=0.05, margin_s=0.0)  # type: ignore[arg-type]
    owner = Owner()
    router.own("bus0", owner)
    body = json.dumps({"id": "A:1", "from": "A", "client": "s1", "bus": "bus0", "addr": 1,
                       "cmd": "identify"})  # fmt: skip
    router.on_request(body)
    router.on_request(body)
    await asyncio.wait_for(_until(lambda: link.sent), 5)
    assert owner.calls == 1 and router.duplicates == 1
    channel, text = link.sent[-1]
    assert channel == link.keys.replies("A") and json.loads(text)["result"]["client"] == "A/s1"
    router.disown("bus0")  # a former owner still subscribed stays silent: the owner answers
    router.on_request(body.replace("A:1", "A:2"))
    await asyncio.sleep(0.05)
    assert owner.calls == 1 and len(link.sent) == 1
    # the asking side: no reply within the timeout → "timeout"; the reply after it is counted
    fut = router.ask(c.Request("bus0", 1, "identify"), "s2")
    result = await asyncio.wait_for(fut, 5)
    assert result["error"]["code"] == "timeout"
    rid = json.loads(link.sent[-1][1])["id"]
    router.on_reply(json.dumps({"id": rid, "result": {"ok": True}}))
    assert router.late_replies == 1
    await router.close()


async def test_a_request_nobody_listens_to_is_bus_down() -> None:
    router = RequestRouter(FakeLink(listeners=0))  # type: ignore[arg-type]
    result = await asyncio.wait_for(router.ask(c.Request("bus0", 1, "identify"), ""), 5)
    assert result["error"]["code"] == "bus_down"


def test_payload_round_trip_and_bad_payloads() -> None:
    msg = Stamped("b", 17, 4, 1.5, None, '{"type":"event"}')
    assert decode_payload("b", encode_payload(msg, "A")) == (msg, "A")
    msg2 = Stamped("b", 17, 5, 2.25, 3, "{}\n{}")  # the text may hold newlines
    assert decode_payload("b", encode_payload(msg2, "A").encode()) == (msg2, "A")
    for bad in ("", "1 2 3\n{}", "x 2 3 - A\n{}", "1 2 3 4 5 6\n{}"):
        with pytest.raises(PayloadError):
            decode_payload("b", bad)
    assert Keys("p").bus_of_channel(Keys("p").channel("a:b")) == "a:b"


async def test_past_the_backlog_bound_a_bus_starts_a_new_epoch() -> None:
    dead = RedisConfig(f"redis://127.0.0.1:{free_port()}/0", connect_timeout_s=0.1)
    link = RedisLink(dead, "A")
    store = RedisStore(link, backlog=5)
    resets: list[int] = []
    store.on_reset = lambda bus, epoch: resets.append(epoch)
    store.add_bus("b", 1)
    for _ in range(5):
        store.append("b", {"type": "frame", "addr": 1}, 0.0)
    assert store.backlog_of("b") == 5 and resets == []  # kept, in order, for Redis's return
    store.append("b", {"type": "frame", "addr": 1}, 0.0)
    assert len(resets) == 1 and store.position("b").epoch == resets[0] != 1
    assert store.backlog_of("b") == 0 and store.resets == 1
    await store.close()
    await link.close()


async def _until(pred: Any) -> None:
    while not pred():
        await asyncio.sleep(0.01)


def test_mqtt_and_redis_together_are_refused_until_mqtt_knows_remote_buses() -> None:
    from bridge.app import Bridge
    from bridge.config import BridgeConfig, MqttConfig
    from bridge.errors import ConfigError

    config = BridgeConfig(
        redis=RedisConfig("redis://127.0.0.1:1/0"), mqtt=MqttConfig("mqtt://127.0.0.1:1")
    )
    with pytest.raises(ConfigError, match="mqtt"):
        Bridge(config)
