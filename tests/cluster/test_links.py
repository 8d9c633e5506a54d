"""Redis going away under running nodes: a restart, and a pub/sub link that dies silently."""

from __future__ import annotations

from pathlib import Path

from tests.servers import RedisProcess, redis_server

from .harness import Client, PausableProxy, start_node, wait_for
from .test_nodes import contiguous, owner_and_reader


async def test_redis_restarted_mid_stream_loses_no_frame_within_history(
    tmp_path: Path, prefix: str, sim: str
) -> None:
    with redis_server("--appendonly", "yes", "--appendfsync", "always") as redis:
        a, b, on_a, on_b = await owner_and_reader(tmp_path, redis, prefix, sim, 5)
        try:
            redis.stop()
            down_at = len(on_a.seqs("bus0"))
            health = await wait_for(
                lambda: (h := a.health_now()) and h["status"] == "degraded" and h, "A degraded"
            )
            assert health["cluster"]["redis"] == "degraded"
            await wait_for(lambda: len(on_a.seqs("bus0")) >= down_at + 10, "A serves locally")
            redis.start()
            top = on_a.seqs("bus0")[-1]
            await wait_for(lambda: on_b.seqs("bus0")[-1] > top, "B past the outage")
            await wait_for(lambda: (a.health_now() or {}).get("status") == "ok", "A ok again")
            for client in (on_a, on_b):
                assert contiguous(client.seqs("bus0")), client.seqs("bus0")
                assert len({m["epoch"] for m in client.messages}) == 1
            await on_a.close()
            await on_b.close()
        finally:
            await a.stop()
            await b.stop()


async def test_a_silently_cut_pubsub_link_is_noticed_and_caught_up_without_gap(
    tmp_path: Path, redis: RedisProcess, prefix: str, sim: str
) -> None:
    proxy = await PausableProxy(redis.port).start()
    a = await start_node(tmp_path, "A", redis.url, {"bus0": sim}, prefix=prefix)
    via = f"redis://127.0.0.1:{proxy.port}/0"
    b = await start_node(tmp_path, "B", via, {}, prefix=prefix)
    try:
        await wait_for(lambda: "bus0" in (b.health_now() or {}).get("buses", {}), "B: bus0")
        on_b = await Client.open(b.ws_url)
        await on_b.subscribe(["bus0/*"])
        await wait_for(lambda: len(on_b.seqs("bus0")) >= 5, "frames on B")
        before = (await b.health())["cluster"]["catch_ups"]
        proxy.cut()  # B's connections to Redis stay open and carry nothing
        count = len(on_b.seqs("bus0"))
        await wait_for(lambda: len(on_b.seqs("bus0")) >= count + 20, "B delivers again")
        assert contiguous(on_b.seqs("bus0")), on_b.seqs("bus0")
        assert (await b.health())["cluster"]["catch_ups"] > before
        await on_b.close()
    finally:
        await a.stop()
        await b.stop()
        await proxy.close()
