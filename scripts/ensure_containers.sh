#!/usr/bin/env bash
# Installs what runs containers in the test tiers (podman for `udsink run --sink-image` in the
# interop tier, buildah for the e2e node's images, runc), then proves on this host, in a few
# seconds, that both can start a container with the OCI runtime the project chooses
# (operator/udsink_cli/oci_runtime.py): a cgroup layout or a runtime that cannot work fails
# here with its reason, before any test runs.
#
# runc is installed by name: Debian's podman depends on "crun | runc", so installing podman
# alone brings crun on a machine without runc, and crun refuses cgroup v1 hybrid hosts.
# The check uses storage of its own under a temporary folder (never the machine's) and a
# one-file root filesystem (a static program built with gcc that exits 0): no image, no
# registry, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(runc podman buildah)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure_containers: missing ${missing[*]}; installing needs root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
  echo "ensure_containers: installed ${missing[*]}"
fi

runtime="$("${PYTHON:-python3}" operator/udsink_cli/oci_runtime.py)"
echo "ensure_containers: $(podman --version), $(buildah --version | cut -d' ' -f1-3), OCI runtime ${runtime} ($("${runtime}" --version | head -n1))"

tmp="$(mktemp -d)"
cleanup() {
  podman --root "$tmp/podman" --runroot "$tmp/podman-run" --storage-driver overlay \
    rm --all --force >/dev/null 2>&1 || true
  buildah --root "$tmp/buildah" --runroot "$tmp/buildah-run" --storage-driver overlay \
    rm --all >/dev/null 2>&1 || true
  for m in "$tmp/podman/overlay" "$tmp/buildah/overlay"; do
    mountpoint -q "$m" && umount "$m"
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/rootfs"
printf 'int main(void) { return 0; }\n' > "$tmp/true.c"
gcc -static -Os -o "$tmp/rootfs/true" "$tmp/true.c"
# This machine has no CAP_SYS_RESOURCE: podman's default rlimits cannot be applied (the
# interop tier's containers.conf says the same, tests/interop/conftest.py).
printf '[containers]\ndefault_ulimits = []\npids_limit = 0\n' > "$tmp/containers.conf"

fail() {
  echo "ensure_containers: $1 cannot run a container on this host with ${runtime}:" >&2
  sed 's/^/  /' "$tmp/err" >&2
  echo "  (the image builds of the e2e tier and \`udsink run --sink-image\` would fail the same way; docs/e2e-node.md)" >&2
  exit 1
}
start=$(date +%s)
CONTAINERS_CONF="$tmp/containers.conf" podman --runtime "$runtime" --root "$tmp/podman" \
  --runroot "$tmp/podman-run" --storage-driver overlay \
  run --rm --network none --rootfs "$tmp/rootfs" /true >"$tmp/err" 2>&1 || fail podman
buildah_=(buildah --root "$tmp/buildah" --runroot "$tmp/buildah-run" --storage-driver overlay)
ctr="$("${buildah_[@]}" from scratch)"
"${buildah_[@]}" copy "$ctr" "$tmp/rootfs/true" /true >/dev/null
"${buildah_[@]}" run --runtime "$runtime" "$ctr" /true >"$tmp/err" 2>&1 || fail buildah
echo "ensure_containers: podman and buildah each ran a container with ${runtime} ($(( $(date +%s) - start ))s)"
