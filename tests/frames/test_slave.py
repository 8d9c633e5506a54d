"""Slave: address filter, broadcast, handler registry, error replies, the byte interface."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from frames import STANDARD, Frame, FrameFormat, FrameValueError, StreamDecoder, encode
from frames.commands import Command, ErrorCode
from frames.errors import DeviceFault
from frames.slave import Request, Slave, SlaveGroup, error_reply


def make_slave(address: int = 5) -> Slave:
    slave = Slave(address)
    regs = list(range(100, 120))

    @slave.handler("read_regs")
    def read_regs(req: Request) -> Mapping[str, Any]:
        assert req.fields is not None
        start, count = req.fields["start"], req.fields["count"]
        if start + count > len(regs):
            raise DeviceFault(ErrorCode.ILLEGAL_REGISTER)
        return {"values": regs[start : start + count]}

    @slave.handler(0x02)
    def echo(req: Request) -> bytes:
        return req.frame.data

    @slave.handler("write_reg")
    def write_reg(req: Request) -> Mapping[str, Any]:
        assert req.fields is not None
        regs[req.fields["reg"]] = req.fields["value"]
        return req.fields

    return slave


def test_reply_to_own_address() -> None:
    slave = make_slave()
    reply = slave.handle(Frame(5, 0x03, bytes([0, 0, 3])))
    assert reply == Frame(5, 0x03, bytes([3, 100, 0, 101, 0, 102, 0]))
    assert slave.stats.requests == 1 and slave.stats.replies == 1


def test_other_address_is_ignored() -> None:
    slave = make_slave()
    assert slave.handle(Frame(6, 0x03, bytes([0, 0, 3]))) is None
    assert slave.stats.ignored == 1 and slave.stats.requests == 0


def test_error_frames_are_never_requests() -> None:
    slave = make_slave()
    assert slave.handle(Frame(5, 0x83, b"\x02")) is None
    assert slave.stats.ignored == 1


def test_broadcast_runs_handler_but_is_not_answered() -> None:
    slave = make_slave()
    seen: list[Request] = []

    def record(req: Request) -> bytes:
        seen.append(req)
        return req.frame.data

    slave.add_handler(0x06, record)
    assert slave.handle(Frame(0, 0x06, bytes([1, 0, 7, 0]))) is None
    assert len(seen) == 1 and seen[0].is_broadcast and seen[0].fields == {"reg": 1, "value": 7}
    assert slave.stats.broadcasts == 1


def test_broadcast_of_unknown_command_is_silent() -> None:
    assert make_slave().handle(Frame(0, 0x55)) is None


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (Frame(5, 0x10, b""), ErrorCode.ILLEGAL_COMMAND),  # no handler for write_regs
        (Frame(5, 0x7F, b"\x01"), ErrorCode.ILLEGAL_COMMAND),  # not in the registry at all
        (Frame(5, 0x03, b"\x00"), ErrorCode.ILLEGAL_VALUE),  # payload too short for layout
        (Frame(5, 0x03, bytes([0, 0, 0])), ErrorCode.ILLEGAL_VALUE),  # count 0 fails Check
        (Frame(5, 0x03, bytes([18, 0, 5])), ErrorCode.ILLEGAL_REGISTER),  # DeviceFault
    ],
)
def test_error_replies(frame: Frame, code: int) -> None:
    slave = make_slave()
    reply = slave.handle(frame)
    assert reply == error_reply(5, frame.cmd, code)
    assert reply is not None and reply.is_error and reply.error_code == code
    assert slave.stats.error_replies == 1


def test_handler_crash_is_device_failure_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    slave = Slave(9)

    def boom(req: Request) -> bytes:
        raise RuntimeError("sensor on fire")

    slave.add_handler("identify", boom)
    with caplog.at_level(logging.ERROR, logger="frames.slave"):
        reply = slave.handle(Frame(9, 0x01))
    assert reply == Frame(9, 0x81, bytes([ErrorCode.DEVICE_FAILURE]))
    assert "sensor on fire" in caplog.text
    assert slave.stats.handler_failures == 1
    # The slave keeps working after the crash.
    slave.add_handler("identify", lambda req: b"")
    assert slave.handle(Frame(9, 0x01)) is not None


@pytest.mark.parametrize(
    "result",
    [
        {"wrong": 1},  # fields that do not build the response layout
        b"x" * 300,  # longer than max_payload
    ],
)
def test_bad_handler_result_is_device_failure(result: Any) -> None:
    slave = Slave(9)
    slave.add_handler("write_reg", lambda req: result)
    reply = slave.handle(Frame(9, 0x06, bytes(4)))
    assert reply is not None and reply.error_code == ErrorCode.DEVICE_FAILURE


def test_unknown_command_handler_gets_raw_frame() -> None:
    slave = Slave(3)
    got: list[Request] = []

    def record(req: Request) -> bytes:
        got.append(req)
        return b"ok"

    slave.add_handler(0x42, record)
    assert slave.handle(Frame(3, 0x42, b"\x01\x02")) == Frame(3, 0x42, b"ok")
    assert got[0].fields is None and not got[0].is_broadcast
    # Returning fields for a command with no layout is a handler bug, not a crash.
    slave.add_handler(0x42, lambda req: {"a": 1})
    reply = slave.handle(Frame(3, 0x42))
    assert reply is not None and reply.error_code == ErrorCode.DEVICE_FAILURE


def test_none_result_is_empty_payload() -> None:
    slave = Slave(3)
    slave.add_handler(0x42, lambda req: None)
    assert slave.handle(Frame(3, 0x42, b"zz")) == Frame(3, 0x42, b"")


def test_custom_registry_names() -> None:
    from construct import Int16ul, Struct

    registry = STANDARD.copy()
    registry.register(Command(0x20, "get_temp", None, Struct("centi" / Int16ul)))
    slave = Slave(4, registry=registry)
    slave.add_handler("get_temp", lambda req: {"centi": 2150})
    assert slave.handle(Frame(4, 0x20)) == Frame(4, 0x20, (2150).to_bytes(2, "little"))


@pytest.mark.parametrize("bad", [0, 256, -1])
def test_bad_address_rejected(bad: int) -> None:
    with pytest.raises(FrameValueError):
        Slave(bad)


def test_bad_handler_registrations() -> None:
    slave = Slave(1)
    with pytest.raises(FrameValueError):
        slave.add_handler(0x83, lambda req: None)
    with pytest.raises(KeyError):  # UnknownCommand is a KeyError
        slave.add_handler("no_such_command", lambda req: None)


def test_device_fault_code_range() -> None:
    assert DeviceFault(5).code == 5 and "busy" in str(DeviceFault(5))
    with pytest.raises(FrameValueError):
        DeviceFault(300)


def test_receive_data_byte_at_a_time_with_noise() -> None:
    slave = make_slave()
    stream = (
        b"\x00\xaa\xff"  # noise with a stray start byte
        + encode(5, 0x02, b"hello")
        + encode(6, 0x02, b"not me")
        + encode(0, 0x06, bytes([0, 0, 1, 0]))  # broadcast write: no reply
        + encode(5, 0x03, bytes([0, 0, 2]))
    )
    out = b"".join(slave.receive_data(stream[i : i + 1], 0.0) for i in range(len(stream)))
    out += slave.idle()
    dec = StreamDecoder()
    assert dec.feed(out) == [Frame(5, 0x02, b"hello"), Frame(5, 0x03, bytes([2, 1, 0, 101, 0]))]


def test_idle_flushes_a_stalled_partial_frame() -> None:
    slave = make_slave()
    # A start byte with a huge bogus length, then a request, split so lookahead cannot see it.
    assert slave.receive_data(b"\xaa\x05\x02\xf0", 0.0) == b""
    assert slave.decoder.pending == 4
    slave.idle()
    assert slave.decoder.pending == 0
    assert StreamDecoder().feed(slave.receive_data(encode(5, 2, b"x"), 0.0)) == [Frame(5, 2, b"x")]


def test_other_format() -> None:
    fmt = FrameFormat(start=0x7E, end=0x0D, crc="crc-ccitt-false", crc_byteorder="big")
    slave = Slave(2, fmt=fmt)
    slave.add_handler("echo", lambda req: req.frame.data)
    out = slave.receive_data(encode(2, 2, b"abc", fmt), 0.0)
    assert StreamDecoder(fmt).feed(out) == [Frame(2, 2, b"abc")]


def test_group_answers_in_order_and_rejects_duplicates() -> None:
    a, b = make_slave(1), make_slave(2)
    group = SlaveGroup([a, b])
    out = group.receive_data(encode(2, 2, b"B") + encode(1, 2, b"A") + encode(3, 2, b"C"), 0.0)
    assert StreamDecoder().feed(out) == [Frame(2, 2, b"B"), Frame(1, 2, b"A")]
    assert group.handle(Frame(0, 0x06, bytes(4))) == []
    assert a.stats.broadcasts == 1 and b.stats.broadcasts == 1
    with pytest.raises(FrameValueError):
        SlaveGroup([make_slave(1), make_slave(1)])


def test_fast_read_regs_codec_agrees_with_construct() -> None:
    import random

    from frames.commands import READ_REGS
    from frames.errors import PayloadError
    from frames.slave import _read_regs_request, _read_regs_response

    rng = random.Random(1)
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.choice((2, 3, 3, 3, 4))))
        try:
            expected: Any = READ_REGS.decode_request(data)
        except PayloadError:
            expected = PayloadError
        try:
            got: Any = _read_regs_request(data)
        except PayloadError:
            got = PayloadError
        assert got == expected, data.hex()
        values = [rng.randrange(65536) for _ in range(rng.randrange(0, 20))]
        assert _read_regs_response({"values": values}) == READ_REGS.encode_response(
            {"values": values}
        )
    with pytest.raises(FrameValueError):
        _read_regs_response({"values": [70000]})
