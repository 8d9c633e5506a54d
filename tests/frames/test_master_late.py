"""A late reply must never complete the next transaction (issue 10, break 1).

The default frame has no transaction id: a reply to a timed-out request that arrives while an
identical request waits looks exactly like its reply. Two layers keep it out: the guard time
after an unanswered attempt, and the tagged format. Each test here fails on the code before them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from frames import DEFAULT_FORMAT, FrameFormat, Slave
from frames.events import FrameReceived
from frames.master import (
    MasterCore,
    ReplyReceived,
    RequestFailed,
    parse_read_registers,
    read_registers_request,
)
from frames.slave import Request, SlaveGroup

from .test_master import Pair

READ = read_registers_request(0, 1)


def counting_device(fmt: FrameFormat) -> Slave:
    """Answers each read with how many reads it has answered: every reply is told apart."""
    slave = Slave(1, fmt=fmt)
    served = [0]

    @slave.handler("read_regs")
    def read(req: Request) -> Mapping[str, Any]:
        served[0] += 1
        return {"values": [served[0]]}

    return slave


def pair(fmt: FrameFormat = DEFAULT_FORMAT, **kw: Any) -> Pair:
    kw.setdefault("retries", 0)
    p = Pair(MasterCore(fmt=fmt, timeout=0.1, gap=0.001, **kw), [])
    p.group = SlaveGroup([counting_device(fmt)], fmt)
    return p


def late_then_identical(p: Pair) -> ReplyReceived | RequestFailed | None:
    """Request A times out (its reply is 0.15 s away); identical B follows at once; B's own
    reply takes 0.05 s. Returns B's outcome."""
    p.delay = 0.15
    first = p.request(1, "read_regs", READ)
    assert isinstance(first, RequestFailed)
    p.delay = 0.05
    return p.request(1, "read_regs", READ)  # type: ignore[no-any-return]


def test_guard_time_keeps_a_late_reply_from_completing_the_next_request() -> None:
    p = pair()
    second = late_then_identical(p)
    assert isinstance(second, ReplyReceived)
    assert parse_read_registers(second.frame.data) == [2]  # its own reply, not A's (1)
    kinds = [e.kind for e in p.events if isinstance(e, FrameReceived)]
    assert kinds == ["late", "reply"]
    assert p.core.stats.late == 1
    sent = [e for e in p.events if type(e).__name__ == "FrameSent"]
    assert len(sent) == 2
    assert sent[1].ts >= 0.1 + 0.1  # not before A's timeout plus the guard (= the timeout)


def test_guard_is_a_setting() -> None:
    p = pair(guard=0.3)
    late_then_identical(p)
    sent = [e.ts for e in p.events if type(e).__name__ == "FrameSent"]
    assert sent[1] >= 0.1 + 0.3
    with pytest.raises(ValueError, match="guard"):
        MasterCore(guard=-1)


def test_without_a_guard_the_default_format_cannot_tell() -> None:
    """The honest limit: with no guard, the default format takes A's reply for B's."""
    p = pair(guard=0.0)
    second = late_then_identical(p)
    assert isinstance(second, ReplyReceived)
    assert parse_read_registers(second.frame.data) == [1]


def test_tagged_format_recognises_a_late_reply_whenever_it_comes() -> None:
    p = pair(FrameFormat(tagged=True), guard=0.0)  # no guard: the tag alone decides
    second = late_then_identical(p)
    assert isinstance(second, ReplyReceived)
    assert parse_read_registers(second.frame.data) == [2]
    assert second.request.tag == 1 and second.frame.tag == 1  # A was tag 0
    kinds = [e.kind for e in p.events if isinstance(e, FrameReceived)]
    assert kinds == ["late", "reply"]


def test_tags_increment_and_wrap() -> None:
    core = MasterCore(fmt=FrameFormat(tagged=True), timeout=0.1, gap=0.0, turnaround=0.01)
    tags = []
    for i in range(258):  # broadcasts: each one transaction, over after the turnaround
        core.send_request(0, "echo", b"", float(i))
        core.tick(float(i) + 0.5)
        tags += [e.frame.tag for e in core.events() if type(e).__name__ == "FrameSent"]
    assert tags[:3] == [0, 1, 2] and tags[255:258] == [255, 0, 1]


def test_tagged_retries_keep_their_tag_and_error_replies_echo_it() -> None:
    fmt = FrameFormat(tagged=True)
    p = Pair(MasterCore(fmt=fmt, timeout=0.1, retries=1, gap=0.001), [])
    slave = Slave(3, fmt=fmt)  # no handlers: every command is an error reply (illegal command)
    p.group = SlaveGroup([slave], fmt)
    p.silent = {3}  # the first attempt is not answered
    token = p.core.send_request(3, "echo", b"x", 0.0)
    p.pump()  # the first attempt goes out and is not answered
    assert len(p.wire_out) == 1
    p.silent = set()
    p.run_until(lambda: p.outcome(token) is not None)
    outcome = p.outcome(token)
    assert isinstance(outcome, RequestFailed) and "illegal command" in str(outcome.error)
    assert {w[3] for w in p.wire_out} == {0}  # both attempts carry tag 0


def test_a_tiny_request_timeout_does_not_shrink_the_guard() -> None:
    """A request with a timeout of its own far below the device's answer time (a fuzzing client
    sent 1e-59 s): its reply, an error reply that fits any read, must not complete the next."""
    p = pair()  # master timeout 0.1
    p.delay = 0.01
    first = p.request(1, "read_regs", READ, timeout=1e-9)
    assert isinstance(first, RequestFailed)
    second = p.request(1, "read_regs", READ)
    assert isinstance(second, ReplyReceived)
    assert parse_read_registers(second.frame.data) == [2]
    assert [e.kind for e in p.events if isinstance(e, FrameReceived)] == ["late", "reply"]


def test_a_damaged_reply_owes_nothing_so_no_guard_follows_its_retry() -> None:
    """1% of replies corrupted must not cost a guard time each: the damaged frame was the
    first attempt's reply, the retry's reply completes the transaction, nothing is owed."""
    p = pair(retries=1)
    p.delay = 0.001
    p.corrupt_next = 1
    first = p.request(1, "read_regs", READ)
    assert isinstance(first, ReplyReceived) and first.attempts == 2
    done = p.now
    second = p.request(1, "read_regs", READ)
    assert isinstance(second, ReplyReceived)
    sent = [e.ts for e in p.events if type(e).__name__ == "FrameSent"]
    assert sent[-1] - done < 0.01  # a gap, not a 0.1 s guard
