"""Small helpers shared by the benchmark scripts: CPU-time medians, rates, Markdown tables,
child processes that answer in JSON lines.

The machine the benchmarks run on is shared and noisy, so every measurement is CPU time
(:func:`time.process_time`, not wall time), each job runs several times and reports the median,
and the peers a benchmark compares against run *interleaved* with it in the same process (round
``k`` times every job once before round ``k + 1`` starts), so a slow patch hits all of them.
"""

from __future__ import annotations

import contextlib
import gc
import json
import selectors
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "Child",
    "Timing",
    "cpu_time",
    "fmt_rate",
    "interleaved",
    "markdown_table",
    "ratio",
    "stop_process",
]

T = TypeVar("T")


def cpu_time(job: Callable[[], T]) -> tuple[float, T]:
    """CPU seconds one call of ``job`` took, with the cyclic garbage collector paused."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.process_time()
        result = job()
        elapsed = time.process_time() - t0
    finally:
        if was_enabled:
            gc.enable()
    return elapsed, result


@dataclass(frozen=True)
class Timing:
    """CPU seconds of every run of one job."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def best(self) -> float:
        """The fastest run: noise only ever adds time, so this is the least disturbed one."""
        return min(self.runs)


def interleaved(jobs: dict[str, Callable[[], object]], runs: int) -> dict[str, Timing]:
    """CPU seconds of each job over ``runs`` rounds; every round runs every job once.

    Everything alive before the first round (the inputs) is frozen out of the collector's reach
    first, so no job pays for scanning another job's data.
    """
    gc.collect()
    gc.freeze()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    try:
        for _ in range(runs):
            for name, job in jobs.items():
                times[name].append(cpu_time(job)[0])
                gc.collect()
    finally:
        gc.unfreeze()
    return {name: Timing(tuple(ts)) for name, ts in times.items()}


def fmt_rate(per_second: float, unit: str = "frames/s") -> str:
    """``1234567`` → ``1.23M frames/s``; ``234567`` → ``235k frames/s``."""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f}M {unit}"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.0f}k {unit}"
    return f"{per_second:.0f} {unit}"


def ratio(ours: float, theirs: float) -> str:
    """``ours / theirs`` as ``4.2x`` (rates: higher is better)."""
    return f"{ours / theirs:.1f}x" if theirs > 0 else "n/a"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table with padded columns (readable as plain text too)."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


class Child:
    """A child process speaking one JSON line per answer on stdout."""

    def __init__(self, argv: list[str], timeout: float) -> None:
        self.timeout = timeout
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.timeout
        while True:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"child {self.proc.args!r} did not answer")
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"child {self.proc.args!r} exited {self.proc.wait()}")
            if line.startswith("{"):
                return json.loads(line)  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send("quit")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
