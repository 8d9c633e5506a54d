"""Issue 10 break 4: a real ``framebridge bridge`` process at a low ``RLIMIT_NOFILE`` (soft and
hard, so the bridge cannot raise it) keeps answering ``/healthz``, refuses new WebSocket clients
with a clean 503, backs off accepting on ``EMFILE`` instead of spinning, and keeps its log
small. On the old code the accept loop failed in a tight loop: new clients and ``/healthz``
timed out and the log grew by megabytes a second."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.servers import stop_process

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_NOFILE and /proc")

FD_LIMIT = 160
BIN = Path(sys.executable).parent / "framebridge"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _limit_fds() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@contextlib.contextmanager
def bridge_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    config = tmp_path / "bridge.toml"
    config.write_text('[server]\nlisten = "127.0.0.1:0"\n[limits]\nhello_timeout_s = 60\n')
    log = tmp_path / "bridge.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [str(BIN), "bridge", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=_limit_fds,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "websocket: ws://127.0.0.1:PORT/ws" (bounded below)
        assert line.startswith("websocket: "), line
        port = int(line.split()[1].rsplit(":", 1)[1].split("/")[0])
        yield proc, port, log
    finally:
        stop_process(proc)


def healthz(port: int) -> int:
    with _OPENER.open(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return int(r.status)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _client(port: int) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{port}/ws", compression=None, open_timeout=5)
    await ws.send(json.dumps({"type": "hello", "token": "t"}))
    await asyncio.wait_for(ws.recv(), 5)
    return ws


@pytest.mark.timeout(120)
async def test_out_of_descriptors_refuses_cleanly_and_keeps_healthz(tmp_path: Path) -> None:
    with bridge_process(tmp_path) as (proc, port, log):
        held: list[ClientConnection] = []
        statuses: list[int] = []
        try:
            for _ in range(FD_LIMIT * 2):  # more clients than the process has descriptors
                try:
                    held.append(await _client(port))
                except InvalidStatus as exc:
                    statuses.append(exc.response.status_code)
                    if len(statuses) >= 50:
                        break
            assert statuses and set(statuses) == {503}, statuses[:5]
            assert FD_LIMIT - 80 < len(held) < FD_LIMIT  # refused early, with a margin
            assert await asyncio.to_thread(healthz, port) == 200

            # a burst of raw connections at once runs into EMFILE: the listener backs off
            # (no busy loop, no log flood) and serves again once they are gone
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            opened = await asyncio.gather(
                *(
                    asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
                    for _ in range(300)
                ),
                return_exceptions=True,  # past the listen backlog a connect may time out
            )
            host_socks = [pair for pair in opened if isinstance(pair, tuple)]
            assert len(host_socks) > 100
            await asyncio.sleep(2.0)  # a window for measuring CPU, not a synchronisation
            cpu = cpu_seconds(proc.pid) - cpu0
            assert cpu < 0.6 * (time.monotonic() - t0), f"bridge spun: {cpu:.2f} s CPU"
            for _reader, writer in host_socks:
                writer.close()
            deadline = time.monotonic() + 15
            while True:  # back within a few accept back-offs
                try:
                    assert await asyncio.to_thread(healthz, port) == 200
                    break
                except OSError:
                    assert time.monotonic() < deadline, "/healthz did not come back"
        finally:
            for ws in held:
                with contextlib.suppress(Exception):
                    await ws.close()
    size = log.stat().st_size
    assert size < 32 * 1024, f"log grew to {size} bytes:\n{log.read_text()[:2000]}"
    assert "Traceback" not in log.read_text()


def test_soft_limit_is_raised_to_the_hard_one_and_logged_once() -> None:
    """Fails on the old code: the bridge kept whatever soft limit it was started with."""
    code = (
        "import logging, resource, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "from bridge.edge import raise_nofile_limit\n"
        "print('now', raise_nofile_limit(), raise_nofile_limit(), hard)\n"
        "print('soft', resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    ).stdout.splitlines()
    hard = out[1].split()[3]
    assert out[0] == f"event=fd_limit raised_from=64 soft={hard}"  # one line for two calls
    assert out[1] == f"now {hard} {hard} {hard}"
    assert out[2] == f"soft {hard}"
