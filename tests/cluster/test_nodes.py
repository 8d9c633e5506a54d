"""Several ``framebridge bridge`` processes on one real redis-server (issue 11)."""

from __future__ import annotations

from pathlib import Path

from tests.servers import RedisProcess

from .harness import Client, start_node, wait_for


def contiguous(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False


async def test_a_client_on_b_gets_a_frames_in_order_and_a_request_through_b_reaches_a(
    tmp_path: Path, redis: RedisProcess, prefix: str, sim: str
) -> None:
    a = await start_node(tmp_path, "A", redis.url, {"bus0": sim}, prefix=prefix)
    b = await start_node(tmp_path, "B", redis.url, {}, prefix=prefix)
    try:
        await wait_for(lambda: "bus0" in (b.health_now() or {}).get("buses", {}), "B sees bus0")
        on_a, on_b = await Client.open(a.ws_url), await Client.open(b.ws_url)
        assert on_b.welcome["buses"]["bus0"]["owner"] == "A"
        await on_a.subscribe(["bus0/*"])
        await on_b.subscribe(["bus0/*"])
        await wait_for(lambda: len(on_b.seqs("bus0")) >= 30, "30 frames on B")
        got_a = {m["seq"]: m for m in on_a.messages}
        seqs = on_b.seqs("bus0")
        assert contiguous(seqs)
        same = [s for s in seqs if s in got_a]
        assert len(same) >= 20 and all(got_a[s] == m for m in on_b.messages if (s := m["seq"]) in got_a)
        reply = await on_b.ask(
            {"type": "request", "id": 7, "bus": "bus0", "addr": 1, "cmd": "identify"}
        )
        assert reply["ok"] is True, reply
        bad = await on_b.ask(
            {"type": "request", "id": 8, "bus": "bus0", "addr": 1, "cmd": "read_regs",
             "timeout_s": 9}
        )  # fmt: skip
        assert bad.get("ok") is False and bad["error"]["code"] == "bad_request", bad  # A cap
        health = await b.health()
        assert health["buses"]["bus0"]["owner"] == "A" and health["status"] == "ok"
        await on_a.close()
        await on_b.close()
    finally:
        await a.stop()
        await b.stop()
