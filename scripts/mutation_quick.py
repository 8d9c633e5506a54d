"""The quick mutation check `make test` runs after pytest (issue 18; the full run: `make mutation`).

A fixed list of one-token mutants of the two rules that once survived the whole suite (the
stream decoder's lookahead, the history's resume rule) and their neighbours. Each mutant is
loaded in a fresh interpreter in place of the real module (an import hook, no file is touched)
and the tests that pin the rule must fail. The score is killed / listed; the run fails when it
is below RECORDED (every one killed today) or when a mutant's source text is gone (the list
must follow the code: update it, and docs/testing.md, with the change).

    python scripts/mutation_quick.py          # all, about 30 s on one core
    python scripts/mutation_quick.py -v       # say which test killed each
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
RECORDED = 1.0  # the score recorded in docs/testing.md; the check fails below it

STREAM_TESTS = ["tests/frames/test_stream.py", "tests/frames/test_mutants.py"]
HISTORY_TESTS = ["tests/bridge/test_pure.py", "tests/bridge/test_mutants.py"]


@dataclass(frozen=True)
class Mutant:
    module: str  # dotted name of the module replaced
    old: str  # source text found exactly once in the module
    new: str  # what it becomes
    tests: tuple[str, ...]

    @property
    def path(self) -> Path:
        return ROOT / (self.module.replace(".", "/") + ".py")


def _m(module: str, old: str, new: str, tests: list[str]) -> Mutant:
    return Mutant(module, old, new, tuple(tests))


MUTANTS = [
    # The lookahead's search window must reach the last place a whole frame fits.
    _m(
        "frames.stream",
        "data.find(start, i + 1, n - mins + 1)",
        "data.find(start, i + 1, n - mins)",
        STREAM_TESTS,
    ),
    _m(
        "frames.stream",
        "data.find(start, i + 1, n - mins + 1)",
        "data.find(start, i + 2, n - mins + 1)",
        STREAM_TESTS,
    ),
    _m(
        "frames.stream",
        "and self._frame_after(data, i + 1)",
        "and self._frame_after(data, i + 2)",
        STREAM_TESTS,
    ),
    _m("frames.stream", "and end <= n\n", "and end < n\n", STREAM_TESTS),
    _m(
        "frames.stream",
        "self.lookahead\n                    and data.find",
        "not self.lookahead\n                    and data.find",
        STREAM_TESTS,
    ),
    _m(
        "frames.stream",
        "abandoned += 1\n                    discarded += 1",
        "abandoned += 1\n                    discarded += 2",
        STREAM_TESTS,
    ),
    # The resume rule: a seq from the future, a negative one, the head, a hole.
    _m("bridge.history", "seq > self.seq or seq < 0", "seq > self.seq and seq < 0", HISTORY_TESTS),
    _m("bridge.history", "seq > self.seq or seq < 0", "seq >= self.seq or seq < 0", HISTORY_TESTS),
    _m("bridge.history", "seq > self.seq or seq < 0", "seq > self.seq or seq < 1", HISTORY_TESTS),
    _m(
        "bridge.history",
        "seq > self.seq or seq < 0",
        "seq > self.seq + 1 or seq < 0",
        HISTORY_TESTS,
    ),
    _m("bridge.history", "oldest > seq + 1", "oldest >= seq + 1", HISTORY_TESTS),
    _m("bridge.history", "oldest > seq + 1", "oldest > seq + 2", HISTORY_TESTS),
    _m("bridge.history", "entries[0].ts < limit", "entries[0].ts <= limit", HISTORY_TESTS),
]


class _Replace(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serve ``module`` from ``source`` instead of its file (whose path tracebacks show)."""

    def __init__(self, module: str, source: str, path: Path) -> None:
        self.module, self.source, self.path = module, source, path

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.module:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=str(self.path))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        module.__file__ = str(self.path)
        exec(compile(self.source, str(self.path), "exec"), module.__dict__)


def mutated_source(m: Mutant) -> str:
    text = m.path.read_text(encoding="utf-8")
    count = text.count(m.old)
    if count != 1:
        raise SystemExit(
            f"mutation_quick: {m.module}: {m.old!r} found {count} times (expected once); "
            "the list in scripts/mutation_quick.py no longer matches the code"
        )
    return text.replace(m.old, m.new)


def run_one(index: int) -> int:
    """In a fresh interpreter: install the mutant, run its tests, return pytest's code."""
    import pytest

    m = MUTANTS[index]
    sys.meta_path.insert(0, _Replace(m.module, mutated_source(m), m.path))
    args = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--no-header"]
    return int(pytest.main([*args, *(str(ROOT / t) for t in m.tests)]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("-v", "--verbose", action="store_true")
    opts = ap.parse_args()
    if opts.one is not None:
        return run_one(opts.one)
    t0 = time.monotonic()
    survivors = []
    for i, m in enumerate(MUTANTS):
        mutated_source(m)  # fail fast on a stale list
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(i)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        killed = proc.returncode == 1  # tests failed; 2+ would be an error of the harness
        if proc.returncode not in (0, 1):
            sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
            print(f"mutation_quick: mutant {i} did not run (pytest exit {proc.returncode})")
            return 2
        if not killed:
            survivors.append(m)
        if opts.verbose or not killed:
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED")), "")
            state = "killed" if killed else "SURVIVED"
            print(f"  {state}: {m.module}: {m.old.strip()!r} -> {m.new.strip()!r} {line}")
    score = (len(MUTANTS) - len(survivors)) / len(MUTANTS)
    took = time.monotonic() - t0
    print(
        f"mutation_quick: {len(MUTANTS) - len(survivors)}/{len(MUTANTS)} mutants killed "
        f"(score {score:.0%}, recorded {RECORDED:.0%}) in {took:.0f} s"
    )
    return 0 if score >= RECORDED else 1


if __name__ == "__main__":
    raise SystemExit(main())
