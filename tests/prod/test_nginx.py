"""A real nginx (Debian's) in front of three bridge nodes on one Redis, as docs/deploy.md sets
it up: clients spread over the nodes; the bus owner is drained (SIGTERM); its clients reconnect
through nginx to the other nodes and resume with ``recovered: true``, no gap, no duplicate; the
standby configured for the same bus takes it over without a seq gap.

Loopback only, free ports, every wait bounded. Skipped when nginx is not installed
(scripts/setup-system.sh installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from tests.cluster.harness import Client, NodeProc, node_config, start_sim, stop_proc, wait_for
from tests.servers import _listening, free_port, redis_server

# make test installs Debian's nginx (scripts/setup-system.sh): a missing one fails, never skips
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

log = logging.getLogger(__name__)

CLIENTS = 24
WINDOW = 1.0


def contiguous(seqs: list[int]) -> bool:
    return bool(seqs) and seqs == list(range(seqs[0], seqs[0] + len(seqs)))


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_shutdown_timeout 5s;
events {{ worker_connections 1024; }}
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
            proxy_read_timeout 90s;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout http_503;
            proxy_next_upstream_tries 3;
            proxy_buffering off;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(tmp: Path, ports: list[int]) -> Iterator[int]:
    """nginx on a free loopback port in front of ``ports``; yields its port."""
    assert NGINX is not None
    port = free_port()
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in ports)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, servers=servers, port=port))
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


def sees_bus0(n: NodeProc) -> bool:
    return "bus0" in (n.health_now() or {}).get("buses", {})


def closed(c: Client) -> bool:
    return c.ws.close_code is not None


async def node(tmp: Path, name: str, redis_url: str, buses: dict[str, str]) -> NodeProc:
    cfg = node_config(tmp / f"{name}.toml", name, redis_url, buses, prefix="ng")
    with cfg.open("a") as f:
        f.write(f"[limits]\ndrain_window_s = {WINDOW}\nshutdown_grace_s = 2.0\n")
    return await NodeProc(name, cfg, free_port()).start()


async def test_drain_behind_nginx_clients_resume_on_the_others(tmp_path: Path) -> None:
    sim, url = await start_sim(1)
    nodes: list[NodeProc] = []
    clients: list[Client] = []
    try:
        with redis_server() as redis:
            nodes.append(await node(tmp_path, "A", redis.url, {"bus0": url}))  # the owner
            nodes.append(await node(tmp_path, "B", redis.url, {"bus0": url}))  # a standby
            nodes.append(await node(tmp_path, "C", redis.url, {}))
            a = nodes[0]
            for n in nodes[1:]:
                await wait_for(partial(sees_bus0, n), "bus0 known on every node")
            with nginx(tmp_path, [n.port for n in nodes]) as port:
                front = f"ws://127.0.0.1:{port}/ws"
                for _ in range(CLIENTS):
                    client = await Client.open(front)
                    await client.subscribe(["bus0/*"])
                    clients.append(client)
                spread = {c.welcome["node"] for c in clients}
                assert spread == {"A", "B", "C"}, spread  # least_conn spreads them
                on_a = [c for c in clients if c.welcome["node"] == "A"]
                await wait_for(lambda: all(len(c.seqs("bus0")) >= 5 for c in clients), "frames")
                assert a.proc is not None
                a.proc.send_signal(signal.SIGTERM)  # drain the owner
                assert await asyncio.wait_for(a.proc.wait(), 15) == 0
                a.proc = None
                resumed: list[Client] = []
                took: list[float] = []  # connect + hello + resume through nginx, per client
                for old in on_a:
                    await wait_for(partial(closed, old), "1001")
                    assert old.ws.close_code == 1001
                    began = time.monotonic()
                    new = await Client.open(front)  # through nginx: to B or C
                    assert new.welcome["node"] in ("B", "C")
                    answer = await new.subscribe(["bus0/*"], {"bus0": old.last("bus0")})
                    assert answer.get("recovered") == {"bus0": True}, answer
                    took.append(time.monotonic() - began)
                    resumed.append(new)
                # B took the bus over (the lease was given up); frames go on after the handover
                b = nodes[1]
                await wait_for(lambda: "bus0" in ((b.health_now() or {}).get("cluster") or {})
                               .get("owned", []), "B owns bus0")  # fmt: skip
                mark = max(c.last("bus0")["seq"] for c in resumed)
                await wait_for(
                    lambda: all(c.last("bus0")["seq"] > mark + 5 for c in resumed), "frames after"
                )
                for old, new in zip(on_a, resumed, strict=True):
                    seqs = old.seqs("bus0") + new.seqs("bus0")
                    assert contiguous(seqs), seqs  # no gap, no duplicate across the drain
                    assert len({m["epoch"] for m in old.messages + new.messages}) == 1
                for c in clients:
                    if c not in on_a:  # the clients of B and C never saw a gap either
                        assert contiguous(c.seqs("bus0")), c.seqs("bus0")
                clients += resumed
                took.sort()
                log.info("resume through nginx: %d clients, median %.1f ms, max %.1f ms",
                         len(took), 1000 * took[len(took) // 2], 1000 * took[-1])  # fmt: skip
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
        for n in nodes:
            await n.stop()
        await stop_proc(sim)
