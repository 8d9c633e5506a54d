"""The tenants' cores import no I/O (as tests/test_layering.py checks for the older ones)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = ["acl.py", "tenants.py", "tenants_config.py", "jwtauth.py", "quota.py", "schedule.py"]
IO = {"asyncio", "socket", "ssl", "selectors", "subprocess", "websockets", "redis", "serial"}


@pytest.mark.parametrize("name", PURE)
def test_tenant_cores_import_no_io(name: str) -> None:
    tree = ast.parse((ROOT / "bridge" / name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        assert not {n.split(".")[0] for n in names} & IO, (name, names)
