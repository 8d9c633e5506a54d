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


# --- pinned by mutation testing (issue 18, docs/testing.md)


def test_the_address_range_ends_at_255_and_refusals_say_why() -> None:
    assert Slave(255).address == 255
    with pytest.raises(
        FrameValueError, match=r"^slave address 256 is not 1\.\.255 \(0 is broadcast\)$"
    ):
        Slave(256)
    with pytest.raises(FrameValueError, match=r"^command 0x83 has the error flag set$"):
        Slave(1).add_handler(0x83, lambda req: None)
    with pytest.raises(FrameValueError, match=r"^two slaves with address 1$"):
        SlaveGroup([Slave(1), Slave(1)])


def test_handles_says_which_commands_have_a_handler() -> None:
    slave = make_slave()
    assert slave.handles(0x03) and slave.handles(0x02)
    assert not slave.handles(0x10) and not slave.handles(0x01)


def test_read_regs_count_goes_up_to_120() -> None:
    slave = Slave(5)
    slave.add_handler("read_regs", lambda req: {"values": [7] * req.fields["count"]})  # type: ignore[index]
    reply = slave.handle(Frame(5, 0x03, bytes([0, 0, 120])))
    assert reply == Frame(5, 0x03, bytes([120]) + b"\x07\x00" * 120)
    reply = slave.handle(Frame(5, 0x03, bytes([0, 0, 121])))
    assert reply == error_reply(5, 0x03, ErrorCode.ILLEGAL_VALUE)


def test_every_kind_of_frame_is_counted_each_time() -> None:
    slave = make_slave()
    for _ in range(2):
        slave.handle(Frame(6, 0x02, b"x"))  # another address: ignored
        slave.handle(Frame(5, 0x02, b"x"))  # a reply
        slave.handle(Frame(5, 0x10, b""))  # no handler: an error reply
        slave.handle(Frame(0, 0x02, b"x"))  # broadcast: handled, not answered
    s = slave.stats
    assert (s.ignored, s.requests, s.replies, s.error_replies, s.broadcasts) == (2, 6, 2, 2, 2)


def test_a_bad_request_payload_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    slave = make_slave()
    with caplog.at_level(logging.DEBUG, logger="frames.slave"):
        reply = slave.handle(Frame(5, 0x03, bytes([0, 0, 0])))
    assert reply == error_reply(5, 0x03, ErrorCode.ILLEGAL_VALUE)
    assert caplog.messages == ["slave 5: bad read_regs request payload 000000"]


@pytest.mark.parametrize(
    ("cmd", "result", "says"),
    [
        ("read_regs", {"values": [70000]}, "cannot build read_regs response: "),
        (0x42, {"a": 1}, "handler for unknown command 0x42 returned fields, not bytes"),
        (0x42, b"x" * 256, "reply of 256 bytes exceeds max_payload 255"),
    ],
)
def test_a_handler_failure_is_counted_and_logged_with_its_cause(
    caplog: pytest.LogCaptureFixture, cmd: int | str, result: Any, says: str
) -> None:
    slave = Slave(9)
    slave.add_handler(cmd, lambda req: result)
    code = slave.registry.resolve_code(cmd)
    data = bytes([0, 0, 1]) if cmd == "read_regs" else b""
    with caplog.at_level(logging.ERROR, logger="frames.slave"):
        for n in (1, 2):
            reply = slave.handle(Frame(9, code, data))
            assert reply == error_reply(9, code, ErrorCode.DEVICE_FAILURE)
            assert slave.stats.handler_failures == n
    assert caplog.messages == [f"slave 9: handler for cmd 0x{code:02x} failed"] * 2
    assert says in caplog.text


@pytest.mark.parametrize("result", [{"values": [1], "note": "x"}, {"note": "x"}])
def test_read_regs_results_with_unknown_fields_are_refused_like_any_other_commands(
    caplog: pytest.LogCaptureFixture, result: Any
) -> None:
    # The hand-written read_regs codec refuses an unknown field as the construct layout does.
    slave = Slave(9)
    slave.add_handler("read_regs", lambda req: result)
    with caplog.at_level(logging.ERROR, logger="frames.slave"):
        reply = slave.handle(Frame(9, 0x03, bytes([0, 0, 1])))
    assert reply == error_reply(9, 0x03, ErrorCode.DEVICE_FAILURE)
    with pytest.raises(FrameValueError) as construct:
        STANDARD.get("read_regs").encode_response(result)
    assert f"FrameValueError: {construct.value}\n" in caplog.text
    slave.add_handler("read_regs", lambda req: {"count": 1, "values": [5]})
    assert slave.handle(Frame(9, 0x03, bytes([0, 0, 1]))) == Frame(9, 0x03, b"\x01\x05\x00")
