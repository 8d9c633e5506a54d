"""``framebridge request`` and ``framebridge monitor`` on real ptys, run through the CLI."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from bridge.cli import main
from frames import encode
from frames.io import SlavePort
from frames.io.cli import parse_fields
from frames.slave import SlaveGroup

from .conftest import Pty

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def device(pty: Pty, group: SlaveGroup) -> Iterator[Pty]:
    port = SlavePort(group, fd=pty.fd, reply_filter=lambda out: None if out[1] == 3 else out)
    thread = threading.Thread(target=port.serve, kwargs={"poll": 0.02}, daemon=True)
    thread.start()
    yield pty
    port.stop()
    thread.join(5)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_request_identify_prints_json(device: Pty, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["request", device.path, "--addr", "1", "--cmd", "identify"], capsys)
    assert code == 0
    reply = json.loads(out)
    assert reply["addr"] == 1 and reply["name"] == "identify"
    assert reply["fields"]["model"] == "DEV1" and reply["elapsed_ms"] >= 0


@pytest.mark.parametrize(
    "payload",
    [
        ["--arg", "start=2", "--arg", "count=3"],
        ["start=2", "count=0x3"],
        ["--data", "020003"],
    ],
)
def test_request_payload_forms(
    device: Pty, capsys: pytest.CaptureFixture[str], payload: list[str]
) -> None:
    code, out, _ = run(["request", device.path, "--addr", "2", "--cmd", "3", *payload], capsys)
    assert code == 0
    assert json.loads(out)["fields"]["values"] == [2002, 2003, 2004]


def test_request_write_regs_with_a_list(device: Pty, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["request", device.path, "--addr", "1", "--cmd", "write_regs", "start=4", "values=7,8"]
    code, out, _ = run(argv, capsys)
    assert code == 0 and json.loads(out)["fields"] == {"start": 4, "count": 2}


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--addr", "3", "--cmd", "echo", "--timeout", "0.05", "--retries", "0"], 3, "timeout"),
        (["--addr", "1", "--cmd", "read_regs", "start=63", "count=5"], 4, "illegal register"),
        (["--addr", "1", "--cmd", "no_such"], 2, "unknown command"),
        (["--addr", "1", "--cmd", "read_regs", "start"], 2, "NAME=VALUE"),
        (["--addr", "1", "--cmd", "read_regs", "count=0", "start=0"], 2, "cannot build"),
    ],
)
def test_request_errors_exit_non_zero(
    device: Pty, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    got, out, err = run(["request", device.path, *argv], capsys)
    assert got == code and out == ""
    assert message in err


def test_request_names_a_missing_field(device: Pty, capsys: pytest.CaptureFixture[str]) -> None:
    got, _, err = run(
        ["request", device.path, "--addr", "1", "--cmd", "read_regs", "start=0"], capsys
    )
    assert got == 2
    assert "cannot build read_regs request: missing field 'count'" in err


def test_request_usage_does_not_require_named_fields(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["request"])
    err = capsys.readouterr().err
    assert "required: PORT, --addr, --cmd" in err and "NAME=VALUE" not in err.splitlines()[-1]


def test_request_on_missing_port(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["request", "/dev/does-not-exist", "--addr", "1", "--cmd", "1"], capsys)
    assert code == 5 and "link down" in err


def test_parse_fields() -> None:
    assert parse_fields(["a=1", "b=0x10", "c=1,2", "d=hex:0aff", "e=text"]) == {
        "a": 1,
        "b": 16,
        "c": [1, 2],
        "d": b"\x0a\xff",
        "e": "text",
    }


@pytest.mark.parametrize("as_json", [False, True])
def test_monitor_decodes_a_bus(pty: Pty, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    good = encode(1, 3, bytes([0, 0, 2])) + encode(1, 3, bytes([2, 7, 0, 8, 0]))
    bad = bytearray(encode(2, 2, b"damaged"))
    bad[5] ^= 0xFF
    result: list[int] = []
    argv = ["monitor", pty.path, "--count", "2", "--duration", "10"]
    argv += ["--json"] if as_json else []
    thread = threading.Thread(target=lambda: result.append(main(argv)), daemon=True)
    thread.start()
    # The monitor flushes its input when it opens the port, so keep the bus talking until it
    # has seen enough (the bound is the thread join below).
    while thread.is_alive():
        os.write(pty.fd, bytes(bad) + good)
        thread.join(0.02)
    assert result == [0]
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    frames = [ln for ln in lines if "addr" in ln]
    assert len(frames) == 2
    if as_json:
        objs = [json.loads(ln) for ln in frames]
        assert objs[0]["hex"] == encode(1, 3, bytes([0, 0, 2])).hex() and objs[0]["ts"] > 0
        assert objs[1]["fields"]["values"] == [7, 8]
        assert any("crc_errors" in json.loads(ln) for ln in lines if "crc_errors" in ln)
    else:
        assert "read_regs" in frames[0] and "hex=aa0103" in frames[0]
        assert '"values": [7, 8]' in frames[1]
        assert "CRC/framing error" in out
    assert "2 frame(s)" in err


def test_monitor_duration_bound(pty: Pty, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["monitor", pty.path, "--duration", "0.1"], capsys)
    assert code == 0 and out == "" and "0 frame(s)" in err


def test_monitor_stops_on_sigterm_with_its_summary(pty: Pty) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "monitor", pty.path, "--duration", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # keep the bus talking until the monitor prints a frame: then it is surely running
        deadline = time.monotonic() + 15
        ready = select.select([proc.stdout], [], [], 0)[0]
        while not ready and time.monotonic() < deadline:
            os.write(pty.fd, encode(1, 2, b"hi"))
            ready = select.select([proc.stdout], [], [], 0.05)[0]
        assert ready, "monitor printed nothing"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert out.strip() and "frame(s)" in err
