"""``framebridge sim``: simulated devices on a pty or TCP port, until SIGINT/SIGTERM.

For each bus it prints one line, tab-separated, as soon as the port is ready::

    URL<TAB>NAME<TAB>PTY-PATH-or-<TAB>addresses=1,2,3

so a script can read the first field of the first line and open it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from frames.cli import add_format_arguments, format_from_args
from frames.errors import FramesError

from .bus import SimulatedBus
from .config import BusSpec, load_config, uniform_devices
from .errors import SimError
from .faults import FaultConfig, OfflineWindow
from .profile import available_profiles, load_profile
from .run import serve
from .tap import PtyTap


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "sim",
        help="simulate devices on a virtual serial port (pty) or TCP",
        description="Serve simulated devices (standard commands) on a pty or a TCP port until "
        "SIGINT/SIGTERM. Prints 'URL<TAB>NAME<TAB>PTY<TAB>addresses=...' per bus when ready.",
    )
    p.add_argument("--devices", type=int, default=1, help="number of devices (1)")
    p.add_argument("--first-address", type=int, default=1, help="address of the first device")
    p.add_argument("--profile", default="thermo", help="shipped profile name or .toml path")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--link", help="also make this symlink to the pty (e.g. /tmp/ttySIM0)")
    where.add_argument("--tcp", metavar="HOST:PORT", help="serve TCP (socket://) instead")
    p.add_argument(
        "--tap", metavar="PATH",
        help="a read-only mirror of the bus on a second pty linked at PATH (for monitor); "
        "with several buses, PATH.NAME per bus",
    )  # fmt: skip
    p.add_argument("--config", help="TOML file describing several buses (overrides the above)")
    p.add_argument("--seed", default="0", help="seed for behaviours and faults (0)")
    p.add_argument("--baudrate", type=int, default=115200, help="for --pacing (115200)")
    p.add_argument("--pacing", action="store_true", help="write replies at baud/10 bytes/s")
    f = p.add_argument_group("faults (probabilities 0..1 per reply, times in seconds)")
    f.add_argument("--drop", type=float, default=0.0, help="drop a reply")
    f.add_argument("--corrupt", type=float, default=0.0, help="flip one byte of a reply")
    f.add_argument("--garbage", type=float, default=0.0, help="send junk before a reply")
    f.add_argument("--split", type=float, default=0.0, help="write a reply in pieces")
    f.add_argument("--delay", type=float, default=0.0, help="extra delay before each reply")
    f.add_argument("--jitter", type=float, default=0.0, help="plus uniform 0..JITTER")
    f.add_argument(
        "--offline",
        action="append",
        default=[],
        metavar="START:DURATION",
        help="devices are off during this window (repeatable)",
    )
    p.add_argument("--list-profiles", action="store_true", help="list shipped profiles, exit")
    p.add_argument("--show-profile", metavar="NAME", help="print a profile's map as JSON, exit")
    add_format_arguments(p)
    p.set_defaults(func=cmd_sim)


def _faults(args: argparse.Namespace) -> FaultConfig | None:
    windows = []
    for text in args.offline:
        start, sep, duration = text.partition(":")
        try:
            windows.append(OfflineWindow(float(start), float(duration)))
        except ValueError:
            raise SimError(f"--offline: expected START:DURATION seconds, got {text!r}") from None
        if not sep:
            raise SimError(f"--offline: expected START:DURATION seconds, got {text!r}")
    config = FaultConfig(
        drop_reply=args.drop,
        corrupt_byte=args.corrupt,
        garbage=args.garbage,
        split_writes=args.split,
        delay=args.delay,
        jitter=args.jitter,
        offline=tuple(windows),
    )
    return config if config.active else None


def specs_from_args(args: argparse.Namespace) -> list[BusSpec]:
    if args.config:
        return load_config(args.config)
    seed: int | str = int(args.seed) if args.seed.lstrip("-").isdigit() else args.seed
    profile = load_profile(args.profile)
    return [
        BusSpec(
            name=profile.name,
            devices=uniform_devices(profile, args.devices, args.first_address),
            link=args.link,
            tcp=args.tcp,
            faults=_faults(args),
            seed=seed,
            baudrate=args.baudrate,
            pacing=args.pacing,
            fmt=format_from_args(args),
        )
    ]


def _announce(buses: list[SimulatedBus]) -> None:
    for bus in buses:
        addrs = ",".join(str(a) for a in sorted(bus.devices))
        print(f"{bus.url}\t{bus.name}\t{bus.path or '-'}\taddresses={addrs}", flush=True)


def cmd_sim(args: argparse.Namespace) -> int:
    try:
        if args.list_profiles:
            for name in available_profiles():
                prof = load_profile(name)
                print(f"{name}\t{prof.model}\t{prof.description}")
            return 0
        if args.show_profile:
            prof = load_profile(args.show_profile)
            print(
                json.dumps(
                    {
                        "name": prof.name,
                        "model": prof.model,
                        "firmware": prof.firmware_version,
                        "registers": prof.describe(),
                    },
                    indent=2,
                    ensure_ascii=False,
                )
            )
            return 0
        specs = specs_from_args(args)
        taps: list[PtyTap] = []

        def ready(buses: list[SimulatedBus]) -> None:
            for bus in buses if args.tap else []:
                path = args.tap if len(buses) == 1 else f"{args.tap}.{bus.name}"
                taps.append(PtyTap(bus, path).open())
                print(f"tap\t{bus.name}\t{path}", flush=True)
            _announce(buses)

        try:
            buses = asyncio.run(serve(specs, on_ready=ready))
        finally:
            for tap in taps:
                tap.close()
    except (SimError, FramesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for bus in buses:
        print(f"{bus.name}: {json.dumps(bus.counters.as_dict())}", file=sys.stderr)
    return 0
