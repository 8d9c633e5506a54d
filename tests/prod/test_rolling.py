"""A rolling restart behind a real nginx (:mod:`tests.prod.topology`), as docs/deploy.md tells
operators to do it: each node in turn is drained (SIGTERM, exit 0) and started again, and the
next one waits until ``/readyz`` of the restarted one says 200. The owner's drain hands the bus
to its standby (A to B, then B back to the restarted A) without a seq gap; every client is
moved at least once and none loses or gets twice a single message."""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

from tests.cluster.harness import wait_for

from .topology import close_all, explain, open_many, tally, topology, wait_past

log = logging.getLogger(__name__)

CLIENTS = 150


async def test_a_rolling_restart_of_the_three_nodes_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    async with topology(tmp_path, drain_window_s=1.0) as top:
        clients = await open_many(top.front, CLIENTS)
        try:
            await wait_for(lambda: all(len(c.seqs) >= 3 for c in clients), "frames", 30)
            assert await top.owner() == "A"
            owners = []
            moved: set[int] = set()
            for name in ("A", "B", "C"):
                began = time.monotonic()
                node = top.nodes[name]
                on_it = [c for c in clients if c.node == name]
                assert on_it, f"no client on {name}"
                assert await top.drain(node) == 0
                # the drain told each of them 1001 before the process ended
                assert all(1001 in c.client.close_codes for c in on_it)
                moved |= {id(c) for c in on_it}

                async def another(drained: str = name) -> str | None:
                    owner = await top.owner()
                    return owner if owner != drained else None

                # before the restart: a node back within a lease tick could take the bus again
                owners.append(await wait_for(another, "an owner", 20))
                await top.restart(node)
                log.info("%s drained and back in %.1f s", name, time.monotonic() - began)
            assert owners == ["B", "A", "A"]  # the standby took over, then handed back
            assert len(moved) == CLIENTS  # every client was on a drained node at least once
            mark = max(c.last for c in clients)
            await wait_past(clients, mark + 3, "frames after the last restart")
            counts = tally(clients)
            assert counts["outages"] >= CLIENTS, counts  # every one resumed at least once
            del counts["outages"]
            assert counts == {"lost": 0, "duplicated": 0, "epochs": 1, "not_recovered": 0}, explain(
                clients
            )
            outages = sorted(o for c in clients for o in c.client.outages)
            med, worst = statistics.median(outages), outages[-1]
            log.info("%d resumes: median %.0f, max %.0f ms", len(outages), med * 1e3, worst * 1e3)
        finally:
            await close_all(clients)
