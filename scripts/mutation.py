"""`make mutation`: mutmut over the pure cores, one module at a time, and a score per module.

Why one module at a time: mutmut runs, for each mutant, only the selected tests that reached the
mutated function (``[tool.mutmut]`` in pyproject.toml lists the fast, pure test files), so a
module is minutes, not hours; a run can be cut short and resumed (results are kept in mutants/).

    python scripts/mutation.py                      # every module, in order of importance
    python scripts/mutation.py frames.stream        # one (or a few) modules
    python scripts/mutation.py --report             # scores from the last runs, no running
    python scripts/mutation.py --survivors frames.stream   # each survivor's diff

The score is killed / (mutants - equivalent): timeouts count as killed (the mutant hung the
tests), "no tests" as not killed. Equivalent mutants are listed in docs/testing.md, one line
each: ``- `NAME`: reason``; the report reads them from there.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if len(sys.argv) > 1 and sys.argv[1] == "--root":  # to read another copy's results
    ROOT = Path(sys.argv[2])
    del sys.argv[1:3]
MUTMUT = [sys.executable, "-m", "mutmut"]
DOC = ROOT / "docs" / "testing.md"

# In order of importance (issue 18): what a user meets first when a rule is wrong.
MODULES = [
    "frames.stream",
    "bridge.history",
    "bridge.store",
    "frames.codec",
    "frames.crc",
    "bridge.connection",
    "bridge.views",
    "frames.master",
    "frames.transaction",
    "frames.slave",
    "bridge.session",
    "bridge.contract",
    "frames.register",
    "frames.devicemap",
    "frames.payloads",
    "frames.commands",
    "bridge.local_fanout",
    "bridge.resume_wait",
]

KILLED = {1, 3, 24, -24, 36, 152, 255, 37}  # failed tests, pytest error, timeout, type check
SURVIVED = {0}


def equivalents() -> set[str]:
    """Mutant names docs/testing.md lists as equivalent (``- `name`: reason``)."""
    if not DOC.exists():
        return set()
    return set(re.findall(r"^- `([^`]+__mutmut_\d+)`", DOC.read_text(encoding="utf-8"), re.M))


def results(module: str) -> dict[str, int | None]:
    meta = ROOT / "mutants" / (module.replace(".", "/") + ".py.meta")
    if not meta.exists():
        return {}
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return codes


def score_line(module: str, equiv: set[str]) -> str:
    codes = results(module)
    if not codes:
        return f"| {module} | not run | | | | |"
    eq = {k for k, v in codes.items() if v in SURVIVED and k.split(".")[-1] in equiv}
    killed = sum(1 for v in codes.values() if v in KILLED)
    unchecked = sum(1 for v in codes.values() if v is None)
    live = len(codes) - len(eq) - unchecked
    survived = live - killed
    pct = f"{killed / live:.1%}" if live else "-"
    note = f" ({unchecked} not checked)" if unchecked else ""
    return f"| {module} | {len(codes)}{note} | {killed} | {len(eq)} | {survived} | {pct} |"


def report() -> str:
    equiv = equivalents()
    lines = [
        "| module | mutants | killed | equivalent | not killed | score |",
        "|---|---|---|---|---|---|",
    ]
    lines += [score_line(mod, equiv) for mod in MODULES]
    return "\n".join(lines)


def survivors(module: str) -> list[str]:
    """Each surviving, not-equivalent mutant of ``module`` with the lines it changes."""
    path = ROOT / "mutants" / (module.replace(".", "/") + ".py")
    src = path.read_text(encoding="utf-8")
    funcs = {
        n.name: ast.get_source_segment(src, n) or ""
        for n in ast.walk(ast.parse(src))
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    equiv = equivalents()
    out = []
    for key, code in results(module).items():
        name = key.split(".")[-1]
        if code in KILLED or name in equiv:
            continue
        base = name.rsplit("__mutmut_", 1)[0]
        old = funcs.get(base + "__mutmut_orig", "").splitlines()[1:]
        new = funcs.get(name, "").splitlines()[1:]
        diff = [
            ln.strip()
            for ln in difflib.unified_diff(old, new, lineterm="", n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
        ]
        out.append(f"{name} (exit {code}): " + " => ".join(diff))
    return out


def run(modules: list[str]) -> int:
    for mod in modules:
        t0 = time.monotonic()
        proc = subprocess.run([*MUTMUT, "run", f"{mod}.*"], cwd=ROOT, stdout=subprocess.DEVNULL)
        took = time.monotonic() - t0
        print(f"mutation: {mod}: {took:.0f} s (mutmut exit {proc.returncode})", flush=True)
    print(report())
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"default: all ({', '.join(MODULES)})")
    ap.add_argument("--report", action="store_true", help="print the scores of the last runs")
    ap.add_argument("--survivors", action="store_true", help="list survivors with their diffs")
    opts = ap.parse_args()
    unknown = [m for m in opts.modules if m not in MODULES]
    if unknown:
        ap.error(f"not a module of the mutation run: {', '.join(unknown)}")
    if opts.survivors:
        for mod in opts.modules or MODULES:
            print("\n".join(survivors(mod)))
        return 0
    if opts.report:
        print(report())
        return 0
    return run(opts.modules or MODULES)


if __name__ == "__main__":
    raise SystemExit(main())
