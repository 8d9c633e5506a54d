"""Command registry: standard payload layouts, round trips, errors, user commands."""

from __future__ import annotations

import re
from typing import Any

import pytest
from construct import Bytes, Int16ul, Struct, this

from frames import (
    STANDARD,
    Command,
    CommandRegistry,
    Frame,
    FrameValueError,
    PayloadError,
    UnknownCommand,
)
from frames.commands import MAX_READ_COUNT, jsonable

CASES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "identify",
        "response",
        {"model": "THERMO", "firmware": [1, 2, 3], "uid": 0x01020304, "register_count": 8},
        "06544845524d4f010203040302010800",
    ),
    ("echo", "request", {"data": b"\x01\x02"}, "0102"),
    ("read_regs", "request", {"start": 0x10, "count": 4}, "100004"),
    ("read_regs", "response", {"count": 2, "values": [1, 0xFFFF]}, "020100ffff"),
    ("write_reg", "request", {"reg": 2, "value": 0x1234}, "02003412"),
    ("write_regs", "request", {"start": 1, "count": 2, "values": [5, 6]}, "010002050006 00"),
    ("write_regs", "response", {"start": 1, "count": 2}, "010002"),
]


@pytest.mark.parametrize("name,which,fields,wire", CASES)
def test_standard_layouts(name: str, which: str, fields: dict[str, Any], wire: str) -> None:
    cmd = STANDARD.get(name)
    data = bytes.fromhex(wire.replace(" ", ""))
    if which == "request":
        assert cmd.encode_request(fields) == data
        assert cmd.decode_request(data) == fields
    else:
        assert cmd.encode_response(fields) == data
        assert cmd.decode_response(data) == fields


def test_codes_and_names() -> None:
    assert [c.code for c in STANDARD] == [0x01, 0x02, 0x03, 0x06, 0x10]
    assert STANDARD.resolve_code("read_regs") == 3
    assert STANDARD.resolve_code("0x10") == 0x10
    assert STANDARD.resolve_code("200") == 200
    assert STANDARD.get(0x83).name == "read_regs"
    with pytest.raises(UnknownCommand, match="nope"):
        STANDARD.get("nope")
    with pytest.raises(FrameValueError):
        STANDARD.resolve_code(300)


def test_read_count_limit() -> None:
    cmd = STANDARD.get("read_regs")
    with pytest.raises(FrameValueError):
        cmd.encode_request({"start": 0, "count": MAX_READ_COUNT + 1})
    with pytest.raises(PayloadError):
        cmd.decode_request(bytes([0, 0, MAX_READ_COUNT + 1]))


@pytest.mark.parametrize("data", ["", "00", "000004ff"])
def test_bad_payloads_are_payload_errors(data: str) -> None:
    with pytest.raises(PayloadError):
        STANDARD.get("read_regs").decode_request(bytes.fromhex(data))


def test_user_commands() -> None:
    reg = STANDARD.copy()
    reg.register(Command(0x41, "set_led", request=Struct("rgb" / Int16ul)))
    assert reg.get("set_led").encode_request({"rgb": 7}) == b"\x07\x00"
    assert "set_led" not in STANDARD
    with pytest.raises(FrameValueError):
        reg.register(Command(0x41, "other"))
    with pytest.raises(FrameValueError):
        Command(0x81, "bad")


def test_describe_frames() -> None:
    assert STANDARD.describe(Frame(1, 0x83, b"\x02")) == {
        "error_code": 2,
        "error": "illegal register",
    }
    assert STANDARD.describe(Frame(1, 3, b"\x00\x00\x04")) == {"start": 0, "count": 4}
    assert STANDARD.describe(Frame(1, 0x55, b"")) is None
    assert jsonable({"data": b"\x01", "v": [b"\x02"]}) == {"data": "01", "v": ["02"]}


@pytest.mark.parametrize(
    "fields",
    [
        {"start": True, "count": 1},
        {"start": 0, "count": 1, "extra": 5},
    ],
)
def test_build_rejects_booleans_and_unknown_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(FrameValueError):
        STANDARD.get("read_regs").encode_request(fields)


def test_hostile_command_keys_get_short_typed_errors() -> None:
    """Client-supplied keys: a 5,000-digit number must not break the error message itself."""
    for key in ("0x" + "f" * 5000, "9" * 5000, "x" * 500, 10**50, -1):
        with pytest.raises((UnknownCommand, FrameValueError)) as info:
            STANDARD.resolve_code(key)
        assert len(str(info.value)) < 80


def test_deeply_nested_args_are_a_frame_value_error() -> None:
    deep: list[object] = [1]
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(FrameValueError):
        STANDARD.get("read_regs").encode_request({"start": deep, "count": 1})
    with pytest.raises(FrameValueError, match="true/false"):
        STANDARD.get("write_regs").encode_request({"start": 0, "values": [[1, [True]]]})


# --- pinned by mutation testing (issue 18, docs/testing.md)


def test_command_codes_are_exactly_0_to_127() -> None:
    assert Command(0, "zero").code == 0 and Command(127, "top").code == 127
    with pytest.raises(
        FrameValueError, match=r"^command code 128 must be 0\.\.127 \(0x80 flags errors\)$"
    ):
        Command(128, "bad")


def test_payload_errors_name_the_command_and_the_direction() -> None:
    identify, write_regs = STANDARD.get("identify"), STANDARD.get("write_regs")
    with pytest.raises(FrameValueError, match=r"^identify request takes no fields, got \['x'\]$"):
        identify.encode_request({"x": 1})
    assert identify.encode_request() == b""
    with pytest.raises(PayloadError, match=r"^identify request must be empty, got 2 bytes$"):
        identify.decode_request(b"ab")
    with pytest.raises(
        FrameValueError,
        match=r"^write_regs response has no field\(s\) \['x'\]; it has \['count', 'start'\]$",
    ):
        write_regs.encode_response({"start": 1, "count": 1, "x": 2})
    with pytest.raises(PayloadError, match=r"^bad read_regs response payload 05: "):
        STANDARD.get("read_regs").decode_response(b"\x05")
    with pytest.raises(
        FrameValueError,
        match=r"^cannot build read_regs request: missing field 'count'; "
        r"it needs \['count', 'start'\]$",
    ):
        STANDARD.get("read_regs").encode_request({"start": 1})
    with pytest.raises(FrameValueError, match=r"^cannot build write_reg request: "):
        STANDARD.get("write_reg").encode_request({"reg": 70000, "value": 1})


def test_a_layout_without_fields_reads_and_builds_one_value() -> None:
    raw = Command(0x20, "raw16", Int16ul, Int16ul)
    assert raw.decode_request(b"\x34\x12") == {"value": 0x1234}
    assert raw.decode_response(b"\x01\x00") == {"value": 1}
    with pytest.raises(FrameValueError, match=r"^cannot build raw16 request: "):
        raw.encode_request({"value": 1})
    blob = Command(0x21, "blob", Bytes(this.n))  # a length from a field the layout lacks
    with pytest.raises(FrameValueError, match=r"^cannot build blob request: missing field 'n'$"):
        blob.encode_request({})


def test_a_value_nested_too_deeply_says_so() -> None:
    deep: list[object] = [1]
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(
        FrameValueError, match=r"^cannot build read_regs request: a value nests too deeply$"
    ):
        STANDARD.get("read_regs").encode_request({"start": deep, "count": 1})


def test_command_keys_in_messages_are_shown_short() -> None:
    for key, shown in [
        (10**12 - 1, "999999999999"),
        (10**12, "(a 40-bit number)"),
        (300, "300"),
    ]:
        with pytest.raises(FrameValueError, match=rf"^command {re.escape(shown)} is not 0\.\.255$"):
            STANDARD.resolve_code(key)
    for key, shown in [
        ("nope", "'nope'"),
        ("x" * 38, "'" + "x" * 38 + "'"),  # 40 characters: shown whole
        ("x" * 39, "'" + "x" * 36 + "..."),  # 41: cut to 37 and "..."
    ]:
        with pytest.raises(UnknownCommand, match=rf"^unknown command {re.escape(shown)}$"):
            STANDARD.get(key)


def test_registries_resolve_numbers_names_and_copies() -> None:
    assert [c.code for c in STANDARD.copy()] == [0x01, 0x02, 0x03, 0x06, 0x10]
    assert [c.code for c in CommandRegistry([Command(0x20, "x")])] == [0x20]
    assert STANDARD.find("0x10") is STANDARD.get("write_regs")
    assert STANDARD.find("16") is STANDARD.get("write_regs")
    assert STANDARD.find("0") is None
    assert [STANDARD.resolve_code(k) for k in (0, 255, "0x7f", "0")] == [0, 255, 0x7F, 0]
    with pytest.raises(FrameValueError, match=r"^command 256 is not 0\.\.255$"):
        STANDARD.resolve_code(256)
    with pytest.raises(FrameValueError, match=r"^command 0x03 / 'read_regs' already registered$"):
        STANDARD.copy().register(Command(3, "read_regs"))


def test_describe_picks_the_layout_asked_for() -> None:
    both = Frame(1, 3, b"\x01\x34\x12")  # a read_regs response of one value, and a request
    assert STANDARD.describe(both) == {"count": 1, "values": [0x1234]}
    assert STANDARD.describe(both, request=True) == {"start": 0x3401, "count": 0x12}
    assert STANDARD.describe(both, request=False) == {"count": 1, "values": [0x1234]}
    assert STANDARD.describe(Frame(1, 0x83, b"\x63")) == {
        "error_code": 99,
        "error": "unknown error",
    }
