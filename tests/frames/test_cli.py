"""`framebridge encode` / `decode` as a user runs them (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args], input=stdin, capture_output=True, timeout=30
    )


def test_encode_prints_hex() -> None:
    res = run("encode", "--addr", "1", "--cmd", "3", "--data", "00000002")
    assert res.returncode == 0
    assert res.stdout.decode().strip() == "aa010304000000027bf2"


def test_encode_by_name_and_variant() -> None:
    res = run(
        "encode",
        "--addr",
        "1",
        "--cmd",
        "read_regs",
        "--data",
        "000004",
        "--crc",
        "crc-ccitt-false",
        "--crc-byteorder",
        "big",
    )
    assert res.stdout.decode().strip() == "aa0103030000047e3a"


def test_encode_rejects_bad_address() -> None:
    res = run("encode", "--addr", "300", "--cmd", "3")
    assert res.returncode != 0 and b"address 300" in res.stderr


def test_decode_args_json_and_error_line() -> None:
    res = run("decode", "aa01030300000437e1"[:0] + "aa010304000000027bf2", "aa010304000000027bf3")
    assert res.returncode == 1
    line = json.loads(res.stdout.decode().splitlines()[0])
    assert line == {"addr": 1, "cmd": 3, "name": "read_regs", "data": "00000002"}
    assert b"CrcMismatch" in res.stderr


def test_decode_fields_for_known_commands() -> None:
    wire = (
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bridge.cli",
                "encode",
                "--addr",
                "2",
                "--cmd",
                "3",
                "--data",
                "000004",
            ],
            capture_output=True,
            timeout=30,
        )
        .stdout.decode()
        .strip()
    )
    obj = json.loads(run("decode", wire).stdout)
    assert obj["fields"] == {"start": 0, "count": 4}


def test_decode_stdin_hex_and_raw() -> None:
    frame = bytes.fromhex("aa010304000000027bf2")
    res = run("decode", "-", stdin=(frame.hex() + " ff " + frame.hex()).encode())
    assert len(res.stdout.splitlines()) == 2
    assert res.returncode == 1 and b"discarded" in res.stderr  # the stray ff byte is reported
    res = run("decode", "--raw", "-", stdin=frame + frame)
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 2
