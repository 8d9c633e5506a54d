"""Quota-check micro-benchmark: what one tenant's request costs in the admission path.

Run from the repository root::

    .venv/bin/python benchmarks/quota.py [--checks 200000] [--runs 5]

Times ``TenantPolicy.admit_request`` + ``request_done`` (write patterns with a command, the
tier's timeout cap, in-flight count and token bucket: every check a request goes through) and,
apart, the pattern match alone and a refused (over quota) request. CPU time
(``time.process_time``), ``--runs`` runs interleaved, the median reported per check. The target
is under 2 µs per check (issue 12).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

# benchmarks/bridge.py is named like the package measured: keep this folder off the import path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("_common", _HERE / "_common.py")
assert _spec is not None and _spec.loader is not None
_common = importlib.util.module_from_spec(_spec)
sys.modules["_common"] = _common
_spec.loader.exec_module(_common)

from bridge.acl import Principal, Tier, parse_pattern  # noqa: E402
from bridge.contract import Request  # noqa: E402
from bridge.quota import TenantPolicy  # noqa: E402

interleaved, markdown_table = _common.interleaved, _common.markdown_table


def jobs(checks: int) -> dict[str, Callable[[], object]]:
    clock_now = [1000.0]
    tier = Tier("pro", 15, 10**9, 60.0, 1e12, None, 256)
    patterns = tuple(parse_pattern(p) for p in ("bus0/1", "bus0/2:write_reg", "bus1/*"))
    who = Principal("acme", tenant="acme", read=patterns, write=patterns, tier=tier)
    policy = TenantPolicy(10_000, lambda: clock_now[0])
    request = Request("bus1", 7, "read_regs", timeout_s=1.0)
    full = TenantPolicy(10_000, lambda: clock_now[0])
    full.usage_of("acme").inflight = 10**9 + 1

    def admit() -> None:
        admit_request, done = policy.admit_request, policy.request_done
        for _ in range(checks):
            admit_request(who, request)
            done(who, request)

    def refused() -> None:
        admit_request = full.admit_request
        for _ in range(checks):
            admit_request(who, request)

    def patterns_only() -> None:
        may = who.may_request
        for _ in range(checks):
            may("bus1", 7, "read_regs")

    return {"admit + done": admit, "refused (quota)": refused, "write patterns only": patterns_only}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checks", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    timings = interleaved(jobs(args.checks), args.runs)
    rows = [
        [name, f"{t.median / args.checks * 1e6:.2f} µs", f"{t.best / args.checks * 1e6:.2f} µs"]
        for name, t in timings.items()
    ]
    print(markdown_table(["check", "median per check", "best per check"], rows))


if __name__ == "__main__":
    main()
