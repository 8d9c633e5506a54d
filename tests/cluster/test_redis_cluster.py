"""The same ordering and resume checks on a 3-master Redis Cluster (hash tags, SSUBSCRIBE)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RedisProcess, redis_cluster

from .harness import Client, start_node, wait_for
from .test_nodes import contiguous


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[RedisProcess]]:
    with redis_cluster(3) as nodes:
        yield nodes


async def test_on_a_redis_cluster_order_requests_and_resume_elsewhere_hold(
    tmp_path: Path, cluster: list[RedisProcess], prefix: str, sim: str
) -> None:
    url = cluster[0].url.removesuffix("/0")
    kw = {"prefix": prefix, "cluster": True}
    a = await start_node(tmp_path, "A", url, {"bus0": sim}, **kw)
    b = await start_node(tmp_path, "B", url, {}, **kw)
    c = await start_node(tmp_path, "C", url, {}, **kw)
    try:
        await wait_for(lambda: "bus0" in (b.health_now() or {}).get("buses", {}), "B: bus0")
        await wait_for(lambda: "bus0" in (c.health_now() or {}).get("buses", {}), "C: bus0")
        on_b = await Client.open(b.ws_url)
        await on_b.subscribe(["bus0/*"])
        await wait_for(lambda: len(on_b.seqs("bus0")) >= 10, "frames on B")
        reply = await on_b.ask(
            {"type": "request", "id": 3, "bus": "bus0", "addr": 1, "cmd": "identify"}
        )
        assert reply.get("ok") is True, reply
        await b.stop(kill=True)
        await on_b.close()
        on_c = await Client.open(c.ws_url)
        answer = await on_c.subscribe(["bus0/*"], {"bus0": on_b.last("bus0")})
        assert answer["recovered"] == {"bus0": True}
        await wait_for(lambda: len(on_c.seqs("bus0")) >= 10, "frames on C")
        assert contiguous(on_b.seqs("bus0") + on_c.seqs("bus0"))
        await on_c.close()
    finally:
        for n in (a, b, c):
            await n.stop()
