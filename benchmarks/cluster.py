"""Cluster benchmark (issue 11): Redis and three bridge nodes, clients spread over them.

Separate processes: one ``redis-server`` (tests/servers.py), one ``framebridge sim`` (a thermo
device polled every ``--poll`` s: about 100 frames/s with the default), three ``framebridge
bridge`` nodes (A owns the bus, B and C serve it from Redis), and ``--client-procs`` processes of
WebSocket clients (``--clients`` in all, round-robin over the nodes, each subscribed to
``bus0/*``; one client in twenty per node is a probe that parses and times every message, the
others read every byte and parse none, so that the clients fit on a small machine). Then the
same bus and the clients of one node on a single node without Redis, for the CPU baseline.

Figures (over ``--seconds``, after a warm-up):

* delivery latency per node: the client's clock minus the message's ``ts`` (the owner's clock
  when it read the frame; same machine, same clock): p50/p99, same-node (A) vs cross-node;
* Redis round trips per published message on the owner (scripts and commands it sent, leases
  and position checks included) and Redis's own CPU per message;
* CPU per delivery (node process CPU / messages queued to its clients) on B and C vs the single
  node.

    .venv/bin/python benchmarks/cluster.py                    # 1,000 clients, 20 s
    .venv/bin/python benchmarks/cluster.py --clients 300 --seconds 10

Every wait is bounded and every child stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster.harness import NodeProc, start_node, start_sim, stop_proc
from tests.servers import free_port, redis_server

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{name}(?:_total)?(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def metrics(node: NodeProc) -> str:
    def get() -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    return await asyncio.to_thread(get)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


# -- the clients' process ----------------------------------------------------------------------


def _masked(payload: bytes) -> bytes:
    """One client text frame (payloads < 126 bytes), masked as RFC 6455 requires."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


async def run_clients(urls: list[str], count: int, warmup: float, seconds: float) -> None:
    from websockets.asyncio.client import connect

    lat: dict[str, list[float]] = {u: [] for u in urls}
    start = time.time() + warmup
    end = start + seconds

    gate = asyncio.Semaphore(16)  # connect a few at a time (limits.max_pending handshakes)

    async def probe(url: str) -> None:
        """A full client that parses every message and times it."""
        async with gate:
            ws = await connect(url, max_queue=None)
            await ws.send(json.dumps({"type": "hello"}))
            await ws.recv()
            await ws.send(json.dumps({"type": "subscribe", "id": 1, "topics": ["bus0/*"]}))
        async with ws:
            out = lat[url]
            while (now := time.time()) < end:
                try:
                    raw = await asyncio.wait_for(ws.recv(), end - now)
                except TimeoutError:
                    break
                now = time.time()
                if now < start or '"ts"' not in raw:
                    continue
                data = json.loads(raw)
                for m in data if isinstance(data, list) else [data]:
                    if m.get("type") == "frame":
                        out.append(now - m["ts"])

    async def reader(url: str) -> None:
        """A client that reads every byte and parses none (so that 1,000 of them fit in a
        couple of processes on a small machine): what the bridge sends is the same."""
        host, port = url.removeprefix("ws://").split("/")[0].split(":")
        async with gate:
            r, w = await asyncio.open_connection(host, int(port))
            key = base64.b64encode(os.urandom(16)).decode()
            w.write(
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            await r.readuntil(b"\r\n\r\n")
            w.write(_masked(b'{"type":"hello"}'))
            w.write(_masked(b'{"type":"subscribe","id":1,"topics":["bus0/*"]}'))
        while time.time() < end:
            try:
                if not await asyncio.wait_for(r.read(65536), max(0.01, end - time.time())):
                    break
            except TimeoutError:
                break
        w.close()

    await asyncio.gather(
        *(
            (probe if i // len(urls) % 20 == 0 else reader)(urls[i % len(urls)])
            for i in range(count)
        )
    )
    print(json.dumps({u: v for u, v in lat.items()}))


# -- the conductor -----------------------------------------------------------------------------


def write_single(path: Path, sim: str, poll: float) -> Path:
    path.write_text(
        '[server]\nnode = "solo"\n[[bus]]\nname = "bus0"\n'
        f'url = "{sim}"\ntimeout_s = 0.2\n[[bus.device]]\naddr = 1\nprofile = "thermo"\n'
        f'[[bus.poll]]\ncmd = "read_regs"\ninterval_s = {poll}\n'
    )
    return path


async def measure(
    nodes: list[NodeProc], owner: NodeProc, args: argparse.Namespace, clients: int
) -> dict[str, Any]:
    urls = [n.ws_url for n in nodes]
    per = -(-clients // args.client_procs)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--role", "clients", "--urls", ",".join(urls),
            "--clients", str(min(per, clients - i * per)), "--warmup", str(args.warmup),
            "--seconds", str(args.seconds), stdout=asyncio.subprocess.PIPE,
        )
        for i in range(args.client_procs)
    ]  # fmt: skip
    await asyncio.sleep(args.warmup)
    before = {n.name: (cpu_s(n.proc.pid), await metrics(n)) for n in nodes if n.proc}
    redis_pid = args.redis_pid
    r0 = cpu_s(redis_pid) if redis_pid else 0.0
    t0 = time.monotonic()
    await asyncio.sleep(args.seconds)
    elapsed = time.monotonic() - t0
    after = {n.name: (cpu_s(n.proc.pid), await metrics(n)) for n in nodes if n.proc}
    r1 = cpu_s(redis_pid) if redis_pid else 0.0
    lat: dict[str, list[float]] = {u: [] for u in urls}
    for p in procs:
        out, _ = await asyncio.wait_for(p.communicate(), args.seconds + args.warmup + 120)
        for u, v in json.loads(out.decode().strip().splitlines()[-1]).items():
            lat[u] += v
    published = metric(after[owner.name][1], "framebridge_published_messages") - metric(
        before[owner.name][1], "framebridge_published_messages"
    )
    result: dict[str, Any] = {"seconds": round(elapsed, 1), "messages_per_s": published / elapsed}
    for n, url in zip(nodes, urls, strict=True):
        cpu = after[n.name][0] - before[n.name][0]
        deliveries = metric(after[n.name][1], "framebridge_deliveries") - metric(
            before[n.name][1], "framebridge_deliveries"
        )
        trips = metric(after[n.name][1], "framebridge_cluster_redis_round_trips") - metric(
            before[n.name][1], "framebridge_cluster_redis_round_trips"
        )
        result[n.name] = {
            "clients_latency_samples": len(lat[url]),
            "p50_ms": round(pct(lat[url], 50) * 1000, 2),
            "p99_ms": round(pct(lat[url], 99) * 1000, 2),
            "cpu_s": round(cpu, 2),
            "deliveries": int(deliveries),
            "cpu_us_per_delivery": round(cpu / deliveries * 1e6, 2) if deliveries else None,
            "redis_round_trips_per_message": round(trips / published, 3) if published else None,
        }
    if redis_pid:
        result["redis_cpu_us_per_message"] = round((r1 - r0) / published * 1e6, 1)
    return result


async def conduct(args: argparse.Namespace) -> None:
    with redis_server() as redis, tempfile.TemporaryDirectory(prefix="fb-bench-") as tmp_s:
        tmp = Path(tmp_s)
        sim_proc, sim = await start_sim(devices=1)
        nodes: list[NodeProc] = []
        try:
            assert redis.proc is not None
            args.redis_pid = redis.proc.pid
            kw: dict[str, Any] = {"prefix": "bench", "poll_s": args.poll}
            nodes.append(await start_node(tmp, "A", redis.url, {"bus0": sim}, **kw))
            nodes.append(await start_node(tmp, "B", redis.url, {}, **kw))
            nodes.append(await start_node(tmp, "C", redis.url, {}, **kw))
            await asyncio.sleep(1.5)  # B and C find the bus (one position check)
            cluster = await measure(nodes, nodes[0], args, args.clients)
            for n in nodes:
                await n.stop()
            nodes = []
            solo = await NodeProc("solo", write_single(tmp / "solo.toml", sim, args.poll),
                                  free_port()).start()  # fmt: skip
            nodes.append(solo)
            args.redis_pid = 0
            single = await measure([solo], solo, args, args.clients // 3)
        finally:
            for n in nodes:
                await n.stop()
            await stop_proc(sim_proc)
    a, b, c = cluster["A"], cluster["B"], cluster["C"]
    cross_p99 = max(b["p99_ms"], c["p99_ms"])
    non_owner = max(b["cpu_us_per_delivery"] or 0, c["cpu_us_per_delivery"] or 0)
    base = single["solo"]["cpu_us_per_delivery"] or float("nan")
    summary = {
        "cluster": cluster,
        "single": single,
        "cross_vs_same_p99": round(cross_p99 / a["p99_ms"], 2) if a["p99_ms"] else None,
        "non_owner_vs_single_cpu": round(non_owner / base, 2),
    }
    print(json.dumps(summary, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--role", choices=["conduct", "clients"], default="conduct")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--poll", type=float, default=0.02, help="poll interval (2 frames a poll)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=8.0)
    ap.add_argument("--urls", default="")
    args = ap.parse_args()
    if args.role == "clients":
        asyncio.run(run_clients(args.urls.split(","), args.clients, args.warmup, args.seconds))
    else:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(conduct(args))


if __name__ == "__main__":
    main()
