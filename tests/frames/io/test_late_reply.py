"""Over a real pty, a slow simulated device: no request ever returns another request's value.

Issue 10, break 1: before the guard time, 47 of 48 requests to a device slower than the timeout
returned the previous request's value. Each request here sets the register it reads to its own
number first, so a reply that belongs to an earlier request is recognised.
"""

from __future__ import annotations

import pytest

from firmware_sim.bus import SimulatedBus
from firmware_sim.faults import FaultConfig
from frames import FrameFormat, Timeout
from frames.io import AsyncMaster

pytestmark = pytest.mark.timeout(30)


async def ask_in_turn(fmt: FrameFormat, guard: float | None) -> tuple[list[object], int]:
    """Four identical reads of ct_ratio (address 6), each after setting it to its number."""
    slow = FaultConfig(delay=0.25)  # every reply 0.25 s after its request; the timeout is 0.2 s
    results: list[object] = []
    async with (
        SimulatedBus(count=1, profile="power_meter", faults=slow, fmt=fmt) as bus,
        AsyncMaster(bus.url, fmt=fmt, timeout=0.2, retries=0, guard=guard) as m,
    ):
        device = bus.devices[1]
        for k in range(1, 5):
            device.set("ct_ratio", k)
            try:
                results.append((k, await m.read_registers(1, 6, 1)))
            except Timeout:
                results.append((k, "timeout"))
        late = m.stats.late
    return results, late


def wrong_answers(results: list[object]) -> list[object]:
    return [r for r in results if r[1] != "timeout" and r[1] != [r[0]]]  # type: ignore[index]


async def test_default_format_guard_time() -> None:
    results, late = await ask_in_turn(FrameFormat(), guard=None)  # the default guard
    assert wrong_answers(results) == []
    assert late >= 3  # each earlier reply arrived during the guard and was reported late


async def test_tagged_format_without_guard() -> None:
    results, late = await ask_in_turn(FrameFormat(tagged=True), guard=0.0)
    assert wrong_answers(results) == []
    assert late >= 3  # each earlier reply arrived while the next waited: another tag
