"""``framebridge hash-token``, and what the bridge says at start about open access."""

from __future__ import annotations

import hashlib
import io
import logging

import pytest

from bridge.cli import main
from bridge.config import ServerConfig
from tests.bridge.conftest import make_limits, running_harness


@pytest.mark.parametrize(
    ("stdin", "token"), [("s3cret\n", "s3cret"), ("a b\r\n", "a b"), ("x", "x")]
)
def test_hash_token_reads_stdin_and_prints_the_sha256(
    stdin: str, token: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(["hash-token"]) == 0
    assert capsys.readouterr().out == hashlib.sha256(token.encode()).hexdigest() + "\n"


def test_hash_token_refuses_an_empty_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["hash-token"]) == 2
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("tokens", "warned"), [((), True), (("t",), False)])
async def test_an_open_bridge_says_so_at_start(
    tokens: tuple[str, ...], warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.server")
    config = ServerConfig(host="127.0.0.1", port=0, node="t", tokens=tokens)
    async with running_harness(config, make_limits()):
        pass
    open_lines = [r.getMessage() for r in caplog.records if "event=open_bridge" in r.getMessage()]
    assert bool(open_lines) == warned
    if warned:
        assert "loopback only" in open_lines[0]
