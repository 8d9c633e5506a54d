"""Bridge benchmark: memory per connection, fan-out CPU cost, latency, slow-client isolation.

Every figure is about the *bridge process*, measured from outside it (``/proc/PID``: RSS, and
utime + stime over the measured window), with the clients in other processes on loopback:

* **bulk clients** (``--role bulk``, two processes): raw non-blocking sockets that do the HTTP
  upgrade by hand, send ``hello`` + ``subscribe`` as masked text frames, wait for ``subscribed``
  and then read and discard bytes in large chunks every ``--bulk-poll-ms`` (healthy readers:
  the server never sees back-pressure from them; they count bytes). Stalled clients stop
  reading after ``subscribed`` (and have a small SO_RCVBUF, so their buffers fill quickly).
* **probe clients** (``--role probe``, one process): full ``websockets`` clients that parse
  every message and record latency = receive time - the message's ``ts``.

Two kinds of bridge process:

1. **synthetic** (``--role server``): a real :class:`~bridge.server.BridgeServer` and hub with
   no bus; on command it publishes synthetic frames into the hub as fast as possible (``burst``
   messages per event-loop turn) and waits until every client queue and transport buffer is
   empty. Used for RSS per connection and for the fan-out rate (deliveries per bridge
   CPU-second), interleaved with a naive loop (serialize once, then ``await ws.send(text)`` per
   client) and websockets' ``broadcast()`` on the same connections.
2. **real** (``framebridge bridge --config``): polling simulated devices (``framebridge sim
   --tcp``, its own process) at 100 frames/s (tx + rx). A frame's ``ts`` is stamped when it is
   written to / decoded from the port, so the latency is serial-frame-to-client.

    .venv/bin/python benchmarks/bridge.py                       # 10,000 clients; ~2 minutes
    .venv/bin/python benchmarks/bridge.py --clients 2000 --seconds 5   # quicker
    .venv/bin/python benchmarks/bridge.py --phases fanout --clients 2000 --rounds 3 --tenants

``--tenants`` adds, in the fan-out phase of the same run, a second synthetic bridge with two
tenants (one reading ``bus0/*``, one two devices by pattern), every tier quota on, and as many
clients (half per tenant), interleaved round by round with the no-auth one: the table gives the
ratio of their deliveries per bridge CPU-second.

The child roles live in ``_bridge_roles.py``. Every wait is bounded (``--timeout``), every child
is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file is named like the package it measures: keep its folder off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("_common", _HERE / "_common.py")
assert _spec is not None and _spec.loader is not None
_common = importlib.util.module_from_spec(_spec)
sys.modules["_common"] = _common  # dataclasses look their module up there
_spec.loader.exec_module(_common)
markdown_table, Child = _common.markdown_table, _common.Child
_spec = importlib.util.spec_from_file_location("_bridge_roles", _HERE / "_bridge_roles.py")
assert _spec is not None and _spec.loader is not None
roles = importlib.util.module_from_spec(_spec)
sys.modules["_bridge_roles"] = roles
_spec.loader.exec_module(roles)

CLK_TCK = os.sysconf("SC_CLK_TCK")
FRAMEBRIDGE = str(Path(sys.executable).with_name("framebridge"))


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# -- orchestration ---------------------------------------------------------------------------


def me(role: str, *extra: str) -> list[str]:
    return [sys.executable, __file__, "--role", role, *extra]


def spawn_bulk(
    args: argparse.Namespace,
    url: str,
    count: int,
    stall: int = 0,
    procs: int = 2,
    tokens: tuple[str, ...] = ("bench",),
) -> list[Child]:
    out = []
    per, extra = divmod(count, procs)
    stall_per, stall_extra = divmod(stall, procs)
    for k in range(procs):
        n = per + (k < extra)
        st = stall_per + (k < stall_extra)
        argv = me("bulk", "--url", url, "--count", str(n), "--stall-count", str(st))
        argv += ["--timeout", str(args.timeout), "--bulk-poll-ms", str(args.bulk_poll_ms)]
        argv += ["--tokens", ",".join(tokens)]
        out.append(Child(argv, args.timeout))
    for child in out:
        child.read()  # ready
    return out


def fanout_phase(args: argparse.Namespace, rows: list[list[str]]) -> None:
    server = Child(
        me("server", "--count", str(args.clients), "--timeout", str(args.timeout)), args.timeout
    )
    bulk: list[Child] = []
    tenants: Child | None = None
    try:
        url = server.read()["url"]
        time.sleep(0.5)
        server.send("collect")
        server.read()
        base = proc_rss_kib(server.pid)
        bulk = spawn_bulk(args, url, args.clients)
        time.sleep(1.0)
        server.send("collect")
        n = server.read()["clients"]
        assert n == args.clients, n
        rss = proc_rss_kib(server.pid)
        per = (rss - base) / n
        rows.append(
            [
                f"bridge RSS per connected, subscribed idle client ({n:,} clients)",
                f"{per:.1f} KiB (total {rss / 1024:.0f} MiB)",
                "<= 25 KiB",
                "met" if per <= 25 else "NOT met",
            ]
        )

        frames_per: dict[str, list[float]] = {}

        def run(name: str, cmd: str) -> float:
            cpu0 = proc_cpu(server.pid)
            server.send(cmd)
            res = server.read()
            cpu = proc_cpu(server.pid) - cpu0
            frames_per.setdefault(name, []).append(res["deliveries"] / max(res["frames"], 1))
            return res["deliveries"] / max(cpu, 1 / CLK_TCK)

        if args.tenants:  # the same run, the same clients' count, two tenants with quotas on
            argv = me("server", "--count", str(args.clients), "--timeout", str(args.timeout))
            tenants = Child([*argv, "--tenants"], args.timeout)
            t_url = tenants.read()["url"]
            bulk += spawn_bulk(args, t_url, args.clients, tokens=roles.TENANT_TOKENS)
            time.sleep(1.0)
            tenants.send("collect")
            assert tenants.read()["clients"] == args.clients

        def run_tenants(cmd: str) -> float:
            assert tenants is not None
            cpu0 = proc_cpu(tenants.pid)
            tenants.send(cmd)
            res = tenants.read()
            return res["deliveries"] / max(proc_cpu(tenants.pid) - cpu0, 1 / CLK_TCK)

        m = args.messages
        jobs = {
            "ours": f"fanout {m} {args.burst}",
            "ours1": f"fanout {max(1, m // 4)} 1",
            "naive": f"naive {max(1, m // 8)}",
            "broadcast": f"broadcast {max(1, m // 4)}",
        }
        rates: dict[str, list[float]] = {k: [] for k in jobs}
        if args.tenants:
            rates["tenants"] = []
        for r in range(args.rounds):  # interleaved: a noisy patch hits every job
            for name, cmd in jobs.items():
                if name == "ours" and args.tenants and r % 2:  # either goes first, in turn
                    rates["tenants"].append(run_tenants(cmd))
                rates[name].append(run(name, cmd))
                if name == "ours" and args.tenants and not r % 2:
                    rates["tenants"].append(run_tenants(cmd))
        med = {k: statistics.median(v) for k, v in rates.items()}
        if args.tenants:
            share = med["tenants"] / med["ours"]
            rows.append(
                [
                    f"fan-out with two tenants (ACL patterns, quotas) / no auth, same run "
                    f"({med['tenants'] / 1000:.0f}k vs {med['ours'] / 1000:.0f}k)",
                    f"{share:.2f}",
                    ">= 0.90",
                    "met" if share >= 0.9 else "NOT met",
                ]
            )
        ours, ours1, naive, bc = med["ours"], med["ours1"], med["naive"], med["broadcast"]
        fpm = statistics.median(frames_per["ours"])
        rows.append(
            [
                f"fan-out deliveries / bridge CPU-s ({n:,} clients, {args.burst} msgs per "
                f"loop turn, {fpm:.0f} msgs/frame)",
                f"{ours / 1000:.0f}k",
                ">= 400k",
                "met" if ours >= 400_000 else "NOT met",
            ]
        )
        rows.append(
            ["naive: serialize once, `await ws.send` per client", f"{naive / 1000:.0f}k", "", ""]
        )
        rows.append(
            [
                "fan-out vs naive (same run)",
                f"{ours / naive:.1f}x",
                ">= 2x",
                "met" if ours >= 2 * naive else "NOT met",
            ]
        )
        rows.append(["websockets `broadcast()` (reference)", f"{bc / 1000:.0f}k", "", ""])
        rows.append(
            [
                "fan-out, 1 msg per loop turn (no batching; reference)",
                f"{ours1 / 1000:.0f}k",
                "",
                "",
            ]
        )
        print(f"fan-out rates per round: {rates}", file=sys.stderr)
    finally:
        for child in bulk:
            child.stop()
        server.stop()
        if tenants is not None:
            tenants.stop()


BRIDGE_TOML = """
[server]
listen = "127.0.0.1:0"
[limits]
max_clients = {max_clients}
ping_interval_s = 300.0
ping_timeout_s = 300.0
[[bus]]
name = "bus0"
url = "{url}"
timeout_s = 0.2
{devices}
[[bus.poll]]
cmd = "read_regs"
interval_s = {interval}
"""


def latency_run(args: argparse.Namespace, stall: int) -> tuple[dict[str, Any], float]:
    """One real bridge polling simulated devices; returns the probes' figures and bridge CPU."""
    children: list[Child] = []
    sim = bridge = None
    try:
        sim = subprocess.Popen(
            [FRAMEBRIDGE, "sim", "--tcp", "127.0.0.1:0", "--devices", str(args.devices)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert sim.stdout is not None
        sim_url = sim.stdout.readline().split("\t")[0]
        assert sim_url.startswith("socket://"), sim_url
        interval = 2 * args.devices / args.rate  # tx + rx per poll
        devices = "\n".join(
            f'[[bus.device]]\naddr = {a}\nprofile = "thermo"' for a in range(1, args.devices + 1)
        )
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(
                BRIDGE_TOML.format(
                    max_clients=args.latency_clients + 100,
                    url=sim_url,
                    devices=devices,
                    interval=interval,
                )
            )
        bridge = subprocess.Popen(
            [FRAMEBRIDGE, "bridge", "--config", f.name, "--duration", str(args.timeout)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert bridge.stdout is not None
        line = bridge.stdout.readline()
        assert line.startswith("websocket:"), line
        url = line.split()[1]
        bulk_n = args.latency_clients - args.probes
        children += spawn_bulk(args, url, bulk_n, stall)
        probe = Child(
            me("probe", "--url", url, "--count", str(args.probes), "--timeout", str(args.timeout)),
            args.timeout,
        )
        children.append(probe)
        probe.read()
        time.sleep(1.0)
        cpu0 = proc_cpu(bridge.pid)
        probe.send("start")
        time.sleep(args.seconds)
        probe.send("stop")
        cpu = proc_cpu(bridge.pid) - cpu0
        res = probe.read()
        os.unlink(f.name)
        return res, cpu / args.seconds
    finally:
        for child in children:
            child.stop()
        for p in (bridge, sim):
            if p is not None:
                _common.stop_process(p)


def latency_phase(args: argparse.Namespace, rows: list[list[str]]) -> None:
    n = args.latency_clients
    stall = n // 10
    base: list[float] = []
    stalled: list[float] = []
    for _ in range(args.latency_rounds):  # interleaved, medians of the rounds' p99
        res, load = latency_run(args, 0)
        print(f"latency, no stall: {res} bridge CPU {load:.0%}", file=sys.stderr)
        base.append(res["p99_ms"])
        res2, load2 = latency_run(args, stall)
        print(f"latency, {stall} stalled: {res2} bridge CPU {load2:.0%}", file=sys.stderr)
        stalled.append(res2["p99_ms"])
    p99, p99s = statistics.median(base), statistics.median(stalled)
    fps = res["frames_per_s_per_client"]
    rows.append(
        [
            f"serial frame → client p99 ({n:,} subscribed clients, {fps:.0f} frames/s; bridge "
            f"CPU {load:.0%})",
            f"{p99:.1f} ms (p50 {res['p50_ms']:.1f} ms; rounds {min(base):.1f} to {max(base):.1f})",
            "<= 20 ms",
            "met" if p99 <= 20 else "NOT met",
        ]
    )
    ratio = p99s / p99
    rows.append(
        [
            f"same, {stall} of them ({stall * 100 // n}%) not reading: healthy clients' p99",
            f"{p99s:.1f} ms ({ratio:.2f}x; rounds {min(stalled):.1f} to {max(stalled):.1f})",
            "<= 1.5x",
            "met" if ratio <= 1.5 else "NOT met",
        ]
    )


def main(args: argparse.Namespace) -> None:
    roles.raise_nofile()
    rows: list[list[str]] = []
    if "fanout" in args.phases:
        fanout_phase(args, rows)
    if "latency" in args.phases:
        latency_phase(args, rows)
    print(markdown_table(["measure", "measured", "target", ""], rows))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--role", default="main", choices=["main", "server", "bulk", "probe"])
    p.add_argument("--url", default="")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--stall-count", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=50, help="connects in flight per process")
    p.add_argument("--bulk-poll-ms", type=float, default=20.0)
    p.add_argument("--timeout", type=float, default=300.0, help="bound on every wait, s")
    p.add_argument("--phases", default="fanout,latency")
    p.add_argument(
        "--tenants",
        action="store_true",
        help="fan-out phase: also a bridge with two tenants (ACL patterns, quotas), same run",
    )
    p.add_argument("--tokens", default="bench", help="bulk role: hello tokens, round-robin")
    p.add_argument("--clients", type=int, default=10_000, help="memory and fan-out phase")
    p.add_argument("--messages", type=int, default=100, help="per fan-out round")
    p.add_argument("--burst", type=int, default=16, help="messages published per loop turn")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--latency-clients", type=int, default=1000)
    p.add_argument("--probes", type=int, default=25, help="of the latency clients, full ones")
    p.add_argument("--devices", type=int, default=5)
    p.add_argument("--rate", type=float, default=100.0, help="frames/s on the bus (tx + rx)")
    p.add_argument("--seconds", type=float, default=10.0, help="latency measuring window")
    p.add_argument(
        "--latency-rounds", type=int, default=3, help="interleaved rounds; medians of their p99"
    )
    a = p.parse_args()
    if a.role == "bulk":
        roles.run_bulk(a)
    elif a.role == "probe":
        asyncio.run(roles.run_probe(a))
    elif a.role == "server":
        asyncio.run(roles.run_server(a))
    else:
        main(a)
