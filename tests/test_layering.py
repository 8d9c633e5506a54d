"""The pure modules must not import I/O: that is what lets one core serve sync, async and tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IO_MODULES = {
    "asyncio",
    "serial",
    "serial_asyncio",
    "websockets",
    "redis",
    "socket",
    "select",
    "threading",
    "pty",
    "selectors",
    "termios",
}
# Everything in these packages is pure except the listed adapter folders/modules.
PURE = {
    "frames": {"io", "cli.py"},
    "firmware_sim": {
        "bus.py",
        "threaded.py",
        "cli.py",
        "__main__.py",
        "run.py",
        "tap.py",
        "c_device.py",
    },
}
PURE_BRIDGE = [
    "acl.py",
    "broker.py",
    "config.py",
    "connection.py",
    "contract.py",
    "devices.py",
    "errors.py",
    "fanout.py",
    "guard.py",
    "history.py",
    "lograte.py",
    "local_fanout.py",
    "messages.py",
    "mqtt_core.py",
    "mqtt_discovery.py",
    "mqtt_payload.py",
    "policy.py",
    "schedule.py",
    "session.py",
    "store.py",
    "traffic.py",
]


def pure_files() -> list[Path]:
    files: list[Path] = []
    for pkg, adapters in PURE.items():
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT / pkg)
            if rel.parts[0] in adapters:
                continue
            files.append(path)
    files += [ROOT / "bridge" / name for name in PURE_BRIDGE]
    return files


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_imports_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in IO_MODULES, f"{path.name} imports {name}"


def test_listed_pure_bridge_modules_exist() -> None:
    missing = [name for name in PURE_BRIDGE if not (ROOT / "bridge" / name).exists()]
    assert missing == []
