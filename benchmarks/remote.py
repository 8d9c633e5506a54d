"""Remote-port benchmark: ``rfc2217://`` vs ``socket://`` through the same ser2net, in one run.

READ 10 registers, one request at a time, as ``benchmarks/link.py`` does, with its device (a
:class:`~frames.slave.Slave` in a child process serving the controlling side of a fresh
``os.openpty()`` pair) and its turn-taking (every peer up at once, bursts of ``--burst``
transactions in rotating order, medians over ``--rounds``). The peers:

* ``pty direct``: AsyncMaster on the pty's path, no server: the reference without a network hop;
* ``socket:// (ser2net)``, ``rfc2217:// (ser2net)``: AsyncMaster, then the blocking Master,
  through one ser2net process (Debian's 4.x) with raw TCP and RFC 2217 connections, each on a
  pty of its own (a pty read by two connections would split the replies), loopback only.

ser2net's ``chardelay`` (on by default: it waits for a pause on the serial side before sending
what it read to the network, at least ``chardelay-min`` µs) is the biggest part of a hop's
latency; ``--chardelay off`` measures ser2net with it disabled. No gap (a pty has no baud
rate). Needs ``ser2net`` (scripts/setup-system.sh installs it).

    .venv/bin/python benchmarks/remote.py [--rounds 5] [--count 2000] [--burst 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import link

from frames.io import AsyncMaster, Master

KINDS = ("socket", "rfc2217")
CONFIG = """\
%YAML 1.1
---
connection: &{kind}
  accepter: {accepter},127.0.0.1,{port}
  connector: serialdev,{tty},115200n81,local
  options:
    kickolduser: true
{extra}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        return any(
            p[1] == want and p[3] == "0A" for p in (line.split() for line in f.readlines()[1:])
        )


@contextlib.contextmanager
def ser2net(
    ttys: dict[tuple[str, str], str], chardelay: bool
) -> Iterator[dict[tuple[str, str], str]]:
    """One ser2net serving ``ttys`` ((kind, mode) → pty path; a connection each, as a second
    client would kick the first off); yields (kind, mode) → URL."""
    exe = shutil.which("ser2net")
    if exe is None:
        raise SystemExit("ser2net is not installed (scripts/setup-system.sh installs it)")
    extra = "" if chardelay else "    chardelay: false\n"
    urls: dict[tuple[str, str], str] = {}
    parts = ["%YAML 1.1\n---\n"]
    for (kind, mode), tty in ttys.items():
        port = free_port()
        accepter = "telnet(rfc2217),tcp" if kind == "rfc2217" else "tcp"
        body = CONFIG.format(
            kind=f"{kind}_{mode}", accepter=accepter, port=port, tty=tty, extra=extra
        )
        parts.append(body.split("---\n", 1)[1])
        urls[kind, mode] = (
            f"rfc2217://127.0.0.1:{port}?ign_set_control"
            if kind == "rfc2217"
            else f"socket://127.0.0.1:{port}"
        )
    with tempfile.TemporaryDirectory(prefix="fb-remote-bench-") as tmp:
        config = Path(tmp) / "ser2net.yaml"
        config.write_text("".join(parts))
        proc = subprocess.Popen(
            [exe, "-n", "-u", "-c", str(config), "-P", str(Path(tmp) / "pid")],
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp) / "log", "wb"),  # noqa: SIM115 - the process keeps it
        )
        try:
            end = time.monotonic() + 10
            while not all(_listening(int(u.split(":")[2].split("?")[0])) for u in urls.values()):
                if time.monotonic() > end or proc.poll() is not None:
                    log = (Path(tmp) / "log").read_text(errors="replace")
                    raise RuntimeError(f"ser2net did not start: {log}")
                time.sleep(0.02)
            yield urls
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.asynccontextmanager
async def peers(chardelay: bool) -> AsyncIterator[dict[str, link.Call]]:
    async with contextlib.AsyncExitStack() as stack:
        direct, _ = stack.enter_context(link.device_process("framebridge", 0.0, 0))
        ttys = {
            (kind, mode): stack.enter_context(link.device_process("framebridge", 0.0, 0))[0]
            for kind in KINDS
            for mode in ("async", "sync")
        }
        urls = stack.enter_context(ser2net(ttys, chardelay))
        calls: dict[str, link.Call] = {}
        opts = {"baudrate": link.BAUD, "gap": 0.0, "timeout": 0.25, "retries": 3}

        def add_async(name: str, m: AsyncMaster) -> None:
            async def call() -> bool:
                return await m.read_registers(1, 0, 10) == link.EXPECTED

            calls[name] = call

        def add_sync(name: str, m: Master) -> None:
            async def call() -> bool:
                return m.read_registers(1, 0, 10) == link.EXPECTED

            calls[name] = call

        add_async("pty direct", await stack.enter_async_context(AsyncMaster(direct, **opts)))
        for kind in KINDS:
            m = await stack.enter_async_context(AsyncMaster(urls[kind, "async"], **opts))
            await m.wait_connected(10)
            add_async(f"{kind}:// (ser2net)", m)
        for kind in KINDS:
            sync = stack.enter_context(Master(urls[kind, "sync"], **opts))
            add_sync(f"{kind}:// (ser2net), sync Master", sync)
        yield calls


async def run_round(count: int, burst_size: int, chardelay: bool) -> dict[str, link.Result]:
    async with peers(chardelay) as calls:
        names = list(calls)
        tallies = {name: link.Tally() for name in names}
        for call in calls.values():
            for _ in range(link.WARM_UP // 3):
                await call()
        gc.collect()
        done = turn = 0
        while done < count:
            n = min(burst_size, count - done)
            k = turn % len(names)
            for name in names[k:] + names[:k]:
                await link.burst(calls[name], n, tallies[name])
            done += n
            turn += 1
    results = {}
    for name, t in tallies.items():
        qs = statistics.quantiles(t.lat, n=100)
        results[name] = link.Result(
            tps=count / t.wall,
            cpu_us=t.cpu / count * 1e6,
            device_cpu_us=float("nan"),
            p50_ms=qs[49] * 1e3,
            p99_ms=qs[98] * 1e3,
            success=t.ok / count,
        )
    return results


async def main_async(rounds: int, count: int, burst_size: int, chardelay: bool) -> None:
    runs: dict[str, list[link.Result]] = {}
    for i in range(rounds):
        for name, result in (await run_round(count, burst_size, chardelay)).items():
            runs.setdefault(name, []).append(result)
        print(
            f"round {i + 1}: " + ", ".join(f"{n} {rs[-1].tps:.0f} tx/s" for n, rs in runs.items()),
            file=sys.stderr,
        )
    print(
        f"READ 10 registers, device on a pty in a child process, no gap; ser2net "
        f"{'default chardelay' if chardelay else 'chardelay: false'}, loopback; {count} "
        f"transactions per peer and round in bursts of {burst_size}; median of {rounds} rounds\n"
    )
    print("| run | tx/s | p50 ms | p99 ms | master CPU µs/tx | success |")
    print("|---|---|---|---|---|---|")
    for name, rs in runs.items():
        print(
            f"| {name} | {link.med(rs, 'tps'):.0f} | {link.med(rs, 'p50_ms'):.3f} "
            f"| {link.med(rs, 'p99_ms'):.3f} | {link.med(rs, 'cpu_us'):.0f} "
            f"| {min(r.success for r in rs):.2%} |"
        )
    for suffix in ("", ", sync Master"):
        raw, rfc = runs[f"socket:// (ser2net){suffix}"], runs[f"rfc2217:// (ser2net){suffix}"]
        ratios = [s.tps / r.tps for s, r in zip(raw, rfc, strict=True)]
        lat = [r.p50_ms / s.p50_ms for s, r in zip(raw, rfc, strict=True)]
        print(
            f"\nsocket:// / rfc2217:// throughput{suffix or ', AsyncMaster'}: median "
            f"{statistics.median(ratios):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)}); "
            f"rfc2217:// / socket:// p50 latency: median {statistics.median(lat):.2f}x "
            f"(rounds: {', '.join(f'{x:.2f}' for x in lat)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=2000, help="transactions per peer and round")
    parser.add_argument("--burst", type=int, default=100, help="transactions per turn")
    parser.add_argument("--chardelay", choices=["on", "off"], default="on")
    args = parser.parse_args()
    asyncio.run(main_async(args.rounds, args.count, args.burst, args.chardelay == "on"))


if __name__ == "__main__":
    main()
