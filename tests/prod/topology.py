"""The production topology of docs/deploy.md, as separate processes on loopback: one
``redis-server``, one simulated bus on TCP (``socket://``, so two nodes can reach it), three
``framebridge bridge`` nodes (A owns ``bus0``, B is its standby, C serves it from Redis) and a
real nginx (Debian's) in front of them, plus many reference clients (:class:`Watched`:
``bridge.client.BridgeClient``, which reconnects with backoff and resumes with ``since``) that
record every sequenced message they get.

Shared by the tests under ``tests/prod`` and by ``benchmarks/rolling.py``: one way to start it,
one way to count what a client lost or got twice. Every wait is bounded; ports are free
loopback ports; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bridge.client import BridgeClient
from bridge.errors import BridgeError
from tests.cluster.harness import NodeProc, node_config, start_sim, stop_proc, wait_for
from tests.servers import _listening, free_port, redis_server

__all__ = [
    "BUS",
    "Topology",
    "Watched",
    "nginx",
    "readyz",
    "tally",
    "topology",
]

# make test installs Debian's nginx (scripts/setup-system.sh): a missing one fails, never skips
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
BUS = "bus0"
SILENT_S = 10.0  # a client without a message of the bus for longer is counted as "silent"

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_shutdown_timeout 5s;
worker_rlimit_nofile 8192;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream framebridge {{
        least_conn;
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location /ws {{
            proxy_pass http://framebridge;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout {read_timeout}ms;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout http_503;
            proxy_next_upstream_tries 3;
            proxy_buffering off;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(tmp: Path, ports: list[int], read_timeout_s: float = 90.0) -> Iterator[int]:
    """nginx on a free loopback port in front of ``ports`` (the configuration of
    docs/deploy.md, with ``proxy_read_timeout`` scaled to the test's heartbeat); yields its
    port."""
    port = free_port()
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in ports)
    conf = tmp / "nginx.conf"
    text = NGINX_CONF.format(
        tmp=tmp, servers=servers, port=port, read_timeout=round(read_timeout_s * 1000)
    )
    conf.write_text(text)
    proc = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _listening(port):
            assert proc.poll() is None, (tmp / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield port
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful; worker_shutdown_timeout bounds it
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def readyz(port: int) -> tuple[int, dict[str, Any]] | None:
    """``/readyz`` of a node: (status, body), or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())
    except OSError:
        return None


@dataclass
class Topology:
    """Three nodes behind nginx; ``front`` is the WebSocket URL clients use."""

    tmp: Path
    nodes: dict[str, NodeProc]
    front: str

    async def wait_ready(self, node: NodeProc) -> None:
        async def ready() -> bool:
            return (await asyncio.to_thread(readyz, node.port) or (0,))[0] == 200

        await wait_for(ready, f"{node.name} ready", 20)

    async def drain(self, node: NodeProc, timeout: float = 20.0) -> int:
        """SIGTERM (the drain) and the exit code."""
        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(node.proc.wait(), timeout)
        node.proc = None
        return code

    async def kill(self, node: NodeProc) -> None:
        await node.stop(kill=True)

    async def restart(self, node: NodeProc) -> None:
        """Start it again on the same port and wait until ``/readyz`` says 200."""
        await node.start(timeout=30)  # a loaded host starts a node slowly, not wrongly
        await self.wait_ready(node)

    async def owner(self) -> str | None:
        """The node holding ``bus0``'s lease, as the nodes that answer see it."""
        for n in self.nodes.values():
            health = await asyncio.to_thread(n.health_now) or {}
            if BUS in (health.get("cluster") or {}).get("owned", []):
                return n.name
        return None

    async def clients_per_node(self) -> dict[str, int]:
        """``clients`` of each node's ``/healthz`` (-1: no answer)."""
        out = {}
        for n in self.nodes.values():
            out[n.name] = int((await asyncio.to_thread(n.health_now) or {}).get("clients", -1))
        return out


def _node(
    tmp: Path, name: str, redis_url: str, buses: dict[str, str], redis: dict[str, float],
    **limits: float,
) -> NodeProc:  # fmt: skip
    cfg = node_config(
        tmp / f"{name}.toml", name, redis_url, buses, prefix="prod", poll_s=0.1, **redis
    )  # fmt: skip
    with cfg.open("a") as f:
        f.write("[limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items()))
    return NodeProc(name, cfg, free_port())


def _knows_bus(node: NodeProc) -> bool:
    return BUS in (node.health_now() or {}).get("buses", {})


@contextlib.asynccontextmanager
async def topology(
    tmp: Path,
    *,
    heartbeat_s: float = 30.0,
    drain_window_s: float = 1.0,
    command_timeout_s: float = 2.0,
    ownership_ttl_s: float = 5.0,
) -> AsyncIterator[Topology]:
    """Redis, the simulator, nodes A (owner of bus0), B (its standby) and C, nginx in front.

    Redis commands and leases get the defaults (2 s, 5 s), not the cluster tests' 0.5 s and
    1.5 s: 300 clients on two shared cores starve a node for longer than those, and then it
    thinks Redis is gone (degraded) and its lease lapses, over and over (docs/deploy.md; what
    that did to clients before the lease churn fixes: docs/cluster.md, ``benchmarks/rolling.py
    --lease 1.5 --redis-timeout 0.5``).

    nginx's ``proxy_read_timeout`` is six heartbeats (90 s for the default 30 s in deploy.md
    is three): above the heartbeat, so an idle proxied WebSocket is never cut.
    """
    limits = {
        "drain_window_s": drain_window_s,
        "shutdown_grace_s": 2.0,
        # WebSocket pings keep their 30 s: 300 clients in one test process answer late
        "heartbeat_s": heartbeat_s,
        "close_timeout_s": 2.0,
    }
    sim, url = await start_sim(1)
    nodes: dict[str, NodeProc] = {}
    try:
        with redis_server() as redis:
            for name, buses in (("A", {BUS: url}), ("B", {BUS: url}), ("C", {})):
                redis_times = {
                    "command_timeout_s": command_timeout_s,
                    "ownership_ttl_s": ownership_ttl_s,
                }
                nodes[name] = _node(tmp, name, redis.url, buses, redis_times, **limits)
            await nodes["A"].start(timeout=30)  # first, so that A owns the bus
            await asyncio.gather(nodes["B"].start(timeout=30), nodes["C"].start(timeout=30))
            for n in nodes.values():
                await wait_for(partial(_knows_bus, n), f"{BUS} known on {n.name}")
            ports = [n.port for n in nodes.values()]
            with nginx(tmp, ports, read_timeout_s=max(6 * heartbeat_s, 3.0)) as port:
                yield Topology(tmp, nodes, f"ws://127.0.0.1:{port}/ws")
    finally:
        for n in nodes.values():
            await n.stop()
        await stop_proc(sim)


@dataclass
class Watched:
    """A reference client subscribed to ``bus0``, recording every sequenced message in order.
    An unsequenced ``bus_reset`` (the node withdrew what it had served: docs/cluster.md, lease
    churn) starts the record anew, as the client forgets its position."""

    client: BridgeClient
    seqs: list[int] = field(default_factory=list)
    epochs: set[int] = field(default_factory=set)
    first_node: str = ""
    withdrawn: list[list[int]] = field(default_factory=list)  # the records before each reset
    silence: float = 0.0  # the longest time without a message of the bus, outages included
    _task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str) -> Watched:
        client = BridgeClient(url, max_reconnects=60)  # the reference client's own backoff
        welcome = await client.connect()
        await client.subscribe([f"{BUS}/*"])
        w = cls(client, first_node=str(welcome["node"]))
        w._task = asyncio.create_task(w._consume())
        return w

    async def _consume(self) -> None:
        heard = time.monotonic()
        with contextlib.suppress(BridgeError):
            async for msg in self.client:
                if msg.get("bus") != BUS:
                    continue
                now = time.monotonic()
                self.silence, heard = max(self.silence, now - heard), now
                if isinstance(msg.get("seq"), int):
                    self.seqs.append(msg["seq"])
                    self.epochs.add(msg["epoch"])
                elif msg.get("type") == "bus_reset":
                    self.withdrawn.append(self.seqs)
                    self.seqs = []

    @property
    def node(self) -> str:
        return str(self.client.welcome.get("node", ""))

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    def lost(self) -> int:
        """Seqs missing between the first and the last message this client got (between two
        resets)."""
        return sum(
            max(0, seqs[-1] - seqs[0] + 1 - len(set(seqs)))
            for seqs in (*self.withdrawn, self.seqs)
            if seqs
        )

    def duplicated(self) -> int:
        """Messages the bridge sent this client twice (the reference client drops them, and
        counts them in ``tracker.duplicates``) plus any that got through to the consumer."""
        twice = sum(len(s) - len(set(s)) for s in (*self.withdrawn, self.seqs))
        return self.client.tracker.duplicates + twice

    def recovered(self) -> bool:
        """Every automatic resume of this client answered ``recovered: true``."""
        return all(r.get("recovered") == {BUS: True} for r in self.client.resumes)

    async def close(self) -> None:
        await self.client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def open_many(url: str, count: int, at_once: int = 50) -> list[Watched]:
    """``count`` clients, ``at_once`` handshakes in flight at a time."""
    out: list[Watched] = []
    for start in range(0, count, at_once):
        n = min(at_once, count - start)
        out += await asyncio.gather(*(Watched.open(url) for _ in range(n)))
    return out


async def close_all(clients: Iterable[Watched]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def wait_past(clients: list[Watched], mark: int, what: str, timeout: float = 20.0) -> None:
    """Until every client got a message beyond seq ``mark`` (resumed and live again)."""
    try:
        await wait_for(lambda: all(c.last > mark for c in clients), what, timeout)
    except AssertionError:
        behind = [c for c in clients if c.last <= mark]
        raise AssertionError(
            f"{what}: {len(behind)} clients not past {mark}: "
            + "; ".join(
                f"on {c.node} at {c.last}, closes {c.client.close_codes}, "
                f"outages {len(c.client.outages)}, ended {c.client._ended!r}"
                for c in behind[:5]
            )
        ) from None


def tally(clients: Iterable[Watched]) -> dict[str, int]:
    """Totals over the clients: lost, duplicated, epochs seen, not recovered, outages."""
    cs = list(clients)
    return {
        "lost": sum(c.lost() for c in cs),
        "duplicated": sum(c.duplicated() for c in cs),
        "epochs": len(set().union(*(c.epochs for c in cs))) if cs else 0,
        "not_recovered": sum(not c.recovered() for c in cs),
        "outages": sum(len(c.client.outages) for c in cs),
    }


def explain(clients: Iterable[Watched], limit: int = 5) -> list[str]:
    """What went wrong for the first ``limit`` clients that lost or got twice a message: for a
    failing assertion's message."""
    out = []
    for c in clients:
        bad = c.lost() or c.duplicated() or not c.recovered() or len(c.epochs) > 1
        if bad or c.silence > SILENT_S:
            gaps = [(a, b) for a, b in zip(c.seqs, c.seqs[1:], strict=False) if b != a + 1]
            out.append(
                f"first on {c.first_node}, now on {c.node}: gaps {gaps[:5]}, "
                f"duplicates {c.client.tracker.duplicates}, closes {c.client.close_codes}, "
                f"resumes {c.client.resumes}, epochs {c.epochs}, silent {c.silence:.1f} s, "
                f"resets {len(c.withdrawn)}"
            )
            if len(out) >= limit:
                break
    return out
