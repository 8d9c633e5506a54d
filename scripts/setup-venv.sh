#!/usr/bin/env bash
# Create .venv (if missing) and install framebridge with the given extras, idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=".venv/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  target="."
  [ -n "$extras" ] && target=".[${extras}]"
  echo "setup-venv: installing framebridge${extras:+[$extras]} into .venv (log: .venv/install.log)"
  if ! .venv/bin/python -m pip install -q -e "$target" > .venv/install.log 2>&1; then
    tail -30 .venv/install.log >&2
    echo "setup-venv: pip install failed" >&2
    exit 1
  fi
  touch "$stamp"
fi
