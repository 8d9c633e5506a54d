"""The README's Python blocks (and the client example in docs/websocket.md) run as written.

Each block runs in its own Python process, as a user pasting it into ``python -m asyncio``
would (top-level ``await`` allowed), against real parts: ``framebridge sim`` on a pty and on
TCP, and a ``framebridge demo`` bridge. Only the addresses a reader would change are replaced
(``/dev/ttyUSB0``, ``socket://127.0.0.1:7000``, ``ws://127.0.0.1:8765/ws``), and the test checks
that those literals are really in the block, so the README cannot drift away from what runs.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TIMEOUT = 60.0

# One process per block: compile with top-level await (what `python -m asyncio` does), run it.
RUNNER = """
import ast, asyncio, inspect, sys
source = sys.stdin.read()
code = compile(source, "<README block>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
async def main():
    result = eval(code, {"__name__": "__main__"})
    if inspect.iscoroutine(result):
        await result
asyncio.run(main())
"""


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


@dataclass
class Parts:
    pty: str  # the simulator's pty link, standing in for /dev/ttyUSB0
    tcp: str  # the simulator's socket:// URL
    ws: str  # the demo bridge's WebSocket URL


async def _first_line(proc: asyncio.subprocess.Process, prefix: str = "") -> str:
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line, "process ended before it was ready"
        if line.startswith(prefix):
            return line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    link = tmp_path / "ttyUSB0"
    procs = [
        await _spawn("sim", "--devices", "3", "--link", str(link)),
        await _spawn("sim", "--devices", "3", "--tcp", f"127.0.0.1:{_free_port()}"),
        await _spawn("demo", "--listen", "127.0.0.1:0", "--devices", "2", "--interval", "0.1"),
    ]
    try:
        await _first_line(procs[0])
        tcp = (await _first_line(procs[1])).split("\t")[0]
        ws = (await _first_line(procs[2], "websocket:")).split()[1]
        yield Parts(pty=str(link), tcp=tcp, ws=ws)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)


def _blocks() -> list[object]:
    cases: list[object] = []
    sources = [("README", b) for b in python_blocks(README)]
    sources += [("websocket.md", b) for b in python_blocks(ROOT / "docs" / "websocket.md")]
    for i, (doc, block) in enumerate(sources):
        cases.append(pytest.param(block, id=f"{doc}-{i}"))
    return cases


def test_the_readme_has_its_python_blocks() -> None:
    blocks = python_blocks(README)
    assert len(blocks) == 3
    assert "read_registers(2, 0, 4)" in blocks[0]  # the thermo profile has 6 registers, not 10


@pytest.mark.parametrize("block", _blocks())
async def test_block_runs_as_written(block: str, parts: Parts) -> None:
    replaced = block
    for literal, value in [
        ('"/dev/ttyUSB0"', f'"{parts.pty}"'),
        ('"socket://127.0.0.1:7000"', f'"{parts.tcp}"'),
        ('"ws://127.0.0.1:8765/ws"', f'"{parts.ws}"'),
    ]:
        replaced = replaced.replace(literal, value)
    assert replaced != block or "SimulatedBus" in block  # every block talks to something
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUNNER,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(replaced.encode()), TIMEOUT)
    assert proc.returncode == 0, err.decode()[-3000:]
    if "identify(1)" in block and "print" in block:
        assert b"THERMO-1" in out
    if "client.request" in block:
        assert b"'ok': True" in out


def test_make_demo_takes_another_port() -> None:
    res = subprocess.run(
        ["make", "-n", "demo", "PORT=9000", "ARGS=--devices 5"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert ".venv/bin/framebridge demo --listen 127.0.0.1:9000 --devices 5" in res.stdout
    default = subprocess.run(
        ["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert ".venv/bin/framebridge demo --listen 127.0.0.1:8765" in default.stdout


def test_the_top_two_commands_stay() -> None:
    text = README.read_text()
    assert "make demo   # simulated devices + bridge + dashboard" in text
    assert "make test   # ruff, mypy --strict and the whole test suite" in text


def test_every_framebridge_line_names_a_real_subcommand() -> None:
    from bridge.cli import build_parser

    parser = build_parser()
    sh = "".join(re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.S | re.M))
    lines = [ln.split("#")[0].strip() for ln in sh.splitlines() if "framebridge " in ln]
    assert len(lines) >= 8
    for line in lines:
        words = line.split("|")[-1].split()
        sub = words[words.index("framebridge") + 1]
        with pytest.raises(SystemExit) as ok:  # `SUB --help` exits 0 only for a real one
            parser.parse_args([sub, "--help"])
        assert ok.value.code == 0, line
    assert "`. .venv/bin/activate`" in README.read_text()  # says where framebridge lives
