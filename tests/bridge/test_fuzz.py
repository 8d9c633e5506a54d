"""Fuzzed client messages: always an answer or an error reply, never a crash or a close.

The end-to-end fuzz runs a real :class:`bridge.app.Bridge` over the real simulator on a pty
(:mod:`.fuzz_bridge`), so fuzzed ``cmd``/``addr``/``args``/``data`` go through
``BusOwner.submit`` → ``CommandRegistry.encode_request`` → ``AsyncMaster`` → the simulated
devices. The client is synchronous and ``@given`` runs its body once per example, so hypothesis
shrinks a failure to a minimal message.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from bridge import contract as c
from bridge.errors import ContractError
from frames import STANDARD

from .conftest import Harness, recv
from .fuzz_bridge import LiveBridge, LiveClient

# Any code point, lone surrogates included: JSON escapes ("\ud800") can carry them.
any_text = st.text(st.characters(exclude_categories=()), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
types = st.sampled_from(["hello", "subscribe", "unsubscribe", "request", "state", "ping", "x", ""])
keys = st.sampled_from(["id", "token", "topics", "since", "bus", "addr", "cmd", "data", "args"])
messages = st.one_of(
    st.text(max_size=40),
    json_values.map(json.dumps),
    st.builds(
        lambda t, extra: json.dumps({"type": t, **extra}),
        types,
        st.dictionaries(keys, json_values, max_size=5),
    ),
)


@given(messages)
@settings(max_examples=400, deadline=None)
def test_parser_raises_only_contract_errors(text: str) -> None:
    try:
        c.parse_client_message(text)
    except ContractError as exc:
        assert exc.code and exc.message


# -- end to end over the real bus ------------------------------------------------------------


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``one_of`` with weights (``one_of`` itself drops repeated strategies)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(table).flatmap(lambda strategy: strategy)


DEVICES = 3  # simulated thermostats at addresses 1..3
ERROR_CODES = {  # ``error`` message codes of the contract
    c.BAD_JSON,
    c.BAD_MESSAGE,
    c.UNKNOWN_TYPE,
    c.MISSING_FIELD,
    c.WRONG_TYPE,
    c.BAD_VALUE,
    c.HELLO_REQUIRED,
    c.ALREADY_HELLO,
}

# A fuzzed request is a valid one (for a device that exists) plus a few mutations, each of one
# field: every hostile value reaches the stage of the bridge that has to deal with it instead of
# most messages dying on the first of several bad fields, and hypothesis shrinks a failure to
# the fewest and simplest mutations.

INT_EDGES = [0, 1, 2, 3, 4, 5, 119, 120, 121, 127, 128, 247, 248, 255, 256, 65535, 65536, -1]
INT_EDGES += [-32768, 2**31, 2**53 + 1, 2**63, -(2**63), 2**64]
huge = st.sampled_from([30, 400, 4000]).map(lambda e: 10**e)  # (mapped: short strategy reprs)
ints = st.integers(-3, 300) | st.sampled_from(INT_EDGES) | huge
plain_text = st.text(max_size=8)  # no lone surrogates: those have their own mutation
scalars = st.one_of(ints, st.booleans(), st.none(), st.floats(), plain_text)
surrogates = st.sampled_from(["\ud800", "\udfff", "a\udc00b"])


@dataclass(frozen=True)
class Deep:
    """Lists nested ``depth`` deep, spliced into the JSON text by :func:`to_text` (building them
    as Python lists would hit the recursion limit in the test's own json.dumps and repr)."""

    depth: int

    def __repr__(self) -> str:
        return f"Deep({self.depth})"

    @property
    def json(self) -> str:
        return "[" * self.depth + "1" + "]" * self.depth


def to_text(message: Any) -> str:
    deeps: list[Deep] = []

    def placeholder(obj: object) -> str:
        if not isinstance(obj, Deep):
            raise TypeError(f"not JSON: {obj!r}")
        deeps.append(obj)
        return f"\0deep{len(deeps) - 1}\0"

    text = json.dumps(message, default=placeholder)
    for i, deep in enumerate(deeps):
        text = text.replace(json.dumps(f"\0deep{i}\0"), deep.json)
    return text


def _spellings(name: str) -> st.SearchStrategy[str | int]:
    code = STANDARD.resolve_code(name)
    return st.sampled_from([name, code, name.upper(), f" {name} ", str(code), f"0x{code:02x}"])


addr_ok = st.integers(1, DEVICES)
reg = st.integers(0, 6)  # the thermo profile has registers 0..5
word = st.integers(0, 0xFFFF)
valid_requests = st.one_of(
    st.builds(lambda a, c: {"addr": a, "cmd": c}, addr_ok, _spellings("identify")),
    st.builds(
        lambda a, c, d: {"addr": a, "cmd": c, "data": d},
        addr_ok,
        _spellings("echo"),
        st.binary(max_size=8).map(bytes.hex),
    ),
    st.builds(
        lambda a, c, s, n: {"addr": a, "cmd": c, "args": {"start": s, "count": n}},
        addr_ok,
        _spellings("read_regs"),
        reg,
        st.integers(1, 3),
    ),
    st.builds(
        lambda a, c, r, v: {"addr": a, "cmd": c, "args": {"reg": r, "value": v}},
        addr_ok,
        _spellings("write_reg"),
        reg,
        word,
    ),
    st.builds(
        lambda a, c, s, vs: {"addr": a, "cmd": c, "args": {"start": s, "values": vs}},
        addr_ok,
        _spellings("write_regs"),
        reg,
        st.lists(word, min_size=1, max_size=4),
    ),
).map(lambda r: {"type": "request", "bus": "bus0", **r})

# Around the recursion limit (1000): most still fit a message (2 bytes a level) and decode.
deep = st.sampled_from([2, 50, 200, 300, 330, 500, 900, 970, 980, 990, 1000, 2000]).map(Deep)
arg_values = st.one_of(
    scalars,
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(plain_text, inner, max_size=3),
        max_leaves=8,
    ),
    st.lists(ints, max_size=8),
    st.sampled_from([0, 1, 119, 120, 121, 126, 127, 128, 255, 256]).map(lambda n: [1] * n),
    deep,
    deep.map(lambda d: [d]),
)
ARG_NAMES = ["start", "count", "reg", "value", "values", "data"]
arg_keys = st.sampled_from([*ARG_NAMES, "model", "uid", "Start", "start ", ""]) | plain_text
# (most shapes of args fail on their names before their values: argval below targets values)
hostile_args = st.one_of(
    st.fixed_dictionaries({}, optional={name: arg_values for name in ARG_NAMES}),
    st.dictionaries(arg_keys, arg_values, max_size=4),
    arg_values,  # not an object at all
)
hex_data = st.one_of(
    st.binary(max_size=8).map(bytes.hex),
    st.binary(min_size=250, max_size=260).map(bytes.hex),  # around the 255-byte bound
    st.binary(max_size=8).map(lambda b: b.hex() + "0"),  # odd length
    st.text(alphabet="0123456789abcdefABCDEF xgX-", max_size=12),
    st.sampled_from(["", " ", "0x00", "00 01", "0000 04", "\u0660"]),
    st.sampled_from([255, 256]).map(lambda n: "ff" * n),
    scalars,  # not a string
)
cmds = st.one_of(
    st.sampled_from([cmd.name for cmd in STANDARD]),
    st.sampled_from([cmd.code for cmd in STANDARD]),
    st.sampled_from(["READ_REGS", "3", "0x83", "0b11", "-1", "0x100", "1_0", "", "frobnicate"]),
    st.sampled_from(["9", "0xf", "0b1", "-0xf", "0o7"]).map(lambda s: s + s[-1] * 5000),
    ints,
    scalars,
)
addrs = st.one_of(
    st.integers(0, 255),
    st.sampled_from([0, 4, 247, 248, 255, 256, -1, 2**64, True, False, 1.0, 1.5, "1"]),
    scalars,
)
buses = st.sampled_from(["bus1", "", "BUS0", "bus0 ", 0, None, ["bus0"]]) | plain_text
timeouts = st.one_of(
    st.sampled_from([0.01, 0.05, 0.1, 0, -1, 60.5, 61, 1e308, "0.1", True, None]),
    st.floats(max_value=0.2),  # NaN, infinities and negatives included; no long waits
)


def _op(name: str, keys: st.SearchStrategy[Any], values: st.SearchStrategy[Any]) -> Any:
    return st.tuples(st.just(name), keys, values)


mutations = weighted(  # (operation, key, value); see mutate()
    (2, _op("set", st.just("addr"), addrs)),
    (2, _op("set", st.just("cmd"), cmds)),
    (1, _op("set", st.just("bus"), buses)),
    (1, _op("set", st.just("timeout_s"), timeouts)),
    (2, _op("payload", st.just("data"), hex_data)),  # data instead of args
    (2, _op("payload", st.just("args"), hostile_args)),  # args instead of data
    (4, _op("argval", st.integers(0, 2), arg_values)),  # the value of an arg the command has
    (2, _op("arg", arg_keys, arg_values)),  # any arg, the command's or not
    (1, _op("set", st.sampled_from(["data", "args"]), hex_data | hostile_args)),  # both
    (1, _op("drop", st.sampled_from(["type", "bus", "addr", "cmd", "args"]), st.none())),
    (1, _op("set", st.sampled_from(["foo", "Addr", "Type", ""]), scalars | deep)),  # unknown
    (1, _op("set", st.sampled_from(["cmd", "bus", "data", "foo"]), surrogates)),
    (1, _op("arg", arg_keys, surrogates)),
)


def mutate(request: dict[str, Any], changes: list[tuple[str, Any, Any]]) -> dict[str, Any]:
    """Apply ``changes`` in order: ``set`` a key, ``drop`` one, replace the ``payload`` (data
    or args), set an ``arg`` by name or the value of the ``argval``-th arg already there."""
    out = dict(request)
    for op, key, value in changes:
        if op == "drop":
            out.pop(key, None)
            continue
        if op in ("payload", "arg", "argval"):
            args = out.pop("args", None)
            out.pop("data", None)
            if op != "payload":
                args = dict(args) if isinstance(args, dict) else {}
                if op == "argval":
                    names = list(args) or ["start"]
                    key = names[key % len(names)]
                key, value = "args", {**args, key: value}
        out[key] = value
    return out


requests = st.builds(mutate, valid_requests, st.lists(mutations, min_size=1, max_size=3))
others = st.one_of(  # not requests: still answered; a few are not JSON objects at all
    st.builds(lambda t, extra: {**extra, "type": t}, types, st.dictionaries(keys, json_values)),
    json_values.filter(lambda v: not isinstance(v, dict)).map(json.dumps),
    st.text(max_size=20),
)
fuzz_messages = weighted((6, requests), (1, others))


def parse_shallow(text: str) -> c.ClientMessage | ContractError:
    """The parser's verdict on a fresh thread, where the stack is as shallow as it gets (the
    bridge's handler is a few dozen frames deep; the test's own thread over a hundred)."""
    out: list[c.ClientMessage | ContractError] = []

    def run() -> None:
        try:
            out.append(c.parse_client_message(text))
        except ContractError as exc:
            out.append(exc)

    thread = threading.Thread(target=run, name="fuzz-parse")
    thread.start()
    thread.join(5.0)
    assert out, "the parser did not finish within 5 s"
    return out[0]


def expected_answers(text: str) -> dict[Any, tuple[str, str | None]]:
    """What the bridge may answer ``text`` with: answer id → (type, error code or None)."""
    msg = parse_shallow(text)
    out: dict[Any, tuple[str, str | None]] = {}
    if "[[[[[[[[" in text:  # nested deep enough that a deeper stack may refuse the JSON
        out[None] = ("error", c.BAD_JSON)
    if isinstance(msg, ContractError):
        out[msg.msg_id] = ("error", msg.code)
    elif isinstance(msg, c.Hello):
        out[msg.id] = ("error", c.ALREADY_HELLO)
    elif isinstance(msg, c.Ping):
        out[msg.id] = ("pong", None)
    elif isinstance(msg, c.StateQuery):
        out[msg.id] = ("state", None)
    elif isinstance(msg, c.Subscribe):
        out[msg.id] = ("subscribed", None)  # or an error for an unknown bus (checked below)
    elif isinstance(msg, c.Unsubscribe):
        out[msg.id] = ("unsubscribed", None)
    else:
        out[msg.id] = ("reply", None)
    return out


def check_reply(request: c.Request, reply: dict[str, Any]) -> None:
    assert reply["ok"] in (True, False), reply
    if reply["ok"] is False:
        error = reply["error"]
        assert error["code"] in c.REPLY_CODES, reply
        assert isinstance(error["message"], str) and error["message"], reply
        if request.bus != "bus0" or not 1 <= request.addr <= 247:
            assert error["code"] == "bad_request", reply
        return
    # a success can only come from a simulated device, for the request that was asked
    assert request.bus == "bus0" and reply["bus"] == "bus0", reply
    assert reply["addr"] == request.addr and 1 <= request.addr <= DEVICES, reply
    assert reply["cmd"] == STANDARD.resolve_code(request.cmd), reply
    bytes.fromhex(reply["data"])


def live_request(msg_id: str) -> str:
    args = {"start": 0, "count": 5}
    # its own timeout, well above the bus's 50 ms (kept short so that fuzzed requests to absent
    # devices are quick): a loaded CI machine must not fail the check that the bus still works
    return json.dumps(
        {
            "type": "request",
            "id": msg_id,
            "bus": "bus0",
            "addr": 1,
            "cmd": 3,
            "args": args,
            "timeout_s": 2.0,
        }
    )


@pytest.fixture(scope="module")
def live() -> Iterator[LiveBridge]:
    bridge = LiveBridge(devices=DEVICES, bus_timeout_s=0.05)
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.stop()


def check_one_message(client: LiveClient, live: LiveBridge, message: Any, n: int) -> None:
    """Send ``message``, a valid read of addr 1 and a ping; check all three answers."""
    mid, lid, pid = f"fuzz-{n}", f"live-{n}", f"probe-{n}"
    text = to_text({**message, "id": mid}) if isinstance(message, dict) else message
    expected = expected_answers(text)
    closed: ConnectionClosed | None = None
    try:
        client.send(text)
        client.send(live_request(lid))  # the bus still works after this message ...
        client.send(json.dumps({"type": "ping", "id": pid}))  # ... and the connection too
        by_key, order = client.collect({lid, pid}, set(expected), timeout=5.0)
    except ConnectionClosed as exc:
        closed = exc
    # raised here, outside the except block, so hypothesis sees one failure however the close
    # showed up (on a send or on a receive)
    assert closed is None, f"the bridge closed the connection: {closed}"
    keys = by_key.keys() & expected.keys()
    assert len(keys) == 1 and set(by_key) == {*keys, lid, pid}, f"unexpected answers: {order}"
    for k, answers in by_key.items():
        assert len(answers) == 1, f"{len(answers)} answers for id {k!r}: {order}"
    (key,) = keys
    answer, live_reply, pong = by_key[key][0], by_key[lid][0], by_key[pid][0]

    assert pong == {"type": "pong", "id": pid}
    assert live_reply["ok"] is True, live_reply
    assert len(live_reply["fields"]["values"]) == 5, live_reply
    if answer["type"] != "reply":  # answered on the spot, in order: before the pong
        assert order.index(answer) < order.index(pong), order
    kind, code = expected[key]
    if kind == "subscribed" and answer["type"] == "error":
        assert answer["code"] == c.BAD_VALUE, answer
    else:
        assert answer["type"] == kind, (answer, kind)
    if answer["type"] == "error":
        assert answer["code"] in ERROR_CODES, answer
        assert code is None or answer["code"] == code, (answer, code)
        assert isinstance(answer["message"], str) and answer["message"], answer
    if kind == "reply":
        request = parse_shallow(text)
        assert isinstance(request, c.Request)
        check_reply(request, answer)
    bus = live.bus_state()
    assert bus == {"up": True, "worker_running": True}, bus


def test_fuzzed_requests_over_the_real_bus_get_one_answer_each(live: LiveBridge) -> None:
    client = LiveClient(live, timeout=5.0)
    counter = itertools.count()
    state = {"broken": False}

    # The fixture is module-scoped, so no health check needs suppressing.
    @settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @given(fuzz_messages)
    def one_message(message: Any) -> None:
        if state["broken"]:  # after a failed example, a fresh bridge: examples stay independent
            client.close()
            live.restart()
            state["broken"] = False
        try:
            check_one_message(client, live, message, next(counter))
        except BaseException:
            state["broken"] = True
            raise

    try:
        one_message()
        # After all of it: the same connection still gets answers, the bus is up, every device
        # online, and polling goes on (a fresh poll frame, with no request of ours in flight).
        client.send(live_request("final"))
        by_key = client.collect({"final"}, set(), 5.0)[0]
        assert by_key["final"][0]["ok"] is True, by_key
        # every device online again (a poll that missed its 50 ms on a loaded machine marks a
        # device offline until the next one: ask until all are back, within a bound)
        deadline = time.monotonic() + 10.0
        for n in itertools.count():
            client.send(json.dumps({"type": "state", "id": f"state-{n}"}))
            bus = client.collect({f"state-{n}"}, set(), 5.0)[0][f"state-{n}"][0]["buses"]["bus0"]
            devices = bus["devices"]
            if bus["up"] and all(devices[str(a)]["online"] for a in range(1, DEVICES + 1)):
                break
            assert time.monotonic() < deadline, bus
        since = time.time()
        client.send(json.dumps({"type": "subscribe", "id": "sub", "topics": ["bus0/*"]}))
        client.collect({"sub"}, set(), 5.0)
        frame = client.next_stream(
            lambda m: m["type"] == "frame" and m["dir"] == "tx" and m["ts"] >= since, 5.0
        )
        assert frame["cmd"] == STANDARD.resolve_code("read_regs"), frame
    finally:
        client.close()


# -- regressions the fuzz found: one message once made the bridge close the connection (1011)

REGRESSIONS = {
    # frames.commands formatted the out-of-range code into its error message, and str() of an
    # int over 4300 digits raises a plain ValueError (Python >= 3.11)
    "huge command number": {"type": "request", "bus": "bus0", "addr": 1, "cmd": "0x" + "f" * 4000},
    # frames.commands._is_bool recursed once per level: RecursionError, not FrameValueError
    "deeply nested args": {
        "type": "request",
        "bus": "bus0",
        "addr": 1,
        "cmd": "read_regs",
        "args": {"start": Deep(400), "count": 1},
    },
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression_gets_a_reply_and_keeps_the_connection(live: LiveBridge, name: str) -> None:
    client = LiveClient(live, timeout=5.0)
    try:
        check_one_message(client, live, REGRESSIONS[name], 0)
    finally:
        client.close()


async def test_lone_surrogates_get_an_error_reply_before_and_after_hello(
    harness: Harness,
) -> None:
    ws = await harness.client(hello=False)
    await ws.send('{"type":"ping","id":"\\udc00"}')
    err = await recv(ws)
    assert err["type"] == "error" and err["code"] == "bad_value" and "id" not in err
    await ws.send(json.dumps({"type": "hello", "token": "t"}))
    assert (await recv(ws))["type"] == "welcome"
    await ws.send('{"type":"ping","id":"\\ud800"}')
    assert (await recv(ws))["code"] == "bad_value"
    await ws.send('{"type":"subscribe","topics":["*"],"since":{"\\udc00":{"epoch":1,"seq":1}}}')
    assert (await recv(ws))["code"] == "bad_value"
    await ws.send(json.dumps({"type": "ping", "id": 5}))
    assert await recv(ws) == {"type": "pong", "id": 5}  # still connected
