"""The commands as a user types them: sim --tap (over TCP too), monitor --write, replay --sim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from frames.commands import READ_REGS
from frames.frame import Frame
from frames.io.capture import CaptureWriter, read_capture
from frames.io.serial_sync import Master

from .helpers import records_of

CLI = [sys.executable, "-m", "bridge.cli"]
READ_REGS_REQ = Frame(1, 3, b"\x00\x00\x02")
READ_REGS_REP = Frame(1, 3, b"\x02\xd2\x08\x8e\x01")


@contextmanager
def running(args: list[str], lines: int) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """Start a command, read its first ``lines`` stdout lines (its announcements), stop it."""
    proc = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        got = [proc.stdout.readline().strip() for _ in range(lines)]
        assert all(got), (got, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        yield proc, got
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


def test_monitor_on_the_tap_of_a_tcp_bus_writes_what_the_master_did(tmp_path: Path) -> None:
    tap, cap = tmp_path / "tap", tmp_path / "mon.pcapng"
    with running(["sim", "--tcp", "127.0.0.1:0", "--tap", str(tap), "--devices", "2"], 2) as (
        _,
        announced,
    ):
        url = announced[1].split("\t")[0]
        assert url.startswith("socket://") and os.path.islink(tap)
        mon = subprocess.Popen(
            [*CLI, "monitor", str(tap), "--write", str(cap), "--count", "6", "--json",
             "--duration", "20", "--addr", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        replies = []
        # The monitor attaches when its process is up: keep the bus busy until it has seen
        # its 6 frames and exits (bounded by the request count and its own --duration).
        with Master(url, timeout=1.0, retries=0) as master:
            data = READ_REGS.encode_request({"start": 0, "count": 1})
            for i in range(2000):
                if mon.poll() is not None:
                    break
                replies.append(master.request(1 + i % 2, 3, data))
        out, err = mon.communicate(timeout=30)
    assert mon.returncode == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["addr"] for x in lines] == [2] * 6  # --addr 2: requests and replies of device 2
    recs = list(read_capture(cap))
    assert [r.wire.hex() for r in recs] == [x["hex"] for x in lines]
    seen_replies = [r.frame for r in recs if r.frame and r.frame.data[:1] == b"\x01"]
    assert seen_replies and all(f in replies for f in seen_replies)


def test_replay_sim_answers_a_request_as_recorded(tmp_path: Path) -> None:
    recs = records_of([READ_REGS_REQ, READ_REGS_REP])
    cap = tmp_path / "one.pcapng"
    with CaptureWriter.open(cap) as w:
        for r in recs:
            w.write(r)
    link = tmp_path / "rp"
    with running(["replay", str(cap), "--sim", "--link", str(link), "--duration", "20"], 1):
        out = subprocess.run(
            [*CLI, "request", str(link), "--addr", "1", "--cmd", "read_regs", "start=0", "count=2"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["fields"] == {"count": 2, "values": [2258, 398]}
