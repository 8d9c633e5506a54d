"""Every JSON example in docs/websocket.md against the typed contract (bridge/messages.py).

Server messages are checked against their TypedDict (every required key, no unknown key, each
value of the declared type); client messages must parse (bridge/contract.py). A field added to
the docs and not to the types (or the other way round) fails here.
"""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import pytest

from bridge import contract as c
from bridge import messages as m

DOC = Path(__file__).resolve().parents[2] / "docs" / "websocket.md"
CLIENT_TYPES = {"hello", "subscribe", "unsubscribe", "request", "ping", "refresh"}


def _json_examples() -> list[tuple[int, dict[str, Any]]]:
    """(line, object) for every JSON object in the doc: each object of a fenced ``json`` block
    (a block may hold several) and every inline `{"type": ...}` span. Ellipses stand for
    elided values."""
    text = DOC.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    found: list[tuple[int, dict[str, Any]]] = []
    for block in re.finditer(r"```json\n(.*?)```", text, re.S):
        line = text.count("\n", 0, block.start()) + 2
        body = _fill(block.group(1))
        at = 0
        while body[at:].strip():
            at += len(body[at:]) - len(body[at:].lstrip())
            obj, end = decoder.raw_decode(body, at)
            found.append((line + body.count("\n", 0, at), obj))
            at = end
    for span in re.finditer(r'`(\{"type"[^`]*\})`', text):
        found.append((text.count("\n", 0, span.start()) + 1, json.loads(_fill(span.group(1)))))
    return found


def _fill(raw: str) -> str:
    raw = raw.replace("{...}", "{}").replace("[...]", "[]")
    return re.sub(r":\s*\.\.(?=[,}])", ": 1", raw)


def _conforms(value: Any, kind: Any, where: str) -> None:
    if kind is Any:
        return
    origin = typing.get_origin(kind)
    if origin is Literal:
        assert value in typing.get_args(kind), f"{where}: {value!r} not in {kind}"
    elif origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(kind):
            try:
                _conforms(value, option, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: {value!r} fits none of {kind}: {errors}")
    elif origin is dict:
        key_t, value_t = typing.get_args(kind)
        assert isinstance(value, dict), f"{where}: not an object"
        for k, v in value.items():
            _conforms(k, key_t, f"{where} key")
            _conforms(v, value_t, f"{where}.{k}")
    elif origin is list:
        (item_t,) = typing.get_args(kind)
        assert isinstance(value, list), f"{where}: not a list"
        for i, v in enumerate(value):
            _conforms(v, item_t, f"{where}[{i}]")
    elif typing.is_typeddict(kind):
        check(value, kind, where)
    elif kind is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
    else:
        assert isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool), (
            f"{where}: {value!r} is not {kind.__name__}"
        )


def check(obj: Any, cls: Any, where: str = "") -> None:
    """``obj`` is a valid ``cls`` (a TypedDict)."""
    assert isinstance(obj, dict), f"{where}: not an object"
    hints = typing.get_type_hints(cls)
    missing = cls.__required_keys__ - obj.keys()
    unknown = obj.keys() - hints.keys()
    assert not missing, f"{where}: missing {sorted(missing)}"
    assert not unknown, f"{where}: not in {cls.__name__}: {sorted(unknown)}"
    for key, value in obj.items():
        _conforms(value, hints[key], f"{where}.{key}")


EXAMPLES = _json_examples()


def test_the_doc_has_examples_of_every_server_message() -> None:
    server = {o["type"] for _, o in EXAMPLES if o["type"] not in CLIENT_TYPES}
    assert server == set(m.SERVER_TYPES)
    assert {o["type"] for _, o in EXAMPLES} >= CLIENT_TYPES


@pytest.mark.parametrize(("line", "obj"), EXAMPLES, ids=lambda x: str(x)[:30])
def test_doc_example_fits_the_contract(line: int, obj: dict[str, Any]) -> None:
    kind = obj["type"]
    if kind in CLIENT_TYPES or (kind == "state" and "buses" not in obj):
        c.parse_client_message(json.dumps(obj))  # raises ContractError if not valid
    else:
        check(obj, m.SERVER_TYPES[kind], f"websocket.md:{line} {kind}")


def test_the_checker_catches_a_drift() -> None:
    with pytest.raises(AssertionError, match="missing"):
        check({"type": "pong", "id": 1} | {"type": "welcome"}, m.Welcome)
    with pytest.raises(AssertionError, match="not in"):
        check({"type": "pong", "extra": 1}, m.Pong)
    with pytest.raises(AssertionError):
        check({"type": "heartbeat", "ts": "now"}, m.Heartbeat)


def test_builders_fit_their_types() -> None:
    check(m.error_message("bad_json", "x", 1), m.ErrorMessage)
    check(m.reply_error("timeout", "x", "r", device_code=2), m.Reply)
    check(m.pong(), m.Pong)
