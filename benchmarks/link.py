"""Link benchmark: AsyncMaster vs pymodbus' async serial client, READ 10 registers over a pty.

Both peers run the same way in the same run: a socat pty pair (``pty,raw,echo=0``), the device
and the master in this one process and event loop, no pacing (no baud-rate delays), one request
at a time. framebridge's device is a :class:`~frames.slave.Slave` behind
:class:`~frames.io.AsyncSlavePort`; pymodbus' is its own ``ModbusSerialServer`` (RTU).

Figures: transactions/s (wall), CPU µs per transaction (process time, both ends together),
round-trip p50/p99, and the success rate with 1% of framebridge replies corrupted. Each figure
is the median of ``--rounds`` runs, peers alternating, and the ratio is taken within the run.

    .venv/bin/python benchmarks/link.py [--rounds 5] [--count 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frames.io import AsyncMaster, AsyncSlavePort
from frames.slave import Request, Slave

REGS = list(range(100, 200))


@dataclass
class Result:
    tps: float
    cpu_us: float
    p50_ms: float
    p99_ms: float
    success: float


@contextlib.asynccontextmanager
async def socat_pair() -> AsyncIterator[tuple[str, str]]:
    tmp = Path(tempfile.mkdtemp(prefix="fb-bench-"))
    a, b = tmp / "a", tmp / "b"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 5
        while not (a.exists() and b.exists()):
            if time.monotonic() > end:
                raise RuntimeError("socat did not start")
            await asyncio.sleep(0.01)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)
        for p in (a, b):
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            tmp.rmdir()


async def measure(call: Callable[[], Awaitable[Any]], count: int) -> Result:
    for _ in range(min(200, count)):  # warm up
        await call()
    lat: list[float] = []
    ok = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        try:
            await call()
            ok += 1
        except Exception:
            pass
        lat.append(time.perf_counter() - t0)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    qs = statistics.quantiles(lat, n=100)
    return Result(count / wall, cpu / count * 1e6, qs[49] * 1e3, qs[98] * 1e3, ok / count)


def device() -> Slave:
    slave = Slave(1)

    def read(req: Request) -> dict[str, Any]:
        assert req.fields is not None
        s = req.fields["start"]
        return {"values": REGS[s : s + req.fields["count"]]}

    slave.add_handler("read_regs", read)
    return slave


async def run_framebridge(count: int, corrupt: float, seed: int) -> Result:
    rng = random.Random(seed)

    def damage(out: bytes) -> bytes:
        if corrupt and rng.random() < corrupt:
            i = rng.randrange(1, len(out))
            return out[:i] + bytes([out[i] ^ 0x55]) + out[i + 1 :]
        return out

    expected = REGS[:10]
    async with (
        socat_pair() as (a, b),
        AsyncSlavePort(device(), url=a, reply_filter=damage),
        AsyncMaster(b, gap=0.0, timeout=0.25, retries=3, reconnect=False) as m,
    ):

        async def call() -> None:
            if await m.read_registers(1, 0, 10) != expected:
                raise AssertionError("wrong values")

        return await measure(call, count)


async def run_pymodbus(count: int) -> Result:
    from pymodbus.client import AsyncModbusSerialClient
    from pymodbus.datastore import (
        ModbusDeviceContext,
        ModbusSequentialDataBlock,
        ModbusServerContext,
    )
    from pymodbus.server import ModbusSerialServer

    store = ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, REGS))  # type: ignore[no-untyped-call]
    context = ModbusServerContext(devices={1: store}, single=False)
    async with socat_pair() as (a, b):
        server = ModbusSerialServer(context, port=a, baudrate=115200)
        await server.serve_forever(background=True)
        client = AsyncModbusSerialClient(b, baudrate=115200, timeout=1, retries=3)
        try:
            if not await client.connect():
                raise RuntimeError("pymodbus client did not connect")

            async def call() -> None:
                rr = await client.read_holding_registers(0, count=10, device_id=1)
                if rr.isError() or len(rr.registers) != 10:
                    raise AssertionError("bad pymodbus reply")

            return await measure(call, count)
        finally:
            client.close()
            await server.shutdown()  # type: ignore[no-untyped-call]


def med(results: list[Result], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in results))


async def main_async(rounds: int, count: int) -> None:
    ours, peer, noisy = [], [], []
    for i in range(rounds):
        ours.append(await run_framebridge(count, 0.0, i))
        peer.append(await run_pymodbus(max(200, count // 2)))
        noisy.append(await run_framebridge(count, 0.01, i))
    rows = [
        ("framebridge AsyncMaster", ours),
        ("pymodbus async RTU", peer),
        ("framebridge, 1% corrupt", noisy),
    ]
    print(f"READ 10 registers over a socat pty pair, no pacing; median of {rounds} rounds")
    print(f"{'peer':<26}{'tx/s':>9}{'CPU µs/tx':>11}{'p50 ms':>9}{'p99 ms':>9}{'success':>10}")
    for name, rs in rows:
        print(
            f"{name:<26}{med(rs, 'tps'):>9.0f}{med(rs, 'cpu_us'):>11.0f}"
            f"{med(rs, 'p50_ms'):>9.3f}{med(rs, 'p99_ms'):>9.3f}{med(rs, 'success'):>10.4%}"
        )
    ratios = [o.tps / p.tps for o, p in zip(ours, peer, strict=True)]
    cpu = [p.cpu_us / o.cpu_us for o, p in zip(ours, peer, strict=True)]
    print(
        f"throughput ratio framebridge/pymodbus: median {statistics.median(ratios):.2f}x "
        f"(per round: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(f"CPU-per-transaction ratio pymodbus/framebridge: median {statistics.median(cpu):.2f}x")
    print(f"success with 1% corrupted replies: min {min(r.success for r in noisy):.4%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("PYTHONASYNCIODEBUG", "0")
    asyncio.run(main_async(args.rounds, args.count))


if __name__ == "__main__":
    main()
