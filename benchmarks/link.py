"""Link benchmark: AsyncMaster vs pymodbus' async serial client, READ 10 registers over a pty.

Both peers run under the same conditions, in the same run:

* **One kernel hop.** A fresh ``os.openpty()`` pair per peer and round, both ends raw: the
  master opens the pty's path (``/dev/pts/N``) through pyserial, as it would a real port; the
  device serves the controlling side (an fd with no path). No socat in between.
* **Device in its own process.** The device runs in a child process (this script with
  ``--serve``), so the two peers use both cores and the master's CPU time is measured alone,
  with :func:`time.process_time` in the master's process. The device's CPU per transaction is
  reported too (measured in the child while it serves, warm-up included), for information.
  framebridge's device is a :class:`~frames.slave.Slave` behind
  :class:`~frames.io.AsyncSlavePort`; pymodbus' is its own ``ModbusSerialServer`` (RTU), handed
  the same kind of fd through a tiny pyserial URL handler (``fd://N``).
* **No pacing.** A pty has no baud rate, so no inter-frame gap is needed and none is waited for:
  framebridge's master gets ``gap=0`` (its default would be 3.5 character times at the nominal
  115200 baud, ~0.3 ms, which measures a timer, not the code); pymodbus' async client waits for
  no gap at all, so both send the next request as soon as the last reply is in. The nominal baud
  rate (115200) is passed to both and ignored by the pty.
* One request at a time. In a round every peer's device and master are up at once and the
  peers take turns in bursts (``--burst`` transactions, rotating order) until each has done
  ``--count``, so a busy spell on the (shared, noisy) machine hits all of them alike. Each figure
  is the median over ``--rounds`` rounds; the ratios are taken round by round.

The third row corrupts 1% of framebridge's replies (one byte flipped, seeded) in the device; the
master must still get every answer (its early retry resends as soon as the damage is seen).

    .venv/bin/python benchmarks/link.py [--rounds 5] [--count 3000] [--burst 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import random
import select
import statistics
import subprocess
import sys
import time
import tty
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import serial

from frames.io import AsyncMaster, AsyncSlavePort
from frames.master import MasterStats
from frames.slave import Request, Slave

REGS = list(range(100, 200))
EXPECTED = REGS[:10]
BAUD = 115200  # nominal: a pty ignores it


@dataclass
class Result:
    tps: float
    cpu_us: float  # the master's process, per transaction
    device_cpu_us: float  # the device's process, per transaction (warm-up included)
    p50_ms: float
    p99_ms: float
    success: float


# -- the pty and the device process -----------------------------------------------------------


@contextlib.contextmanager
def device_process(kind: str, corrupt: float, seed: int) -> Iterator[tuple[str, list[float]]]:
    """A fresh pty with a device serving its controlling side in a child process; yields the
    path the master opens and a list that receives the child's serving CPU seconds at the end."""
    ctrl, side = os.openpty()
    tty.setraw(ctrl)
    tty.setraw(side)
    path = os.ttyname(side)
    cmd = [sys.executable, os.path.abspath(__file__), "--serve", kind, "--fd", str(ctrl)]
    cmd += ["--corrupt", str(corrupt), "--seed", str(seed)]
    proc = subprocess.Popen(cmd, pass_fds=[ctrl], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    os.close(ctrl)
    cpu: list[float] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        if not ready or proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"{kind} device did not start")
        yield path, cpu
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # EOF: the device stops and reports its CPU time
        if proc.stdout is not None:
            with contextlib.suppress(ValueError, IndexError):
                cpu.append(float(proc.stdout.read().split()[-1]))
        proc.wait(10)
        os.close(side)


async def _until_stdin_eof() -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)

    def readable() -> None:
        with contextlib.suppress(BlockingIOError):
            if not os.read(fd, 4096) and not done.done():
                done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)


async def _serve_until_stdin_eof() -> None:
    """Say ``ready``, serve until stdin closes, then print the CPU seconds spent serving (the
    start-up and imports excluded)."""
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    cpu0 = time.process_time()
    await _until_stdin_eof()
    sys.stdout.write(f"cpu {time.process_time() - cpu0}\n")
    sys.stdout.flush()


def fb_device() -> Slave:
    slave = Slave(1)

    def read(req: Request) -> dict[str, Any]:
        assert req.fields is not None
        s = req.fields["start"]
        return {"values": REGS[s : s + req.fields["count"]]}

    slave.add_handler("read_regs", read)
    return slave


async def serve_framebridge(fd: int, corrupt: float, seed: int) -> None:
    rng = random.Random(seed)

    def damage(out: bytes) -> bytes:
        if corrupt and rng.random() < corrupt:
            i = rng.randrange(1, len(out))
            return out[:i] + bytes([out[i] ^ 0x55]) + out[i + 1 :]
        return out

    async with AsyncSlavePort(fb_device(), fd=fd, reply_filter=damage):
        await _serve_until_stdin_eof()


class _FdSerial(serial.Serial):  # type: ignore[misc]
    """pyserial over an fd that is already open (``fd://N``): the controlling side of a pty
    has no path to open. Only what pymodbus' serial transport uses is set up."""

    def open(self) -> None:
        self.fd = os.dup(int(self.portstr.split("://", 1)[1]))
        os.set_blocking(self.fd, False)
        self.pipe_abort_read_r, self.pipe_abort_read_w = os.pipe()
        self.pipe_abort_write_r, self.pipe_abort_write_w = os.pipe()
        self.is_open = True


def _register_fd_urls() -> None:
    package = types.ModuleType("_fb_bench_urls")
    package.__path__ = []
    handler = types.ModuleType("_fb_bench_urls.protocol_fd")
    handler.Serial = _FdSerial  # type: ignore[attr-defined]
    sys.modules[package.__name__] = package
    sys.modules[handler.__name__] = handler
    serial.protocol_handler_packages.append(package.__name__)


async def serve_pymodbus(fd: int) -> None:
    from pymodbus.datastore import (
        ModbusDeviceContext,
        ModbusSequentialDataBlock,
        ModbusServerContext,
    )
    from pymodbus.server import ModbusSerialServer

    _register_fd_urls()
    store = ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, REGS))  # type: ignore[no-untyped-call]
    context = ModbusServerContext(devices={1: store}, single=False)
    server = ModbusSerialServer(context, port=f"fd://{fd}", baudrate=BAUD)
    await server.serve_forever(background=True)
    try:
        await _serve_until_stdin_eof()
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


# -- the masters ----------------------------------------------------------------------------

Call = Callable[[], Awaitable[bool]]
WARM_UP = 300


@dataclass
class Tally:
    """One peer's bursts in one round, added up."""

    lat: list[float] = field(default_factory=list)
    ok: int = 0
    wall: float = 0.0
    cpu: float = 0.0


async def burst(call: Call, count: int, tally: Tally) -> None:
    lat = tally.lat
    ok = 0
    clock = time.perf_counter
    cpu0, wall0 = time.process_time(), clock()
    for _ in range(count):
        t0 = clock()
        with contextlib.suppress(Exception):  # a failure counts against the success rate
            ok += await call()
        lat.append(clock() - t0)
    tally.wall += clock() - wall0
    tally.cpu += time.process_time() - cpu0
    tally.ok += ok


@contextlib.asynccontextmanager
async def framebridge_peer(
    corrupt: float, seed: int, stats: list[MasterStats]
) -> AsyncIterator[tuple[Call, list[float]]]:
    with device_process("framebridge", corrupt, seed) as (path, device_cpu):
        async with AsyncMaster(path, baudrate=BAUD, gap=0.0, timeout=0.25, retries=3) as m:

            async def call() -> bool:
                return await m.read_registers(1, 0, 10) == EXPECTED

            yield call, device_cpu
            stats.append(m.stats)


@contextlib.asynccontextmanager
async def pymodbus_peer() -> AsyncIterator[tuple[Call, list[float]]]:
    from pymodbus.client import AsyncModbusSerialClient

    with device_process("pymodbus", 0.0, 0) as (path, device_cpu):
        client = AsyncModbusSerialClient(path, baudrate=BAUD, timeout=1, retries=3)
        try:
            if not await client.connect():
                raise RuntimeError("pymodbus client did not connect")

            async def call() -> bool:
                rr = await client.read_holding_registers(0, count=10, device_id=1)
                return not rr.isError() and list(rr.registers) == EXPECTED

            yield call, device_cpu
        finally:
            client.close()


PEERS = ("framebridge AsyncMaster", "pymodbus async RTU", "framebridge, 1% corrupted")


async def run_round(
    count: int, burst_size: int, seed: int, noisy_stats: list[MasterStats]
) -> dict[str, Result]:
    """Every peer's master and device up at once, then ``count`` transactions each in bursts of
    ``burst_size``, the peers taking turns (in a rotating order), so that whatever else the
    machine is doing hits them alike."""
    tallies = {name: Tally() for name in PEERS}
    cpus: dict[str, list[float]] = {}
    async with contextlib.AsyncExitStack() as stack:
        calls: dict[str, Call] = {}
        for name, peer in zip(
            PEERS,
            (
                framebridge_peer(0.0, seed, []),
                pymodbus_peer(),
                framebridge_peer(0.01, seed, noisy_stats),
            ),
            strict=True,
        ):
            calls[name], cpus[name] = await stack.enter_async_context(peer)
        for call in calls.values():
            for _ in range(WARM_UP):
                await call()
        gc.collect()
        done = 0
        turn = 0
        while done < count:
            n = min(burst_size, count - done)
            order = PEERS[turn % 3 :] + PEERS[: turn % 3]
            for name in order:
                await burst(calls[name], n, tallies[name])
            done += n
            turn += 1
    results = {}
    for name, t in tallies.items():
        qs = statistics.quantiles(t.lat, n=100)
        results[name] = Result(
            tps=count / t.wall,
            cpu_us=t.cpu / count * 1e6,
            device_cpu_us=cpus[name][0] / (count + WARM_UP) * 1e6 if cpus[name] else float("nan"),
            p50_ms=qs[49] * 1e3,
            p99_ms=qs[98] * 1e3,
            success=t.ok / count,
        )
    return results


def med(results: list[Result], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in results))


async def main_async(rounds: int, count: int, burst_size: int) -> None:
    runs: dict[str, list[Result]] = {name: [] for name in PEERS}
    noisy_stats: list[MasterStats] = []
    for i in range(rounds):
        for name, result in (await run_round(count, burst_size, i, noisy_stats)).items():
            runs[name].append(result)
        print(
            f"round {i + 1}: "
            + ", ".join(f"{name} {rs[-1].tps:.0f} tx/s" for name, rs in runs.items()),
            file=sys.stderr,
        )
    ours, peer, noisy = (runs[name] for name in PEERS)
    print(
        f"READ 10 registers over an os.openpty() pair, device in a child process, no gap (a pty "
        f"has no baud rate); {count} transactions per peer and round in bursts of {burst_size}, "
        f"peers taking turns; median of {rounds} rounds\n"
    )
    print("| run | tx/s | p50 ms | p99 ms | master CPU µs/tx | device CPU µs/tx | success |")
    print("|---|---|---|---|---|---|---|")
    for name, rs in runs.items():
        print(
            f"| {name} | {med(rs, 'tps'):.0f} | {med(rs, 'p50_ms'):.3f} | {med(rs, 'p99_ms'):.3f}"
            f" | {med(rs, 'cpu_us'):.0f} | {med(rs, 'device_cpu_us'):.0f}"
            f" | {min(r.success for r in rs):.2%} |"
        )
    ratios = [o.tps / p.tps for o, p in zip(ours, peer, strict=True)]
    cpu = [p.cpu_us / o.cpu_us for o, p in zip(ours, peer, strict=True)]
    print(
        f"\nthroughput framebridge/pymodbus: median {statistics.median(ratios):.2f}x "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(
        f"master CPU per transaction pymodbus/framebridge: median {statistics.median(cpu):.2f}x "
        f"(rounds: {', '.join(f'{r:.2f}' for r in cpu)})"
    )
    print(
        f"success with 1% of replies corrupted: min {min(r.success for r in noisy):.3%} "
        f"(over all rounds the master saw {sum(st.crc_errors for st in noisy_stats)} CRC errors "
        f"and made {sum(st.retries for st in noisy_stats)} retries, "
        f"{sum(st.timeouts for st in noisy_stats)} timeouts)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=3000, help="transactions per peer and round")
    parser.add_argument("--burst", type=int, default=100, help="transactions per turn")
    parser.add_argument("--serve", choices=["framebridge", "pymodbus"], help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--corrupt", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.serve == "framebridge":
        asyncio.run(serve_framebridge(args.fd, args.corrupt, args.seed))
    elif args.serve == "pymodbus":
        asyncio.run(serve_pymodbus(args.fd))
    else:
        asyncio.run(main_async(args.rounds, args.count, args.burst))


if __name__ == "__main__":
    main()
