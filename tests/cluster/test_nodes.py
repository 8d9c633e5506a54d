"""Several ``framebridge bridge`` processes on one real redis-server (issue 11)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.servers import RedisProcess

from .harness import (
    Client,
    NodeProc,
    PausableProxy,
    redis_cli,
    start_node,
    wait_for,
    watching,
)


def contiguous(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False


async def owner_and_reader(
    tmp_path: Path, redis: RedisProcess, prefix: str, sim: str, frames: int
) -> tuple[NodeProc, NodeProc, Client, Client]:
    """Node A polling bus0, node B without buses, a client of each on bus0 with ``frames``."""
    a = await start_node(tmp_path, "A", redis.url, {"bus0": sim}, prefix=prefix)
    b = await start_node(tmp_path, "B", redis.url, {}, prefix=prefix)
    try:
        await wait_for(lambda: "bus0" in (b.health_now() or {}).get("buses", {}), "B: bus0")
        on_a, on_b = await Client.open(a.ws_url), await Client.open(b.ws_url)
        await on_a.subscribe(["bus0/*"])
        await on_b.subscribe(["bus0/*"])
        await wait_for(lambda: len(on_b.seqs("bus0")) >= frames, f"{frames} frames on B")
    except BaseException:
        await a.stop()
        await b.stop()
        raise
    return a, b, on_a, on_b


async def test_a_client_on_b_gets_a_frames_in_order_and_a_request_through_b_reaches_a(
    tmp_path: Path, redis: RedisProcess, prefix: str, sim: str
) -> None:
    a, b, on_a, on_b = await owner_and_reader(tmp_path, redis, prefix, sim, 30)
    try:
        assert on_b.welcome["buses"]["bus0"]["owner"] == "A"
        got_a = {m["seq"]: m for m in on_a.messages}
        seqs = on_b.seqs("bus0")
        assert contiguous(seqs)
        same = [s for s in seqs if s in got_a]
        assert len(same) >= 20 and all(
            got_a[s] == m for m in on_b.messages if (s := m["seq"]) in got_a
        )
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


async def test_a_client_of_a_killed_node_resumes_on_another_without_gap_or_duplicate(
    tmp_path: Path, redis: RedisProcess, prefix: str, sim: str
) -> None:
    a = await start_node(tmp_path, "A", redis.url, {"bus0": sim}, prefix=prefix)
    b = await start_node(tmp_path, "B", redis.url, {}, prefix=prefix)
    c = await start_node(tmp_path, "C", redis.url, {}, prefix=prefix)
    try:
        on_b = await Client.open(b.ws_url)
        await wait_for(lambda: "bus0" in on_b.welcome["buses"] or True, "welcome")
        await wait_for(lambda: "bus0" in (b.health_now() or {}).get("buses", {}), "B sees bus0")
        await on_b.subscribe(["bus0/*"])
        await wait_for(lambda: len(on_b.seqs("bus0")) >= 10, "frames on B")
        await b.stop(kill=True)  # SIGKILL
        await on_b.close()
        since = on_b.last("bus0")
        on_c = await Client.open(c.ws_url)
        answer = await on_c.subscribe(["bus0/*"], {"bus0": since})
        assert answer["recovered"] == {"bus0": True}
        await wait_for(lambda: len(on_c.seqs("bus0")) >= 10, "frames on C")
        seqs = on_b.seqs("bus0") + on_c.seqs("bus0")
        assert contiguous(seqs), seqs  # no gap, no duplicate across the two nodes
        # the owner restarted: same epoch, seq goes on
        epoch, before = on_c.last("bus0")["epoch"], on_c.last("bus0")["seq"]
        await a.stop()
        await a.start()
        await wait_for(lambda: on_c.last("bus0")["seq"] > before + 5, "frames after restart")
        after = [m for m in on_c.messages if m["seq"] > before]
        assert {m["epoch"] for m in after} == {epoch}
        assert contiguous(on_c.seqs("bus0"))
        await a.stop()  # gives its lease up: the bus has no owner now
        await wait_for(
            lambda: (c.health_now() or {}).get("buses", {}).get("bus0", {}).get("owner", 1) is None,
            "C sees bus0 without owner",
        )
        reply = await on_c.ask(
            {"type": "request", "id": 9, "bus": "bus0", "addr": 1, "cmd": "identify"}
        )
        assert reply.get("ok") is False and reply["error"]["code"] == "bus_down", reply
        await on_c.close()
    finally:
        for n in (a, b, c):
            await n.stop()


async def test_a_second_owner_is_refused_and_takes_over_when_the_owner_dies(
    tmp_path: Path, redis: RedisProcess, prefix: str, sim: str
) -> None:
    a = await start_node(tmp_path, "A", redis.url, {"bus0": sim}, prefix=prefix)
    b = await start_node(tmp_path, "B", redis.url, {"bus0": sim}, prefix=prefix)
    try:
        health = await b.health()
        assert health["buses"]["bus0"]["owner"] == "A"
        assert "owned by node A" in health["buses"]["bus0"]["note"]
        assert health["cluster"]["owned"] == [] and "bus0" in health["cluster"]["standby"]
        on_b = await Client.open(b.ws_url)
        await on_b.subscribe(["bus0/*"])
        await wait_for(lambda: len(on_b.seqs("bus0")) >= 5, "A's frames on B")
        await a.stop(kill=True)
        await wait_for(
            lambda: (b.health_now() or {}).get("cluster", {}).get("owned") == ["bus0"],
            "B takes bus0 over",
        )
        count = len(on_b.seqs("bus0"))
        await wait_for(lambda: len(on_b.seqs("bus0")) >= count + 5, "B's own frames")
        assert contiguous(on_b.seqs("bus0"))  # one stream across the owners
        assert len({m["epoch"] for m in on_b.messages}) == 1
        assert (await b.health())["buses"]["bus0"]["owner"] == "B"
        await on_b.close()
    finally:
        await a.stop()
        await b.stop()


async def test_redis_flushed_gives_bus_reset_then_old_positions_are_not_recovered(
    tmp_path: Path, redis: RedisProcess, prefix: str, sim: str
) -> None:
    a, b, on_a, on_b = await owner_and_reader(tmp_path, redis, prefix, sim, 5)
    try:
        old = on_b.last("bus0")
        redis_cli(redis, "flushall")

        def reset(client: Client) -> Callable[[], dict[str, Any] | None]:
            return lambda: next((m for m in client.messages if m.get("event") == "bus_reset"), None)

        for client in (on_a, on_b):
            event = await wait_for(reset(client), "bus_reset")
            assert event["epoch"] != old["epoch"] and event["seq"] == 1
            i = client.messages.index(event)
            assert [m["seq"] for m in client.messages[i:]] == list(
                range(1, len(client.messages) - i + 1)
            )  # the new epoch starts with it and goes on in order
        late = await Client.open(b.ws_url)
        answer = await late.subscribe(["bus0/*"], {"bus0": old})
        assert answer["recovered"] == {"bus0": False}
        metrics = await b.metrics()
        assert "framebridge_cluster_bus_resets_total 1.0" in metrics
        for client in (on_a, on_b, late):
            await client.close()
    finally:
        await a.stop()
        await b.stop()


async def test_an_owner_killed_with_writes_in_flight_showed_its_clients_only_what_redis_has(
    tmp_path: Path, redis: RedisProcess, prefix: str, sim: str
) -> None:
    """Regression (issue 13): the owner used to give its own clients a message before writing
    it to Redis; killed in between, its clients held seqs that the standby then numbered anew.
    Here A's Redis link goes silent (its writes hang, the frames pile up unwritten), A is
    killed, and its client resumes on the standby: recovered, contiguous, and every seq the
    same message as the standby's own client got."""
    proxy = await PausableProxy(redis.port).start()
    via = f"redis://127.0.0.1:{proxy.port}/0"
    a = await start_node(tmp_path, "A", via, {"bus0": sim}, prefix=prefix, command_timeout_s=5.0)
    b = await start_node(tmp_path, "B", redis.url, {"bus0": sim}, prefix=prefix)
    try:
        on_a, on_b = await watching(a, b)
        proxy.cut()  # A's writes hang from now on; A goes on numbering frames
        await wait_for(
            lambda: (
                ((a.health_now() or {}).get("cluster") or {}).get("backlog", {}).get("bus0", 0) >= 3
            ),
            "frames numbered by A and not in Redis",
        )
        await a.stop(kill=True)
        await on_a.close()
        again = await Client.open(b.ws_url)
        answer = await again.subscribe(["bus0/*"], {"bus0": on_a.last("bus0")})
        assert answer["recovered"] == {"bus0": True}, (answer, on_a.last("bus0"))
        await wait_for(lambda: len(again.seqs("bus0")) >= 5, "B's own frames")
        seqs = on_a.seqs("bus0") + again.seqs("bus0")
        assert contiguous(seqs), seqs
        seen_by_b = {m["seq"]: m for m in on_b.messages}
        for m in on_a.messages + again.messages:
            assert seen_by_b.get(m["seq"], m) == m, (m, seen_by_b.get(m["seq"]))
        await on_b.close()
        await again.close()
    finally:
        await a.stop()
        await b.stop()
        await proxy.close()
