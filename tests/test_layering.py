"""The pure modules must not import I/O: that is what lets one core serve sync, async and tests.

Each pure module is imported in a process of its own and ``sys.modules`` is checked afterwards,
so an import of any spelling (relative, inside a function that runs at import, through a
dependency) is caught; a source scan would miss a relative import of an adapter. To stay fast,
one subprocess forks a fresh child per module (``fork`` copies a process that has loaded only
``importlib``, ``json`` and ``logging``), and the result comes back per module.

``logging`` is allowed in pure code and imports ``threading`` for its locks: the I/O modules are
taken out of ``sys.modules`` before each import, so a pure module that imports ``threading``
itself (or through another module) still shows up.

This file is the one list of what is pure (see docs/architecture.md for the picture).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IO_MODULES = frozenset(
    {
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
)
# Everything in these packages is pure except the listed adapter folders/modules.
PURE = {
    "frames": {"io", "cli.py"},
    "firmware_sim": {
        "bus.py",
        "bus_ports.py",
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
    "bus_queue.py",
    "check_config.py",
    "client_policy.py",
    "config.py",
    "config_services.py",
    "config_table.py",
    "connection.py",
    "contract.py",
    "devices.py",
    "drain.py",
    "errors.py",
    "fanout.py",
    "guard.py",
    "history.py",
    "jsonlog.py",
    "local_fanout.py",
    "lograte.py",
    "messages.py",
    "mqtt_core.py",
    "mqtt_discovery.py",
    "mqtt_payload.py",
    "policy.py",
    "quota.py",
    "resume_wait.py",
    "schedule.py",
    "series.py",
    "session.py",
    "store.py",
    "tenants.py",
    "tenants_config.py",
    "traffic.py",
    "views.py",
]

# Run by a fresh interpreter: argv[1] is the I/O module names (comma-separated), then the
# modules to check. Prints {module: [I/O modules it loaded] or ["import failed: ..."]}.
_PROBE = r"""
import importlib, json, logging, os, sys

io = set(sys.argv[1].split(","))
for name in [m for m in sys.modules if m.split(".")[0] in io]:
    del sys.modules[name]
results = {}
for module in sys.argv[2:]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            importlib.import_module(module)
            found = sorted({m.split(".")[0] for m in sys.modules} & io)
        except BaseException as exc:
            found = [f"import failed: {exc!r}"]
        os.write(write_end, json.dumps(found).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    results[module] = json.loads(data) if data else ["child died"]
print(json.dumps(results))
"""


def pure_modules() -> list[str]:
    """Dotted names of every pure module."""
    names: list[str] = []
    for pkg, adapters in PURE.items():
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT / pkg)
            if rel.parts[0] in adapters:
                continue
            parts = (pkg, *rel.with_suffix("").parts)
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    names += [f"bridge.{name.removesuffix('.py')}" for name in PURE_BRIDGE]
    return names


@pytest.fixture(scope="module")
def loaded_io() -> dict[str, list[str]]:
    """For each pure module, the I/O modules its import loaded (one subprocess for all)."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(sorted(IO_MODULES)), *pure_modules()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("module", pure_modules())
def test_pure_module_imports_no_io(module: str, loaded_io: dict[str, list[str]]) -> None:
    assert loaded_io[module] == [], f"{module} loads {loaded_io[module]}"


def test_probe_sees_io_imports(tmp_path: Path) -> None:
    """The check itself: a relative import of an adapter, and threading behind logging, show."""
    pkg = tmp_path / "probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "adapter.py").write_text("import asyncio\n")
    (pkg / "core.py").write_text("import logging\nfrom . import adapter\n")
    (pkg / "locks.py").write_text("import logging\nimport threading\n")
    (pkg / "clean.py").write_text("import logging\nimport json\n")
    modules = ["probe_pkg.core", "probe_pkg.locks", "probe_pkg.clean"]
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(sorted(IO_MODULES)), *modules],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(out.stdout)
    assert "asyncio" in found["probe_pkg.core"]
    assert found["probe_pkg.locks"] == ["threading"]
    assert found["probe_pkg.clean"] == []


def test_listed_pure_modules_exist() -> None:
    missing = [name for name in PURE_BRIDGE if not (ROOT / "bridge" / name).exists()]
    assert missing == []
    for pkg, adapters in PURE.items():
        assert adapters <= {p.name for p in (ROOT / pkg).iterdir()}, pkg
