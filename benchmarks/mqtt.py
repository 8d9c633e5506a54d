"""MQTT benchmark: register values published per CPU-second of the bridge process.

The whole path a polled value takes after the bus owner decoded it: ``hub.publish`` (numbered,
serialized once, kept), the hub's broker hands it to :class:`bridge.mqtt.MqttBridge`, which
parses it, asks :class:`bridge.mqtt_core.MqttCore` what changed, and sends each value with
aiomqtt to a real mosquitto (started here on a free port, never the machine's own). No serial
line: read replies are published as a bus owner would publish them, with every value changed
each round so that nothing is coalesced away, and each round waits until the adapter has sent
everything (so the figure is values *sent*, not queued).

    .venv/bin/python benchmarks/mqtt.py                  # 50 devices x 9 registers, QoS 0
    .venv/bin/python benchmarks/mqtt.py --qos 1 --rounds 100

The bridge's CPU (``time.process_time``) over the run is divided into the values sent; the
broker's CPU (from /proc) is reported apart. Every wait is bounded (``--timeout``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks/bridge.py is named like the package it measures: keep this folder off the path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bridge.buses import BusOwner  # noqa: E402
from bridge.config import (  # noqa: E402
    BridgeConfig,
    BusConfig,
    DeviceConfig,
    MqttConfig,
    PollConfig,
)
from bridge.fanout import InMemoryHub  # noqa: E402
from bridge.history import make_epoch  # noqa: E402
from bridge.metrics import BridgeMetrics  # noqa: E402
from bridge.mqtt import MqttBridge  # noqa: E402
from frames.devicemap import load_device_map  # noqa: E402
from tests.servers import mosquitto_server  # noqa: E402


def _cpu_seconds(pid: int) -> float:
    """utime + stime of another process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reply(addr: int, start: int, words: list[int], named: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "frame",
        "ts": time.time(),
        "addr": addr,
        "cmd": 3,
        "dir": "rx",
        "data": "00",
        "fields": {"count": len(words), "values": words, "named": named},
    }


async def run(args: argparse.Namespace, url: str, broker_pid: int) -> dict[str, Any]:
    device_map = load_device_map(args.profile)
    bus = BusConfig(
        "bus0",
        "socket://127.0.0.1:9",  # never opened: the benchmark publishes what a poll would
        devices=tuple(DeviceConfig(a, args.profile) for a in range(1, args.devices + 1)),
        polls=(PollConfig("read_regs", interval_s=1.0),),
    )
    config = BridgeConfig(buses=(bus,), mqtt=MqttConfig(url=url, qos=args.qos))
    hub = InMemoryHub(history_size=1024)
    hub.add_bus("bus0", make_epoch(time.time(), 0))
    metrics = BridgeMetrics()
    owner = BusOwner(bus, hub, metrics)
    adapter = MqttBridge(config, hub, {"bus0": owner}, metrics)
    await adapter.start()
    await asyncio.wait_for(adapter.connected.wait(), args.timeout)
    await _drain(adapter, args.timeout)
    span = device_map.span()
    assert span is not None
    start, count = span
    sent0 = adapter.published._value.get()
    cpu0, wall0, broker0 = time.process_time(), time.perf_counter(), _cpu_seconds(broker_pid)
    values = 0
    for n in range(args.rounds):
        for addr in range(1, args.devices + 1):
            words = [(n * 7 + addr + i) % 1000 for i in range(count)]
            named = device_map.decode(start, words)
            values += len(named)
            hub.publish("bus0", _reply(addr, start, words, named), time.time())
        await _drain(adapter, args.timeout)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    broker_cpu = _cpu_seconds(broker_pid) - broker0
    sent = adapter.published._value.get() - sent0
    await adapter.stop()
    return {
        "devices": args.devices,
        "registers_per_device": len(device_map.registers),
        "rounds": args.rounds,
        "qos": args.qos,
        "values_decoded": values,
        "messages_sent": int(sent),
        "bridge_cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "broker_cpu_s": round(broker_cpu, 3),
        "messages_per_cpu_s": round(sent / cpu) if cpu else None,
        "us_per_message": round(cpu / sent * 1e6, 1) if sent else None,
    }


async def _drain(adapter: MqttBridge, timeout: float) -> None:
    """Until the adapter has handed every pending message to the client (bounded)."""
    await asyncio.wait_for(adapter.idle.wait(), timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--profile", default="io_board")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--qos", type=int, default=0, choices=(0, 1, 2))
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    with mosquitto_server() as broker:
        assert broker.proc is not None
        result = asyncio.run(run(args, broker.url, broker.proc.pid))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
