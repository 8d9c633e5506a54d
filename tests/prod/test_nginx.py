"""A real nginx (Debian's) in front of three bridge nodes on one Redis, as docs/deploy.md sets
it up: clients spread over the nodes; the bus owner is drained (SIGTERM); its clients reconnect
through nginx to the other nodes and resume with ``recovered: true``, no gap, no duplicate; the
standby configured for the same bus takes it over without a seq gap.

Loopback only, free ports, every wait bounded; nginx as :mod:`tests.prod.topology` starts it.
The same at 300 clients, with SIGKILL and a rolling restart: test_scale.py, test_rolling.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from functools import partial
from pathlib import Path

from tests.cluster.harness import Client, NodeProc, node_config, start_sim, stop_proc, wait_for
from tests.servers import free_port, redis_server

from .topology import nginx

log = logging.getLogger(__name__)

CLIENTS = 24
WINDOW = 1.0


def contiguous(seqs: list[int]) -> bool:
    return bool(seqs) and seqs == list(range(seqs[0], seqs[0] + len(seqs)))


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
