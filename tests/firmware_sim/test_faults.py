"""Seeded fault decisions."""

from __future__ import annotations

import pytest

from firmware_sim.errors import ConfigError
from firmware_sim.faults import NO_FAULTS, FaultConfig, FaultInjector, OfflineWindow, wire_time
from frames.codec import encode
from frames.stream import StreamDecoder

REPLY = encode(1, 0x03, bytes(range(13)))


def plans(config: FaultConfig, seed: int = 1, n: int = 200) -> list:  # type: ignore[type-arg]
    inj = FaultInjector(seed)
    return [inj.plan(REPLY, config) for _ in range(n)]


def test_no_faults_passes_through() -> None:
    d = FaultInjector().plan(REPLY, NO_FAULTS)
    assert d.chunks == (REPLY,) and d.delay == 0 and d.applied == ()


def test_drop_always() -> None:
    assert all(p.dropped and p.applied == ("drop_reply",) for p in plans(FaultConfig(drop_reply=1)))


def test_probability_is_roughly_honoured() -> None:
    dropped = sum(p.dropped for p in plans(FaultConfig(drop_reply=0.3), n=2000))
    assert 450 < dropped < 750


def test_corrupt_flips_exactly_one_byte() -> None:
    for p in plans(FaultConfig(corrupt_byte=1)):
        diff = [i for i, (a, b) in enumerate(zip(p.data, REPLY, strict=True)) if a != b]
        assert len(diff) == 1
        assert StreamDecoder().feed(p.data) == []  # the host cannot accept it


def test_garbage_precedes_an_intact_reply() -> None:
    for p in plans(FaultConfig(garbage=1, garbage_max=5)):
        junk = len(p.data) - len(REPLY)
        assert 1 <= junk <= 5 and p.data.endswith(REPLY)
        dec = StreamDecoder()
        assert [f.data for f in dec.feed(p.data)] == [bytes(range(13))]


def test_split_pieces_join_to_the_reply() -> None:
    for p in plans(FaultConfig(split_writes=1, split_gap=0.01)):
        assert 2 <= len(p.chunks) <= 4 and p.data == REPLY and p.gap == 0.01
        assert all(p.chunks)


def test_delay_and_jitter_bounds() -> None:
    ds = [p.delay for p in plans(FaultConfig(delay=0.1, jitter=0.05))]
    assert all(0.1 <= d <= 0.15 for d in ds) and len(set(ds)) > 100


def test_same_seed_same_decisions_and_independence() -> None:
    cfg = FaultConfig(corrupt_byte=0.5, drop_reply=0.2)
    assert plans(cfg, seed=3) == plans(cfg, seed=3)
    assert plans(cfg, seed=3) != plans(cfg, seed=4)
    # Turning split on does not move which replies get corrupted.
    a = [("corrupt_byte" in p.applied) for p in plans(FaultConfig(corrupt_byte=0.5))]
    b = [
        ("corrupt_byte" in p.applied) for p in plans(FaultConfig(corrupt_byte=0.5, split_writes=1))
    ]
    assert a == b


def test_offline_windows() -> None:
    cfg = FaultConfig(offline=(OfflineWindow(1, 2), OfflineWindow(10, 1)))
    assert [cfg.is_offline(t) for t in (0.5, 1, 2.9, 3, 10.5, 11)] == [
        False,
        True,
        True,
        False,
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop_reply": 1.5}, "faults.drop_reply"),
        ({"delay": -1}, "faults.delay"),
        ({"garbage_max": 0}, "faults.garbage_max"),
        ({"offline": (OfflineWindow(1, 0),)}, r"faults.offline\[0\]"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FaultConfig(**kwargs)  # type: ignore[arg-type]


def test_from_table() -> None:
    cfg = FaultConfig.from_table(
        {"drop_reply": 0.1, "delay": 1, "garbage_max": 4, "offline": [{"start": 5, "duration": 2}]}
    )
    assert cfg == FaultConfig(
        drop_reply=0.1, delay=1.0, garbage_max=4, offline=(OfflineWindow(5, 2),)
    )
    with pytest.raises(ConfigError, match=r"bus\.faults\.dorp: unknown fault"):
        FaultConfig.from_table({"dorp": 1}, "bus.faults")
    with pytest.raises(ConfigError, match=r"bus\.faults\.drop_reply: a probability"):
        FaultConfig.from_table({"drop_reply": 2}, "bus.faults")
    with pytest.raises(ConfigError, match=r"offline\[0\]"):
        FaultConfig.from_table({"offline": [{"start": 5}]})


def test_wire_time() -> None:
    assert wire_time(96, 9600) == pytest.approx(0.1)
