"""The MQTT adapter: one broker connection, kept up with backoff; the decisions are the core's.

:class:`MqttBridge` listens to the hub's broker (every message every bus publishes, as WebSocket
clients get it), hands each to :class:`bridge.mqtt_core.MqttCore` and sends what it returns.
``/set`` commands go through the principal of ``[mqtt] token`` (resolved like a hello token, so
tenant rules apply) and the same ``BusOwner.submit`` as WebSocket requests, under the client id
``mqtt``, so the per-bus queue, the per-client in-flight limit and bus-time fairness hold.

The broker is optional to the bridge: :meth:`MqttBridge.start` returns at once, the connection
is made (and remade, with :class:`frames.backoff.Backoff`) in a task of its own, and while it is
down nothing is queued — the core keeps the latest value of every register, and a reconnect
publishes everything again (availability, discovery, values), which also restores a broker that
lost its retained messages. Outgoing messages are coalesced per topic (the latest value wins),
so a slow broker costs memory bounded by the number of topics, never a growing queue.

Bad commands (an unknown topic, a payload that does not parse, a forbidden device) are counted
in ``framebridge_mqtt_commands{outcome}`` and logged on one line without a traceback (the
bridge's rate-limited log filter covers this module's logger).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiomqtt
from prometheus_client import Counter, Gauge

from frames.backoff import Backoff
from frames.devicemap import load_device_map
from frames.errors import FramesError

from . import contract as c
from .buses import BusOwner
from .config import BridgeConfig, MqttConfig, mqtt_address
from .errors import ConfigError
from .metrics import BridgeMetrics
from .mqtt_core import CommandRefused, DeviceSpec, MqttCore, Publish, WriteCommand, expire_after
from .server_tenants import authenticator
from .store import Stamped

__all__ = ["COMMAND_CLIENT", "MqttBridge"]

log = logging.getLogger("bridge.mqtt")
_client_log = logging.getLogger("bridge.mqtt.client")

COMMAND_CLIENT = "mqtt"  # the client id /set requests are queued under on each bus
_BATCH = 64  # handed to the client at once (aiomqtt scans its pending calls per publish)
_INTERESTING = ('"named"', '"event"', '"model"')  # bus messages the core may act on


def device_specs(config: BridgeConfig, buses: Mapping[str, BusOwner]) -> list[DeviceSpec]:
    """The configured devices that have a register map (nothing to announce otherwise)."""
    mqtt = config.mqtt
    explicit = None if mqtt is None else mqtt.expire_after_s
    specs = []
    for owner in buses.values():
        maps = owner.book.maps
        expire = expire_after([p.interval_s for p in owner.cfg.polls], explicit)
        for dev in owner.cfg.devices:
            rmap = maps.get(dev.addr)
            if not rmap or dev.profile is None:
                continue
            registers = tuple(r for a, r in sorted(rmap.items()) if r.address == a)
            try:
                model = load_device_map(dev.profile).model
            except FramesError:  # the bus owner loaded it already; a file changed since
                model = ""
            specs.append(DeviceSpec(owner.name, dev.addr, registers, dev.name, model, expire))
    return specs


class MqttBridge:
    def __init__(
        self,
        config: BridgeConfig,
        hub: Any,
        buses: Mapping[str, BusOwner],
        metrics: BridgeMetrics,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        assert config.mqtt is not None, "no [mqtt] table"
        cfg: MqttConfig = config.mqtt
        self.cfg = cfg
        # resolved like a hello token: server.tokens, a tenant's token (tenants' patterns apply)
        principal = authenticator(config).authenticate(cfg.token, clock())
        if principal is None:
            raise ConfigError("mqtt.token", "is not one of server.tokens nor a tenant's token")
        self.principal = principal
        self.host, self.port, self.tls = mqtt_address(cfg.url)
        self.client_id = cfg.client_id or f"framebridge-{config.server.node}"
        self.hub = hub
        self.buses = buses
        self.clock = clock
        self.backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s, rng=rng or random.Random())
        specs = device_specs(config, buses)
        refresh = min((s.expire_after_s for s in specs if s.expire_after_s > 0), default=0.0)
        self.core = MqttCore(
            specs,
            prefix=cfg.prefix,
            discovery_prefix=cfg.discovery_prefix,
            discovery=cfg.discovery,
            qos=cfg.qos,
            retain=cfg.retain,
            refresh_s=refresh / 3,
        )
        r = metrics.registry
        self.published = Counter("framebridge_mqtt_published", "MQTT messages sent", registry=r)
        self.commands = Counter(
            "framebridge_mqtt_commands", "MQTT /set commands by outcome", ["outcome"], registry=r
        )
        self.connects = Counter("framebridge_mqtt_connects", "Broker connections made", registry=r)
        self.connected_gauge = Gauge(
            "framebridge_mqtt_connected", "1 while the broker is connected", registry=r
        )
        self._pending: dict[str, Publish] = {}
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()  # set when everything queued was handed to the client
        self.idle.set()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = asyncio.Event()  # set while connected (tests and health may wait on it)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Attach to the hub and connect in the background; never waits for the broker."""
        for owner in self.buses.values():
            for addr, dev in owner.book.devices.items():
                self.core.seed(owner.name, addr, dev.online, dev.identity or {})
            self.core.bus_up[owner.name] = owner.up
        self.hub.broker.attach(self._receive)
        self._task = asyncio.create_task(self._run(), name="mqtt")

    async def stop(self) -> None:
        """Say offline (the will would say it too, but only after the keepalive) and close."""
        if self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(ValueError):
            self.hub.broker.detach(self._receive)
        client = self._client
        if client is not None:
            with contextlib.suppress(TimeoutError):  # what is queued goes out first (bounded)
                await asyncio.wait_for(self.idle.wait(), 2.0)
            msg = self.core.offline_message()
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await client.publish(msg.topic, msg.payload, msg.qos, msg.retain, timeout=2.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the hub → MQTT ----------------------------------------------------------------------

    def _receive(self, stamped: Stamped) -> None:
        """The hub's broker receiver: called for every bus message, in the publisher's step."""
        text = stamped.text
        if not any(key in text for key in _INTERESTING):
            return  # polls, plain frames: nothing to publish (and no JSON parse)
        try:
            out = self.core.bus_message(stamped.bus, json.loads(text), self.clock())
        except Exception:  # MQTT must never break a bus's publish
            log.exception("event=mqtt_core_error bus=%s", stamped.bus)
            return
        self._queue(out)

    def _queue(self, messages: list[Publish]) -> None:
        if not messages or self._client is None:
            return  # disconnected: the core has the latest state; reconnect sends it all
        pending = self._pending
        for msg in messages:
            pending.pop(msg.topic, None)  # the latest goes to the end: per-topic order holds
            pending[msg.topic] = msg
        self.idle.clear()
        self._wake.set()

    # -- the connection ----------------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=self.cfg.ca_file)

    def _client_for(self) -> aiomqtt.Client:
        will = self.core.offline_message()
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            username=self.cfg.username,
            password=self.cfg.password,
            will=aiomqtt.Will(will.topic, will.payload, will.qos, will.retain),
            keepalive=self.cfg.keepalive_s,
            tls_context=self._tls(),
            timeout=10.0,
            logger=_client_log,
        )
        client.pending_calls_threshold = 2 * _BATCH  # a batch in flight is expected, not a leak
        return client

    async def _run(self) -> None:
        while True:
            try:
                async with self._client_for() as client:
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                log.warning("event=mqtt_down broker=%s:%s error=%s", self.host, self.port, exc)
            except OSError as exc:  # TLS set-up, name resolution
                log.warning("event=mqtt_down broker=%s:%s error=%s", self.host, self.port, exc)
            finally:
                self._disconnected()
            await asyncio.sleep(self.backoff.next_delay())  # backoff, not synchronisation

    async def _session(self, client: aiomqtt.Client) -> None:
        core, qos = self.core, self.cfg.qos
        await client.subscribe(core.retained_list_topic, qos)  # the old list comes back first
        await client.subscribe(core.command_filter, qos)
        if self.cfg.discovery:
            await client.subscribe(core.ha_status_topic, qos)
        self._client = client
        self.backoff.reset()
        self.connects.inc()
        self.connected_gauge.set(1)
        self.connected.set()
        log.info("event=mqtt_up broker=%s:%s client_id=%s", self.host, self.port, self.client_id)
        self._pending.clear()
        self._queue(core.online_messages())
        tasks = {
            asyncio.create_task(self._send(client), name="mqtt-send"),
            asyncio.create_task(self._listen(client), name="mqtt-listen"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc
        raise aiomqtt.MqttError("the connection ended")

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                self._incoming(str(message.topic), _payload(message.payload))
            except Exception:  # a bug here must not drop the connection (or the bridge)
                log.exception("event=mqtt_incoming_error topic=%.120r", str(message.topic))

    def _disconnected(self) -> None:
        if self._client is not None:
            self._client = None
            self.connected_gauge.set(0)
            self.connected.clear()
        self._pending.clear()
        self.idle.set()

    async def _send(self, client: aiomqtt.Client) -> None:
        pending = self._pending
        while True:
            await self._wake.wait()
            self._wake.clear()
            while pending:
                batch = []
                for topic in list(pending)[:_BATCH]:
                    batch.append(pending.pop(topic))
                # concurrently: paho queues the whole batch and writes it in one loop turn
                # (one publish at a time costs a loop turn and a writer (un)registration each)
                await asyncio.gather(
                    *(
                        client.publish(msg.topic, msg.payload or None, msg.qos, msg.retain)
                        for msg in batch
                    )
                )
                self.published.inc(len(batch))
            self.idle.set()

    # -- MQTT → the buses --------------------------------------------------------------------

    def _incoming(self, topic: str, payload: bytes) -> None:
        core = self.core
        if topic == core.retained_list_topic:
            self._queue(core.stale_messages(payload))
        elif topic == core.ha_status_topic:
            self._queue(core.ha_status(payload))
        else:
            self.command(topic, payload)

    def command(self, topic: str, payload: bytes) -> asyncio.Future[dict[str, Any]] | None:
        """A ``/set`` message → a request on its bus (None when refused before that)."""
        try:
            cmd = self.core.command(topic, payload)
        except CommandRefused as exc:
            self._refused(exc.reason, topic, exc.message)
            return None
        if not self.principal.may_request(cmd.bus, cmd.addr):
            self._refused("forbidden", topic, f"{self.principal.name} may not write here")
            return None
        owner = self.buses.get(cmd.bus)
        if owner is None:
            self._refused("unknown_topic", topic, f"no bus {cmd.bus!r}")
            return None
        request = c.Request(cmd.bus, cmd.addr, cmd.cmd, args=cmd.args)
        future = owner.submit(request, client=COMMAND_CLIENT)
        future.add_done_callback(lambda fut: self._written(cmd, topic, fut))
        return future

    def _written(self, cmd: WriteCommand, topic: str, fut: asyncio.Future[dict[str, Any]]) -> None:
        if fut.cancelled():
            return
        result = fut.result()
        if result.get("ok"):
            self.commands.labels("ok").inc()
            log.info("event=mqtt_write topic=%s value=%s", topic, cmd.value)
            self._queue(self.core.written(cmd, self.clock()))
            return
        error = result.get("error") or {}
        self._refused(str(error.get("code", "error")), topic, str(error.get("message", "")))

    def _refused(self, reason: str, topic: str, message: str) -> None:
        self.commands.labels(reason).inc()
        log.warning(
            "event=mqtt_command_refused reason=%s topic=%.120r error=%s", reason, topic, message
        )


def _payload(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode("utf-8", "surrogatepass")
