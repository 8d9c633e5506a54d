#!/usr/bin/env bash
# Install the system programs the tests use (redis-server, socat, chromium, tshark, ser2net,
# mosquitto, nginx), only when missing.
# Idempotent; fails loudly when something cannot be installed.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v socat >/dev/null 2>&1 || need+=(socat)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v tshark >/dev/null 2>&1 || need+=(tshark)  # the capture tests run the dissector
command -v ser2net >/dev/null 2>&1 || need+=(ser2net)  # tests/remote: RFC 2217 and raw TCP
# the MQTT tests start their own broker (Debian's mosquitto lives in /usr/sbin)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
# tests/prod: a real nginx in front of bridge nodes (the tests start their own, on free ports)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
# make -C firmware test: clang (and libFuzzer), the s390x cross compiler and qemu-user for the
# big-endian run, the Cortex-M0 toolchain with newlib for the size build.
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v s390x-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-s390x-linux-gnu)
[ -f /usr/s390x-linux-gnu/include/stdio.h ] || need+=(libc6-dev-s390x-cross)
command -v qemu-s390x >/dev/null 2>&1 || need+=(qemu-user)
command -v arm-none-eabi-gcc >/dev/null 2>&1 || need+=(gcc-arm-none-eabi)
[ -f /usr/lib/arm-none-eabi/include/stdio.h ] || need+=(libnewlib-arm-none-eabi)
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
for tool in redis-server socat /usr/bin/chromium tshark ser2net clang s390x-linux-gnu-gcc \
  qemu-s390x arm-none-eabi-gcc /usr/s390x-linux-gnu/include/stdio.h /usr/lib/arm-none-eabi/include/stdio.h; do
  if [[ $tool == */include/* ]]; then
    [ -f "$tool" ] || { echo "setup-system: $tool is still missing" >&2; exit 1; }
    continue
  fi
  command -v "$tool" >/dev/null 2>&1 || { echo "setup-system: $tool is still missing" >&2; exit 1; }
done
