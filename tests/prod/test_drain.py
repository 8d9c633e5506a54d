"""Drain on SIGTERM, end to end: a real ``framebridge bridge`` process with clients.

The node must answer 503 on ``/readyz`` at once, answer the request in flight, tell its clients
1001 spread over ``limits.drain_window_s`` (not all in the same instant) and exit 0 in time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from pathlib import Path

from bridge.drain import drain_batches
from tests.cluster.harness import TIMEOUT, Client, NodeProc, start_sim, stop_proc, wait_for
from tests.servers import free_port

from .topology import readyz

WINDOW = 1.5
CLIENTS = 40  # four batches of ten (drain.MIN_BATCH)


def test_drain_batches_spread_evenly_and_cover_everyone() -> None:
    assert drain_batches(0, 5.0) == []
    assert drain_batches(3, 0.0) == [(0.0, 3)]  # no window: at once
    assert drain_batches(1, 5.0) == [(0.0, 1)]
    assert drain_batches(9, 5.0) == [(0.0, 9)]  # a handful: no point waiting
    assert drain_batches(4, 2.0, min_batch=1) == [(0.0, 1), (0.5, 1), (1.0, 1), (1.5, 1)]
    assert drain_batches(45, 2.0) == [(0.0, 12), (0.5, 11), (1.0, 11), (1.5, 11)]
    plan = drain_batches(1003, 5.0, max_batches=50)
    assert len(plan) == 50 and sum(n for _, n in plan) == 1003
    assert {n for _, n in plan} == {20, 21}
    offsets = [o for o, _ in plan]
    assert offsets == sorted(offsets) and offsets[0] == 0.0 and offsets[-1] < 5.0


def config(path: Path, sim_url: str) -> Path:
    lines = [
        "[server]",
        'node = "drain-1"',
        "[limits]",
        f"drain_window_s = {WINDOW}",
        "shutdown_grace_s = 5.0",
        "[[bus]]",
        'name = "bus0"',
        f'url = "{sim_url}"',
        "timeout_s = 0.2",
        "retries = 0",
        "[[bus.device]]",
        "addr = 1",
        'profile = "thermo"',
        "[[bus.poll]]",
        'cmd = "read_regs"',
        "interval_s = 0.1",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_sigterm_drains_clients_over_the_window_and_exits_0(tmp_path: Path) -> None:
    sim, url = await start_sim(1)
    node = NodeProc("drain-1", config(tmp_path / "n.toml", url), free_port())
    try:
        await node.start()
        assert await asyncio.to_thread(readyz, node.port) == (
            200,
            {"ready": True, "node": "drain-1", "reasons": []},
        )
        clients = [await Client.open(node.ws_url) for _ in range(CLIENTS)]
        closed_at: dict[int, tuple[float, int | None]] = {}

        async def watch(i: int, client: Client) -> None:
            await client.ws.wait_closed()
            closed_at[i] = (time.monotonic(), client.ws.close_code)

        watchers = [asyncio.create_task(watch(i, cl)) for i, cl in enumerate(clients)]
        # a request that takes a while (no device at 9: it times out after 1 s); the pong
        # after it proves the bridge has read it, so it is in flight when SIGTERM comes
        asker = clients[0]
        req = {"type": "request", "id": "slow", "bus": "bus0", "addr": 9, "cmd": 3,
               "timeout_s": 1.0}  # fmt: skip
        await asker.ws.send(json.dumps(req))
        assert (await asker.ask({"type": "ping", "id": "p"}))["type"] == "pong"
        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # not ready at once (the listener stays open for the probes during the drain)
        status = await wait_for(lambda: asyncio.to_thread(readyz, node.port), "readyz answer", 2)
        assert status == (503, {"ready": False, "node": "drain-1", "reasons": ["draining"]})
        code = await asyncio.wait_for(node.proc.wait(), TIMEOUT)
        exited = time.monotonic() - signalled
        await asyncio.wait_for(asyncio.gather(*watchers), TIMEOUT)
        assert code == 0
        reply = next(a for a in asker.answers if a.get("id") == "slow")
        assert reply["type"] == "reply" and reply["error"]["code"] == "timeout"  # answered
        assert {c for _, c in closed_at.values()} == {1001}
        times = sorted(t for t, _ in closed_at.values())
        spread = times[-1] - times[0]
        # four batches 0.375 s apart: the last one ~1.1 s after the first, not all at once
        assert spread >= WINDOW * 0.6, spread
        rounds = 1 + sum(1 for x, y in itertools.pairwise(times) if y - x > 0.2)
        assert rounds >= 3, times  # several rounds, not one storm
        assert exited < 1.0 + WINDOW + 3.0, exited  # in-flight + window + margin
        for client in clients:
            await client.close()
    finally:
        await node.stop()
        await stop_proc(sim)
