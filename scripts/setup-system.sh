#!/usr/bin/env bash
# Install the system programs the tests use (redis-server, socat, chromium, tshark), only when
# missing.
# Idempotent; fails loudly when something cannot be installed.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v socat >/dev/null 2>&1 || need+=(socat)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v tshark >/dev/null 2>&1 || need+=(tshark)  # the capture tests run the dissector
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-system: installing ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
  else
    SUDO=
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
for tool in redis-server socat /usr/bin/chromium tshark; do
  command -v "$tool" >/dev/null 2>&1 || { echo "setup-system: $tool is still missing" >&2; exit 1; }
done
