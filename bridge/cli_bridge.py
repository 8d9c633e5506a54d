"""``framebridge bridge`` and ``framebridge demo``.

``demo`` is the README's first command: simulated devices on a pseudo-terminal and a bridge
polling them, nothing to install or plug in. Both run until SIGTERM/SIGINT (or ``--duration``)
and then stop gracefully, exiting 0, so service managers and tests see a clean stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from .config import (
    BridgeConfig,
    BusConfig,
    DeviceConfig,
    Limits,
    MqttConfig,
    PollConfig,
    ServerConfig,
    load_config,
    parse_listen,
    require_positive,
)
from .errors import BridgeError

log = logging.getLogger("bridge.cli")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def _serve(
    config: BridgeConfig, listen: tuple[str, int] | None, duration: float | None
) -> int:
    from .app import Bridge

    bridge = Bridge(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    host, port = listen if listen is not None else (None, None)
    try:
        try:
            await bridge.start(host, port)
        except OSError as exc:  # the listen address is taken or not ours
            where = (
                f"{host or config.server.host}:{port if port is not None else config.server.port}"
            )
            raise BridgeError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        _out(f"websocket: {bridge.ws_url}")
        _out(f"dashboard: {bridge.http_url}/")
        _out(f"health:    {bridge.http_url}/healthz")
        _out(f"metrics:   {bridge.http_url}/metrics")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        await bridge.stop()
    return 0


def cmd_bridge(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        listen = parse_listen(args.listen) if args.listen else None
    except BridgeError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    try:
        return asyncio.run(_serve(config, listen, args.duration))
    except BridgeError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


async def _demo(args: argparse.Namespace) -> int:
    from firmware_sim.bus import SimulatedBus

    host, port = parse_listen(args.listen)
    # the flags stand for config keys: the config's rule, so `--interval 0` is refused too
    require_positive("demo --interval (poll interval_s)", args.interval)
    require_positive("demo --heartbeat (limits.heartbeat_s)", args.heartbeat)
    async with SimulatedBus(count=args.devices, profile=args.profile, seed=args.seed) as sim:
        _out(f"simulator: {args.devices} {args.profile} device(s) on {sim.url}")
        bus = BusConfig(
            name="bus0",
            url=sim.url,
            timeout_s=0.2,
            retries=1,
            devices=tuple(DeviceConfig(a, args.profile) for a in sorted(sim.devices)),
            polls=(PollConfig("read_regs", interval_s=args.interval),),
        )
        config = BridgeConfig(
            server=ServerConfig(host=host, port=port, node="demo"),
            limits=Limits(heartbeat_s=args.heartbeat),
            buses=(bus,),
            mqtt=_demo_mqtt(args.mqtt),
        )
        if config.mqtt is not None:
            _out(f"mqtt:      {config.mqtt.url} (topics {config.mqtt.prefix}/bus0/...)")
        return await _serve(config, (host, port), args.duration)


def _demo_mqtt(url: str | None) -> MqttConfig | None:
    """``demo --mqtt URL``: the ``[mqtt]`` table with only ``url`` set (checked like it)."""
    if url is None:
        return None
    from .config import parse_config

    return parse_config({"mqtt": {"url": url}}).mqtt


def cmd_demo(args: argparse.Namespace) -> int:
    from firmware_sim.errors import SimError

    try:
        return asyncio.run(_demo(args))
    except (BridgeError, SimError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "bridge", help="serve serial buses to WebSocket clients (see docs/bridge.md)"
    )
    p.add_argument("--config", required=True, help="TOML file (examples/bridge.toml)")
    p.add_argument("--listen", help="HOST:PORT, overrides server.listen")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.set_defaults(func=cmd_bridge, log_base=logging.INFO)

    p = sub.add_parser("demo", help="simulated devices on a pty and a bridge polling them")
    p.add_argument("--listen", default="127.0.0.1:8765", help="HOST:PORT (port 0: any free)")
    p.add_argument("--devices", type=int, default=3, help="simulated devices (1..247)")
    p.add_argument("--profile", default="thermo", help="device profile (name or .toml path)")
    p.add_argument("--interval", type=float, default=0.5, help="poll interval per device, s")
    p.add_argument("--heartbeat", type=float, default=30.0, help="heartbeat_s for clients")
    p.add_argument("--seed", type=int, default=0, help="simulator random seed")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument(
        "--mqtt", metavar="URL", help="also publish to this MQTT broker (mqtt://HOST:PORT)"
    )
    p.set_defaults(func=cmd_demo, log_base=logging.INFO)
