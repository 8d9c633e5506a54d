"""The bus owner's pure parts, without a pty: poll plan, bus-time sharing, traffic → messages."""

from __future__ import annotations

import pytest

from bridge.buses import load_register_maps
from bridge.config import BusConfig, DeviceConfig, PollConfig
from bridge.devices import DeviceBook
from bridge.errors import ConfigError
from bridge.schedule import POLL, PollJob, Scheduler, plan_polls
from bridge.traffic import NoiseLimits, TrafficCore
from frames import STANDARD, Frame
from frames.events import CrcErrorSeen, FrameReceived, FrameSent, LinkStateChanged

READ = STANDARD.resolve_code("read_regs")


def thermo_bus(**kw: object) -> BusConfig:
    devices = (DeviceConfig(1, "thermo", "boiler"), DeviceConfig(2, None, "raw"))
    return BusConfig("b", "loop://", devices=devices, **kw)  # type: ignore[arg-type]


# -- the poll plan -----------------------------------------------------------------------------


def test_plan_reads_a_profiled_device_whole_and_needs_args_otherwise() -> None:
    cfg = thermo_bus(polls=(PollConfig("read_regs", addrs=(1,)), PollConfig("identify")))
    jobs = plan_polls(cfg, STANDARD, load_register_maps(cfg))
    ident = STANDARD.resolve_code("identify")
    assert [(j.addr, j.cmd) for j in jobs] == [(1, READ), (1, ident), (2, ident)]
    start = int.from_bytes(jobs[0].data[:2], "little")
    assert start == 0 and jobs[0].data[2] > 0  # from register 0, a count of the map
    with pytest.raises(ConfigError, match="needs a profile"):
        plan_polls(thermo_bus(polls=(PollConfig("read_regs"),)), STANDARD, {})
    with pytest.raises(ConfigError, match="poll\\[0\\]"):
        plan_polls(thermo_bus(polls=(PollConfig("nope"),)), STANDARD, {})


# -- sharing the wire in bus time --------------------------------------------------------------


def run(s: Scheduler, cost: dict[str, float], seconds: float, waiting: list[str]) -> dict[str, int]:
    """Simulate a bus: every source always has work; each transaction costs ``cost[source]``."""
    now, served = 0.0, dict.fromkeys([*waiting, POLL], 0)
    job = s.jobs[0]
    while now < seconds:
        source = s.pick(now, waiting)
        if source is None:
            now = s.next_time() or now + 0.01
            continue
        now += cost[source]
        if source == POLL:
            s.done(job, now)
        s.charge(source, cost[source], now)
        served[source] += 1
    return served


def test_a_client_of_slow_requests_cannot_starve_polls_or_another_client() -> None:
    s = Scheduler([PollJob(1, READ, b"", 0.05)], 0.0)
    served = run(s, {"slow": 2.0, "quick": 0.01, POLL: 0.01}, 60.0, ["slow", "quick"])
    # bus time is shared: the slow client gets about a third of the wire, not every other turn
    assert served["slow"] <= 60.0 / 2.0 / 2
    assert served[POLL] >= 0.3 * 60.0 / 0.05  # polls keep a good part of their rate
    assert served["quick"] > 10 * served["slow"]


def test_turn_based_fairness_would_fail_the_same_plan() -> None:
    """The counter-check: alternating in turns lets the slow client take most of the wire."""
    turns = {"slow": 0, POLL: 0}
    now, last = 0.0, POLL
    while now < 60.0:
        last = "slow" if last == POLL else POLL
        now += 2.0 if last == "slow" else 0.01
        turns[last] += 1
    assert turns[POLL] < 0.05 * 60.0 / 0.05


def test_usage_decays_and_idle_clients_are_pruned() -> None:
    s = Scheduler([], 0.0, half_life_s=1.0)
    s.charge("c", 4.0, 0.0)
    assert s.usage("c", 2.0) == pytest.approx(1.0)
    s.prune(30.0, keep=[])
    assert s.usage("c", 30.0) == 0.0 and "c" not in s._usage


# -- traffic → messages ------------------------------------------------------------------------


def core(**noise: float) -> TrafficCore:
    cfg = thermo_bus()
    maps = load_register_maps(cfg)
    book = DeviceBook([(d.addr, d.name, d.profile) for d in cfg.devices], maps)
    return TrafficCore("b", STANDARD, book, NoiseLimits(**noise))


def test_a_read_reply_is_named_and_remembered() -> None:
    tc = core()
    req = Frame(1, READ, bytes([0, 0, 2]))
    assert tc.traffic(FrameSent(1.0, req), 1.0)[0]["dir"] == "tx"
    reply = Frame(1, READ, bytes([2]) + (2150).to_bytes(2, "little") + (0).to_bytes(2, "little"))
    (msg,) = tc.traffic(FrameReceived(1.1, reply), 1.1)
    assert msg["fields"]["named"] and msg["dir"] == "rx" and "kind" not in msg
    assert tc.book.snapshot()["1"]["registers"]["0"] == 2150
    assert tc.reply(reply, req.data, 1.23)["fields"]["named"] == msg["fields"]["named"]


def test_crc_errors_become_one_counted_event_per_interval() -> None:
    tc = core(error_interval_s=1.0)
    tc.awaiting = 1
    out = tc.traffic(CrcErrorSeen(0.0, 1), 0.0)
    assert [(m["event"], m["count"], m["awaiting"]) for m in out] == [("crc_error", 1, 1)]
    tc.awaiting = None
    for i in range(1, 700):
        assert tc.traffic(CrcErrorSeen(i / 1000, 1), i / 1000) == []
    assert tc.next_deadline() == 1.0 and tc.tick(0.99) == []
    (msg,) = tc.tick(1.0)
    assert msg["count"] == 699 and "awaiting" not in msg  # no reply was awaited meanwhile
    assert tc.tick(2.0) == [] and tc.next_deadline() is None  # a quiet interval closes it
    assert tc.book.snapshot()["1"]["errors"]["crc_errors"] == 1


def test_unsolicited_frames_are_rate_limited_and_the_rest_counted() -> None:
    tc = core(unsolicited_per_s=5.0)
    babble = [FrameReceived(i / 100, Frame(3, READ, b"\x00"), "unexpected") for i in range(100)]
    out = [m for ev in babble for m in tc.traffic(ev, ev.ts)]
    frames = [m for m in out if m["type"] == "frame"]
    assert 5 <= len(frames) <= 10 and all(m["kind"] == "unexpected" for m in frames)
    dropped = [m["count"] for m in out if m.get("event") == "frames_dropped"]
    dropped += [m["count"] for m in tc.tick(2.0) if m.get("event") == "frames_dropped"]
    assert len(frames) + sum(dropped) == 100


def test_link_changes_are_news_once_and_unknown_addresses_stay_out_of_state() -> None:
    tc = core()
    assert [m["event"] for m in tc.traffic(LinkStateChanged(0.0, True), 0.0)] == ["bus_up"]
    assert tc.traffic(LinkStateChanged(0.1, True), 0.1) == []
    down = tc.traffic(LinkStateChanged(0.2, False, "gone"), 0.2)
    assert down[0]["reason"] == "gone" and tc.down_reason == "gone"
    assert tc.answered(9, 1.0) == [] and tc.poll_missed(9, 1.0) == []
    tc.traffic(FrameReceived(1.0, Frame(9, 0x06, b"\x00\x00\x01\x00")), 1.0)  # a write reply
    tc.book.count_error(9, "timeouts")
    assert sorted(tc.book.snapshot()) == ["1", "2"]
    assert [m["event"] for m in tc.answered(1, 1.0)] == ["device_online"]
