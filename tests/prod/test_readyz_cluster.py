"""``/readyz`` of a cluster node: not ready while Redis is unreachable, though ``/healthz`` still
says 200 ``degraded`` (local clients keep being served); ready again once Redis is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cluster.harness import start_node, start_sim, stop_proc, wait_for
from tests.prod.topology import readyz
from tests.servers import redis_server


async def test_readyz_follows_redis_while_healthz_stays_200(tmp_path: Path) -> None:
    sim, url = await start_sim(1)
    try:
        with redis_server() as redis:
            a = await start_node(tmp_path, "A", redis.url, {"bus0": url}, prefix="rz")
            try:
                await wait_for(lambda: readyz(a.port) == (200, {"ready": True, "node": "A",
                               "reasons": []}), "A ready")  # fmt: skip
                await asyncio.to_thread(redis.stop)
                await wait_for(
                    lambda: (readyz(a.port) or (0, {}))[1].get("reasons") == ["redis unreachable"],
                    "A not ready without Redis",
                )
                status = readyz(a.port)
                assert status is not None and status[0] == 503
                health = await a.health()  # 200: the node still serves its own clients
                assert health["status"] == "degraded"
                await asyncio.to_thread(redis.start)
                await wait_for(lambda: (readyz(a.port) or (0, {}))[0] == 200, "A ready again")
            finally:
                await a.stop()
    finally:
        await stop_proc(sim)
