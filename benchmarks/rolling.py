"""Production benchmark (issue 13): nginx in front of three nodes on one Redis, N reference
clients, and the three ways a node goes away.

The topology is the tests' (:mod:`tests.prod.topology`: one ``redis-server``, one simulated bus
on TCP, nodes A (owner of bus0), B (its standby) and C, Debian's nginx with the configuration of
docs/deploy.md). ``--clients`` ``bridge.client.BridgeClient`` clients (the reference client:
full-jitter backoff, resume with ``since``) connect through nginx and subscribe to ``bus0``.
Then, in each run:

1. the owner is drained (SIGTERM): its clients get 1001 spread over the drain window and
   reconnect through nginx to the others; then it is started again;
2. the new owner is killed (SIGKILL): nginx closes its clients' connections; the standby takes
   the bus when the lease expires; then it is started again;
3. a rolling restart of all three (drain, start, wait for ``/readyz``, next).

Figures per run: reconnect time p50/p99 after the drain and after the SIGKILL (per client, from
its loss of the connection to the ``subscribed`` answer of its resume: ``BridgeClient.outages``),
and, over the whole run, messages lost (seqs missing between a client's first and last message)
and duplicated (sent twice to a client, or delivered twice), which must be 0 and 0, and resumes
that were not ``recovered``. The last row is the median of the runs (the host is shared: one
run's p99 is one slow moment, the median of several is the figure).

    .venv/bin/python benchmarks/rolling.py                   # 300 clients, 3 runs
    .venv/bin/python benchmarks/rolling.py --clients 100 --runs 1
    .venv/bin/python benchmarks/rolling.py --lease 1.5 --redis-timeout 0.5   # lease churn

Every wait is bounded and every child stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# benchmarks/bridge.py is named like the package the clients come from: keep this folder off
# the path (as mqtt.py does), and the repository root on it (tests.prod.topology, _common)
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks._common import markdown_table  # noqa: E402
from tests.cluster.harness import wait_for  # noqa: E402
from tests.prod.topology import (  # noqa: E402
    SILENT_S,
    Topology,
    Watched,
    close_all,
    explain,
    open_many,
    tally,
    topology,
    wait_past,
)


@dataclass
class Run:
    drain: list[float]  # seconds, one per client of the drained node
    kill: list[float]  # one per client of the killed node
    rolling_s: float  # wall time of the rolling restart
    lost: int
    duplicated: int
    not_recovered: int
    resumes: int


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


async def outages_of(clients: list[Watched], before: dict[int, int]) -> list[float]:
    """Until each of ``clients`` resumed once more than in ``before``; those new outages."""
    await wait_for(
        lambda: all(len(c.client.outages) > before[id(c)] for c in clients), "resumed", 60
    )
    return [c.client.outages[before[id(c)]] for c in clients]


async def away(top: Topology, clients: list[Watched], kill: bool) -> list[float]:
    """Drain (or kill) the owner, time its clients' resumes, start it again."""
    name = await wait_for(top.owner, "an owner", 30)
    node = top.nodes[name]
    on_it = [c for c in clients if c.node == name]
    before = {id(c): len(c.client.outages) for c in on_it}
    if kill:
        await top.kill(node)
    else:
        assert await top.drain(node) == 0, f"{name} did not exit 0"
    times = await outages_of(on_it, before)
    await top.restart(node)
    return times


async def one_run(args: argparse.Namespace) -> Run:
    with tempfile.TemporaryDirectory(prefix="fb-rolling-") as tmp:
        async with topology(
            Path(tmp),
            heartbeat_s=args.heartbeat,
            drain_window_s=args.drain_window,
            command_timeout_s=args.redis_timeout,
            ownership_ttl_s=args.lease,
        ) as top:
            clients = await open_many(top.front, args.clients)
            try:
                await wait_for(lambda: all(len(c.seqs) >= 3 for c in clients), "frames", 60)
                drain = await away(top, clients, kill=False)
                kill = await away(top, clients, kill=True)
                began = time.monotonic()
                for node in top.nodes.values():
                    assert await top.drain(node) == 0, f"{node.name} did not exit 0"
                    await top.restart(node)
                rolling_s = time.monotonic() - began
                await wait_past(clients, max(c.last for c in clients) + 3, "frames after", 60)
                t = tally(clients)
                codes = collections.Counter(k for c in clients for k in c.client.close_codes)
                print(f"close codes seen by the clients: {dict(codes)}", file=sys.stderr)
                silent = sum(c.silence > SILENT_S for c in clients)
                resets = sum(len(c.withdrawn) for c in clients)
                print(
                    f"clients silent > {SILENT_S:.0f} s: {silent}, longest "
                    f"{max(c.silence for c in clients):.1f} s; resets (withdrawn): {resets}",
                    file=sys.stderr,
                )
                for line in explain(clients):
                    print(f"  {line}", file=sys.stderr)
                return Run(
                    drain, kill, rolling_s, t["lost"], t["duplicated"], t["not_recovered"],
                    t["outages"],
                )  # fmt: skip
            finally:
                await close_all(clients)


def figures(r: Run) -> dict[str, float]:
    return {
        "drain p50": pct(r.drain, 50),
        "drain p99": pct(r.drain, 99),
        "SIGKILL p50": pct(r.kill, 50),
        "SIGKILL p99": pct(r.kill, 99),
        "rolling restart": r.rolling_s,
        "resumes": r.resumes,
        "lost": r.lost,
        "duplicated": r.duplicated,
        "not recovered": r.not_recovered,
    }


def cells(label: str, f: dict[str, float]) -> list[str]:
    ms = [f"{1000 * f[k]:.0f} ms" for k in ("drain p50", "drain p99", "SIGKILL p50", "SIGKILL p99")]
    counts = [f"{f[k]:.0f}" for k in ("resumes", "lost", "duplicated", "not recovered")]
    return [label, *ms, f"{f['rolling restart']:.1f} s", *counts]


async def main_async(args: argparse.Namespace) -> None:
    runs = []
    for i in range(args.runs):
        runs.append(figures(await one_run(args)))
        print(f"run {i + 1}/{args.runs}: {runs[-1]}", file=sys.stderr, flush=True)
    rows = [cells(f"run {i + 1}", f) for i, f in enumerate(runs)]
    if len(runs) > 1:
        median = {k: statistics.median(f[k] for f in runs) for k in runs[0]}
        total = {k: sum(f[k] for f in runs) for k in ("lost", "duplicated", "not recovered")}
        rows.append(cells("median (counts: sum)", {**median, **total}))
    print(
        f"\n{args.clients} clients through nginx, 3 nodes, drain window {args.drain_window} s, "
        f"heartbeat {args.heartbeat} s; reconnect = loss of the connection -> resumed "
        "subscription\n"
    )
    headers = ["", "drain p50", "drain p99", "SIGKILL p50", "SIGKILL p99", "rolling restart",
               "resumes", "lost", "duplicated", "not recovered"]  # fmt: skip
    print(markdown_table(headers, rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--drain-window", type=float, default=1.0, help="limits.drain_window_s")
    ap.add_argument("--heartbeat", type=float, default=5.0, help="limits.heartbeat_s")
    ap.add_argument("--lease", type=float, default=5.0, help="redis.ownership_ttl_s")
    ap.add_argument("--redis-timeout", type=float, default=2.0, help="redis.command_timeout_s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
