"""Poll simulated devices with AsyncMaster, no hardware: the README's Python example, runnable.

.venv/bin/python examples/read_simulated_devices.py
"""

from __future__ import annotations

import asyncio

from firmware_sim import FaultConfig, SimulatedBus
from frames.io import AsyncMaster


async def main() -> None:
    faults = FaultConfig(corrupt_byte=0.05)  # 5% of replies damaged: retries hide it
    async with (
        SimulatedBus(count=3, profile="thermo", faults=faults) as bus,
        AsyncMaster(bus.url, timeout=0.2, retries=3) as master,
    ):
        for addr in (1, 2, 3):
            ident = await master.identify(addr)
            values = await master.read_registers(addr, 0, 4)
            print(f"addr {addr}: {ident['model']} fw {ident['firmware']} regs {values}")
        await master.write_register(2, 2, 2250)
        print("setpoint of addr 2 now", bus.devices[2].get("setpoint"))
        print("master stats:", master.stats)


if __name__ == "__main__":
    asyncio.run(main())
