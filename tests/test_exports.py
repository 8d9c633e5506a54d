"""Each package's ``__all__`` is exactly what it exports: every name resolves, none is missing."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["frames", "frames.io", "firmware_sim"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    for attr in exported:
        assert getattr(module, attr) is not None, f"{name}.{attr}"


def test_frames_exports_the_public_api() -> None:
    import frames

    public = {n for n in vars(frames) if not n.startswith("_") and n[0].isupper()}
    modules = {"codec", "commands", "crc", "errors", "events", "format", "frame", "stream"}
    assert public - set(frames.__all__) - modules == set()
