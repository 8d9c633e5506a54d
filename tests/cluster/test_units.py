"""In-process checks of the cluster parts that need no second node: request routing's at-most-once
and late replies, the payload format, the backlog bound while Redis is away."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bridge import contract as c
from bridge.cluster.broker import RedisBroker
from bridge.cluster.keys import Keys, PayloadError, decode_payload, encode_payload
from bridge.cluster.link import RedisLink
from bridge.cluster.remote import RequestRouter
from bridge.cluster.store import RedisStore
from bridge.config import RedisConfig
from bridge.store import Stamped
from tests.servers import RedisProcess, free_port

from .harness import until


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
    await asyncio.wait_for(until(lambda: link.sent), 5)
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


def test_mqtt_and_redis_together_are_refused_until_mqtt_knows_remote_buses() -> None:
    from bridge.app import Bridge
    from bridge.config import BridgeConfig, MqttConfig
    from bridge.errors import ConfigError

    config = BridgeConfig(
        redis=RedisConfig("redis://127.0.0.1:1/0"), mqtt=MqttConfig("mqtt://127.0.0.1:1")
    )
    with pytest.raises(ConfigError, match="mqtt"):
        Bridge(config)


async def test_the_pubsub_reader_stops_even_when_a_read_swallows_its_cancellation(
    redis: RedisProcess, prefix: str
) -> None:
    """Regression (issue 13): a drained node did not exit. A cancelled read in redis-py's
    pub/sub can swallow the cancellation and return, and the reader read on for ever (until
    Redis went away). Here every read swallows it, as that one did; close() still ends."""
    link = RedisLink(RedisConfig(redis.url, prefix=prefix), "A")
    broker = RedisBroker(link)
    real = broker._pubsub_for

    def swallowing(target: str) -> Any:
        ps = real(target)
        get = ps.get_message

        async def get_message(*args: Any, **kw: Any) -> Any:
            try:
                return await get(*args, **kw)
            except asyncio.CancelledError:
                return None

        ps.get_message = get_message
        return ps

    broker._pubsub_for = swallowing  # type: ignore[method-assign]
    broker.watch("b")
    broker.start()
    await asyncio.wait_for(until(lambda: broker.connected), 10)
    await asyncio.sleep(0.3)  # let the reader be inside a read when the cancellation comes
    await asyncio.wait_for(broker.close(timeout=2.0), 10)  # before the fix: for ever
    assert broker._task is None and not broker.connected
    await link.close()


async def test_a_resume_storm_is_answered_not_refused_for_want_of_connections(
    redis: RedisProcess, prefix: str
) -> None:
    """Regression (issue 13): 150 clients of a drained node resuming on one node at once used
    more Redis connections than redis-py's pool holds (100); the overflow raised, and those
    clients were told ``recovered: false``. The reads now queue."""
    link = RedisLink(RedisConfig(redis.url, prefix=prefix), "A")
    store = RedisStore(link)
    try:
        start = await store.open_bus("b", 7)
        for i in range(5):
            store.append("b", {"type": "frame", "addr": 1, "data": f"{i:02x}"}, 0.0)
        assert await store.flush("b", 5.0)
        since = c.Position(start.epoch, 1)
        answers = await asyncio.gather(*(store.since("b", since, 0.0) for _ in range(300)))
        assert all(a is not None and [e.seq for e in a] == [2, 3, 4, 5] for a in answers)
    finally:
        await store.close()
        await link.close()
