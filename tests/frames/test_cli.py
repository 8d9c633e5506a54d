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
    res = run("encode", "--addr", "1", "--cmd", "3", "--data", "000002")
    assert res.returncode == 0
    assert res.stdout.decode().strip() == "aa010303000002c44f"


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
    res = run("decode", "aa010303000002c44f", "aa010303000002c44e")
    assert res.returncode == 1
    line = json.loads(res.stdout.decode().splitlines()[0])
    fields = {"start": 0, "count": 2}
    assert line == {"addr": 1, "cmd": 3, "name": "read_regs", "data": "000002", "fields": fields}
    assert b"CrcMismatch" in res.stderr


def test_decode_of_non_hex_says_so_plainly() -> None:
    res = run("decode", "zz")
    assert res.returncode == 1
    assert res.stderr.decode().strip() == "error: 'zz' is not hex (e.g. aa0101...)"


def test_tagged_encode_and_decode() -> None:
    res = run("encode", "--addr", "1", "--cmd", "read_regs", "--data", "000002", "--tagged")
    assert res.stdout.decode().strip() == "aa010300030000028a76"
    res = run("encode", "--addr", "1", "--cmd", "3", "--data", "000002", "--tagged", "--tag", "7")
    wire = res.stdout.decode().strip()
    assert wire == "aa010307030000023fb6"
    assert json.loads(run("decode", "--tagged", wire).stdout)["tag"] == 7


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
    frame = bytes.fromhex("aa010303000002c44f")
    res = run("decode", "-", stdin=(frame.hex() + " ff " + frame.hex()).encode())
    assert len(res.stdout.splitlines()) == 2
    assert res.returncode == 1 and b"discarded" in res.stderr  # the stray ff byte is reported
    res = run("decode", "--raw", "-", stdin=frame + frame)
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 2
