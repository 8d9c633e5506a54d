"""``python -m firmware_sim ...`` is ``framebridge sim ...``."""

from __future__ import annotations

import sys

from bridge.cli import main

if __name__ == "__main__":
    sys.exit(main(["sim", *sys.argv[1:]]))
