#!/usr/bin/env bash
# Installs podman from Debian's packages when it is missing: the interop tier runs a Numaflow
# SDK sink image through `udsink run` with it (tests/interop/test_udsink_run.py).
set -euo pipefail
if command -v podman >/dev/null 2>&1; then
  echo "podman: $(podman --version)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "podman is missing and installing it needs root: apt-get install podman" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -o DPkg::Lock::Timeout=600 podman >/dev/null
echo "podman: $(podman --version) (installed)"
