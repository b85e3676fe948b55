#!/usr/bin/env bash
# A real Kubernetes node on this machine for the e2e tier: containerd + runc + the CNI bridge
# plugin, a kubelet and a kube-scheduler, running the project's own images built here.
#
#   scripts/e2e_node.sh prepare          install packages, build binaries and images (no network
#                                        or process change; idempotent)
#   scripts/e2e_node.sh binaries|images  only the kubelet/scheduler build, or only the images
#   scripts/e2e_node.sh bridge           create the node's bridge and address (so an API server
#                                        can listen on it before the node starts)
#   scripts/e2e_node.sh up KUBECONFIG    prepare + bridge, then start containerd, the kubelet and
#                                        the scheduler against the cluster of KUBECONFIG (an admin)
#                                        and wait until the Node is Ready
#   scripts/e2e_node.sh down             stop everything `up` started, by PID, remove every pod
#                                        sandbox, mount, netns and the bridge; restore the kernel
#                                        settings the kubelet changed; verify nothing is left
#
# Settings (environment): UDSINK_NODE_STATE (default /run/udsink-node: sockets, logs, PIDs,
# containerd's root; removed by `down`), UDSINK_NODE_BRIDGE (udsink0), UDSINK_NODE_CIDR
# (10.244.77.0/24; the node's address is the first host address, on the bridge itself),
# UDSINK_NODE_NAME (udsink-node), UDSINK_CACHE (~/.cache/udsink).
# The settings and why each is needed: docs/e2e-node.md.
# Everything is root-only by nature (containerd, mounts, a bridge). Logs go to stderr; `up` prints
# `KEY=value` lines on stdout (node name, address, containerd socket) for callers.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODULE_DIR="${ROOT}/tests/e2e/cluster"
CACHE_DIR="${UDSINK_CACHE:-${HOME}/.cache/udsink}"
STATE="${UDSINK_NODE_STATE:-/run/udsink-node}"
BRIDGE="${UDSINK_NODE_BRIDGE:-udsink0}"
CIDR="${UDSINK_NODE_CIDR:-10.244.77.0/24}"
NODE_NAME="${UDSINK_NODE_NAME:-udsink-node}"
PREFIX_LEN="${CIDR#*/}"
NET="${CIDR%/*}"
NODE_IP="${NET%.*}.$(( ${NET##*.} + 1 ))"
KUBE_VERSION="$(grep -oE 'k8s\.io/kubernetes v[0-9.]+' "${MODULE_DIR}/go.mod" | head -n1 | cut -d' ' -f2)"
HEAVY_LOCK="${UDSINK_HEAVY_LOCK:-${CACHE_DIR}/heavy-build.lock}"
PACKAGES=(containerd runc containernetworking-plugins buildah debootstrap)
# The Debian release and packages of the Python base image; the cache key is made from these.
BASE_SUITE=bookworm
BASE_INCLUDE=python3,python3-venv,ca-certificates
BASE_MIRROR="${UDSINK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Kernel settings the kubelet rewrites on start (it sets what it expects unless told to fail);
# `up` records them and `down` puts them back.
KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
SOCK="${STATE}/containerd.sock"

log() { echo "e2e_node: $*" >&2; }
die() { log "$*"; exit 1; }
heavy() {
  # One heavy build at a time on the machine (its folder may be absent when set by hand).
  if [[ -d "$(dirname "${HEAVY_LOCK}")" ]]; then flock "${HEAVY_LOCK}" "$@"; else "$@"; fi
}
buildah_() { buildah --root "${CACHE_DIR}/node-buildah/root" \
  --runroot "${CACHE_DIR}/node-buildah/runroot" --storage-driver overlay "$@"; }

# --- prepare: packages, binaries, images ---

ensure_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return
  log "installing ${missing[*]} from Debian"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# kubelet, kube-scheduler and cri-sweep from the same wrapper module as the control plane.
ensure_node_binaries() {
  BIN="${CACHE_DIR}/node-${KUBE_VERSION}"
  [[ -f "${BIN}/.complete" ]] && return
  command -v go >/dev/null || die "'go' is not on PATH; it is needed to build the kubelet"
  mkdir -p "${BIN}"
  exec 8>"${BIN}.lock"
  flock 8
  if [[ ! -f "${BIN}/.complete" ]]; then
    log "building kubelet and kube-scheduler ${KUBE_VERSION} into ${BIN} (first run only)"
    local start
    start=$(date +%s)
    # shellcheck source=scripts/kube_ldflags.sh
    source "${ROOT}/scripts/kube_ldflags.sh"
    (cd "${MODULE_DIR}" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
      heavy go build -trimpath -ldflags "$(kube_ldflags "${KUBE_VERSION}")" -o "${BIN}/" \
      ./cmd/kubelet ./cmd/kube-scheduler ./cmd/cri-sweep) >&2
    for b in kubelet kube-scheduler cri-sweep; do
      [[ -x "${BIN}/${b}" ]] || die "the build did not produce ${BIN}/${b}"
    done
    log "built the node binaries in $(( $(date +%s) - start ))s"
    touch "${BIN}/.complete"
  fi
  exec 8>&-
}

# An image FROM scratch holding one static binary as its entrypoint, written as a docker archive.
scratch_image() {
  local binary="$1" ref="$2" user="$3" archive="$4" name ctr
  name="$(basename "${binary}")"
  ctr="$(buildah_ from scratch)"
  buildah_ copy "${ctr}" "${binary}" "/${name}" >/dev/null
  buildah_ config --entrypoint "[\"/${name}\"]" --user "${user}" "${ctr}"
  buildah_ commit -q "${ctr}" "${ref}" >/dev/null
  buildah_ rm "${ctr}" >/dev/null
  buildah_ push -q "${ref}" "docker-archive:${archive}:${ref}" >&2
}

# The sandbox ("pause") image: Kubernetes' own pause.c from the module zip, static, FROM scratch.
ensure_pause_image() {
  local src key
  src="$(cd "${MODULE_DIR}" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  [[ -f "${src}" ]] || die "no ${src} in the k8s.io/kubernetes module"
  key="$( (sha256sum "${src}"; gcc --version | head -n1) | sha256sum | cut -c1-12)"
  PAUSE_IMAGE="localhost/udsink-pause:${key}"
  PAUSE_TAR="${CACHE_DIR}/node-images/pause-${key}.tar"
  [[ -f "${PAUSE_TAR}" ]] && return
  mkdir -p "${CACHE_DIR}/node-images"
  local tmp
  tmp="$(mktemp -d)"
  gcc -Os -static -o "${tmp}/pause" "${src}"
  strip "${tmp}/pause"
  scratch_image "${tmp}/pause" "${PAUSE_IMAGE}" 65535:65535 "${PAUSE_TAR}.part"
  mv "${PAUSE_TAR}.part" "${PAUSE_TAR}"
  rm -rf "${tmp}"
}

# A Python base image from Debian: debootstrap minbase + python3, a venv at /opt/venv first on
# PATH (Debian's python3 refuses a bare `pip install`). The rootfs tarball is cached by its inputs.
ensure_python_base() {
  local key tarball rootfs ctr
  key="$(echo "${BASE_SUITE} ${BASE_INCLUDE} ${BASE_MIRROR} minbase venv:/opt/venv v1" \
    | sha256sum | cut -c1-12)"
  PYTHON_BASE="localhost/udsink-python-base:${key}"
  tarball="${CACHE_DIR}/node-images/python-base-${key}.tar"
  mkdir -p "${CACHE_DIR}/node-images"
  if [[ ! -f "${tarball}" ]]; then
    rootfs="$(mktemp -d)/rootfs"
    log "debootstrap ${BASE_SUITE} (${BASE_INCLUDE}) into ${rootfs} (first run only)"
    # debootstrap mounts /proc and /sys in the target; unmount them whatever happens.
    if ! heavy debootstrap --variant=minbase --include="${BASE_INCLUDE}" "${BASE_SUITE}" \
        "${rootfs}" "${BASE_MIRROR}" >&2; then
      umount -R "${rootfs}/proc" "${rootfs}/sys" 2>/dev/null || true
      die "debootstrap failed (output above); nothing is cached"
    fi
    chroot "${rootfs}" /usr/bin/python3 -m venv /opt/venv
    rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/*
    tar -C "${rootfs}" -cf "${tarball}.part" .
    mv "${tarball}.part" "${tarball}"
    rm -rf "$(dirname "${rootfs}")"
  fi
  if ! buildah_ inspect --type image "${PYTHON_BASE}" >/dev/null 2>&1; then
    ctr="$(buildah_ from scratch)"
    buildah_ add "${ctr}" "${tarball}" / >/dev/null
    buildah_ config --env VIRTUAL_ENV=/opt/venv \
      --env PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --cmd '["python3"]' "${ctr}"
    buildah_ commit -q "${ctr}" "${PYTHON_BASE}" >/dev/null
    buildah_ rm "${ctr}" >/dev/null
  fi
}

# The project's images, rebuilt every run (a test must run the code under test).
build_images() {
  IMAGE_DIR="${STATE}/images"
  rm -rf "${IMAGE_DIR}"
  local flags="--pull=never --network host --layers=false"
  flags+=" -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"
  UDSINK_IMAGE_BUILDER=buildah PYTHON_IMAGE="${PYTHON_BASE}" UDSINK_BUILD_FLAGS="${flags}" \
    UDSINK_BUILDAH_ROOT="${CACHE_DIR}/node-buildah" UDSINK_IMAGE_ARCHIVE_DIR="${IMAGE_DIR}" \
    heavy bash "${ROOT}/scripts/build_images.sh" >&2
}

# A sink built with Numaflow's Go SDK (tests/e2e/gosink), static, FROM scratch, as a Numaflow
# user would ship it; the tag is not `latest`, so the kubelet never tries to pull it.
GO_SINK_IMAGE=localhost/udsink-e2e-go-sink:e2e
build_go_sink() {
  local tmp
  tmp="$(mktemp -d)"
  # A few seconds of compiling: not worth queueing behind other builds for the heavy lock.
  (cd "${ROOT}/tests/e2e/gosink" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
    go build -trimpath -ldflags "-s -w" -o "${tmp}/sink" .) >&2
  scratch_image "${tmp}/sink" "${GO_SINK_IMAGE}" 65532:65532 "${IMAGE_DIR}/go-sink.tar"
  rm -rf "${tmp}"
}

prepare() {
  mkdir -p "${STATE}"
  ensure_packages
  ensure_node_binaries
  ensure_pause_image
  ensure_python_base
  build_images
  build_go_sink
  # containers/storage keeps its overlay folder as a private mount while in use; leave none.
  if mountpoint -q "${CACHE_DIR}/node-buildah/root/overlay"; then
    umount "${CACHE_DIR}/node-buildah/root/overlay" || true
  fi
  # What `up` starts from, so a separate `prepare` is not repeated by `up`.
  printf 'PAUSE_IMAGE=%q\nPAUSE_TAR=%q\nIMAGE_DIR=%q\n' "${PAUSE_IMAGE}" "${PAUSE_TAR}" \
    "${IMAGE_DIR}" >"${STATE}/prepared.env"
}

# --- bridge, processes ---

bridge_up() {
  mkdir -p "${STATE}"
  # What `down` checks against: the machine as it was before the node.
  [[ -f "${STATE}/before.ip_forward" ]] || sysctl -n net.ipv4.ip_forward >"${STATE}/before.ip_forward"
  [[ -f "${STATE}/before.iptables" ]] || iptables-save 2>/dev/null | grep -v '^#' \
    | sed 's/\[[0-9]*:[0-9]*\]//' >"${STATE}/before.iptables" || true
  [[ -f "${STATE}/before.netns" ]] || ls /var/run/netns 2>/dev/null >"${STATE}/before.netns" || true
  if ! ip link show "${BRIDGE}" >/dev/null 2>&1; then
    ip link add "${BRIDGE}" type bridge
    touch "${STATE}/bridge.created"
  fi
  ip addr show dev "${BRIDGE}" | grep -q " ${NODE_IP}/" \
    || ip addr add "${NODE_IP}/${PREFIX_LEN}" dev "${BRIDGE}"
  ip link set "${BRIDGE}" up
}

running() { [[ -f "${STATE}/pids/$1" ]] && kill -0 "$(cat "${STATE}/pids/$1")" 2>/dev/null; }

start_process() {
  local name="$1"; shift
  mkdir -p "${STATE}/pids" "${STATE}/logs"
  running "${name}" && return
  # Its own session, so a Ctrl-C in the caller's terminal does not reach it; `down` stops it.
  setsid "$@" >"${STATE}/logs/${name}.log" 2>&1 </dev/null &
  echo $! >"${STATE}/pids/${name}"
}

wait_for() {
  local what="$1" name="$2" seconds="$3"; shift 3
  local deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    if ! running "${name}"; then
      die "${name} exited before ${what}; last lines of ${STATE}/logs/${name}.log:
$(tail -n 40 "${STATE}/logs/${name}.log")"
    fi
    if (( $(date +%s) > deadline )); then
      die "${what}: not within ${seconds}s; last lines of ${STATE}/logs/${name}.log:
$(tail -n 40 "${STATE}/logs/${name}.log")"
    fi
    sleep 0.5
  done
}

write_configs() {
  mkdir -p "${STATE}/cni" "${STATE}/kubelet" "${STATE}/pod-logs"
  cat >"${STATE}/containerd.toml" <<EOF
version = 2
root = "${STATE}/containerd/root"
state = "${STATE}/containerd/state"
# Plugins that would write outside our folders or do not apply here.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "${SOCK}"
[ttrpc]
  address = "${SOCK}.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # No AppArmor in this kernel.
  disable_apparmor = true
  # No CAP_SYS_RESOURCE here: runc may not lower oom_score_adj below its own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${STATE}/runc"
        # runc by path, not whatever the shim finds first (docs/e2e-node.md, the OCI runtime).
        BinaryName = "$(command -v runc)"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${STATE}/cni"
EOF
  # isGateway false: with true the plugin turns on ip_forward for the whole machine. The node's
  # address is on the bridge already; pods reach it and each other, nothing else (no route out).
  cat >"${STATE}/cni/10-udsink.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "udsink-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${BRIDGE}",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${CIDR}", "rangeStart": "${NET%.*}.10"}]],
        "dataDir": "${STATE}/cni-ipam"
      }
    },
    {"type": "loopback"}
  ]
}
EOF
  cat >"${STATE}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://${SOCK}
# cgroup v1 (hybrid) host, no systemd as PID 1.
failCgroupV1: false
cgroupDriver: cgroupfs
# No CAP_SYS_RESOURCE: the kubelet may not lower its own OOM score.
oomScoreAdj: 0
# Else it writes KUBE-* chains into the host's firewall.
makeIPTablesUtilChains: false
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${KUBELET_HEALTHZ_PORT}
# The API server reaches the kubelet (logs, exec) without a client certificate; the kubelet
# listens on the node's bridge address only.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
podCIDR: ${CIDR}
podLogsDir: ${STATE}/pod-logs
failSwapOn: false
# A shared test machine: never evict, never collect images.
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 40
resolvConf: ""
EOF
}

start_node() {
  local kubeconfig="$1" bin="${CACHE_DIR}/node-${KUBE_VERSION}"
  # For `down`: the kernel settings the kubelet is about to change.
  [[ -f "${STATE}/before.sysctl" ]] || sysctl "${KUBELET_SYSCTLS[@]}" >"${STATE}/before.sysctl"
  KUBELET_HEALTHZ_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  write_configs
  start_process containerd containerd --config "${STATE}/containerd.toml"
  wait_for "containerd's socket" containerd 60 ctr --address "${SOCK}" version
  local tar
  for tar in "${PAUSE_TAR}" "${IMAGE_DIR}"/*.tar; do
    ctr --address "${SOCK}" -n k8s.io images import --snapshotter overlayfs "${tar}" >&2
  done
  start_process kubelet "${bin}/kubelet" --config="${STATE}/kubelet.yaml" \
    --kubeconfig="${kubeconfig}" --root-dir="${STATE}/kubelet" \
    --cert-dir="${STATE}/kubelet/pki" --hostname-override="${NODE_NAME}" \
    --node-ip="${NODE_IP}" --v=1
  local sched_port
  sched_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  start_process kube-scheduler "${bin}/kube-scheduler" --kubeconfig="${kubeconfig}" \
    --authentication-kubeconfig="${kubeconfig}" --authorization-kubeconfig="${kubeconfig}" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port="${sched_port}" --v=1
  local kubectl
  kubectl="$(bash "${ROOT}/scripts/ensure_control_plane.sh")/kubectl"
  wait_for "Node ${NODE_NAME} registered" kubelet 120 \
    "${kubectl}" --kubeconfig="${kubeconfig}" get node "${NODE_NAME}"
  wait_for "Node ${NODE_NAME} Ready" kubelet 180 \
    "${kubectl}" --kubeconfig="${kubeconfig}" wait --for=condition=Ready "node/${NODE_NAME}" \
    --timeout=5s
  # No node-lifecycle controller runs to lift the taint the API server put on the new Node.
  "${kubectl}" --kubeconfig="${kubeconfig}" taint nodes "${NODE_NAME}" \
    node.kubernetes.io/not-ready:NoSchedule- >&2 2>/dev/null || true
  echo "NODE_NAME=${NODE_NAME}"
  echo "NODE_IP=${NODE_IP}"
  echo "CONTAINERD_SOCKET=${SOCK}"
  echo "GO_SINK_IMAGE=${GO_SINK_IMAGE}"
}

# --- down ---

stop_process() {
  local name="$1" pid i
  [[ -f "${STATE}/pids/${name}" ]] || return 0
  pid="$(cat "${STATE}/pids/${name}")"
  if kill -0 "${pid}" 2>/dev/null; then
    kill -TERM "${pid}"
    for i in $(seq 1 60); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.5; done
    kill -0 "${pid}" 2>/dev/null && kill -KILL "${pid}"
  fi
  rm -f "${STATE}/pids/${name}"
}

# Shims whose -address is our socket: containerd started them, they outlive it by design.
shim_pids() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' <"${p}/cmdline" 2>/dev/null | grep -q -- "-address ${SOCK} " && echo "${p#/proc/}"
  done
  return 0
}

remove_cgroups() {
  # The kubelet's pod cgroups (cgroupfs driver): empty once the pods are gone; deepest first.
  local dir
  for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [[ -d "${dir}" ]] || continue
    find "${dir}" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

down() {
  local bin="${CACHE_DIR}/node-${KUBE_VERSION}" problems=()
  [[ -d "${STATE}" ]] || { log "nothing to stop (${STATE} does not exist)"; return 0; }
  stop_process kube-scheduler
  stop_process kubelet
  if running containerd; then
    "${bin}/cri-sweep" "unix://${SOCK}" >&2 || problems+=("cri-sweep failed")
  fi
  stop_process containerd
  local pid
  for pid in $(shim_pids); do kill -KILL "${pid}" 2>/dev/null || true; done
  # Mounts under our folder (container rootfs, emptyDir tmpfs, secrets), deepest first.
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "${STATE}/" | sort -r); do
    umount "${m}" 2>/dev/null || umount -l "${m}" || problems+=("cannot unmount ${m}")
  done
  remove_cgroups
  if [[ -f "${STATE}/bridge.created" ]] || ip link show "${BRIDGE}" >/dev/null 2>&1; then
    ip link del "${BRIDGE}" 2>/dev/null || true
  fi
  if [[ -f "${STATE}/before.sysctl" ]]; then
    sysctl -q -p "${STATE}/before.sysctl" >/dev/null || problems+=("cannot restore kernel settings")
  fi
  # The kubelet's per-container log links (a fixed folder) pointing into our state folder.
  find /var/log/containers -type l -lname "${STATE}/*" -delete 2>/dev/null || true
  rmdir /var/log/containers 2>/dev/null || true
  # Verify: nothing of ours is left.
  ip link show "${BRIDGE}" >/dev/null 2>&1 && problems+=("bridge ${BRIDGE} still exists")
  findmnt -rn -o TARGET | grep -qF "${STATE}/" && problems+=("mounts left under ${STATE}")
  [[ -z "$(shim_pids)" ]] || problems+=("containerd shims still running: $(shim_pids)")
  if [[ -f "${STATE}/before.ip_forward" ]] && \
     [[ "$(sysctl -n net.ipv4.ip_forward)" != "$(cat "${STATE}/before.ip_forward")" ]]; then
    problems+=("net.ipv4.ip_forward changed")
  fi
  if [[ -f "${STATE}/before.iptables" ]] && \
     ! diff -q "${STATE}/before.iptables" <(iptables-save 2>/dev/null | grep -v '^#' \
       | sed 's/\[[0-9]*:[0-9]*\]//') >/dev/null; then
    problems+=("firewall rules changed")
  fi
  if [[ -f "${STATE}/before.netns" ]] && \
     ! diff -q "${STATE}/before.netns" <(ls /var/run/netns 2>/dev/null) >/dev/null; then
    problems+=("network namespaces left: $(ls /var/run/netns 2>/dev/null | tr '\n' ' ')")
  fi
  if [[ -f "${STATE}/before.sysctl" ]] && \
     ! diff -q "${STATE}/before.sysctl" <(sysctl "${KUBELET_SYSCTLS[@]}") >/dev/null; then
    problems+=("kernel settings differ from before")
  fi
  if [[ ${#problems[@]} -gt 0 ]]; then
    log "down left things behind (logs kept in ${STATE}/logs):"
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
  fi
  rm -rf "${STATE}"
  log "down: everything stopped and removed"
}

case "${1:-}" in
  prepare) prepare ;;
  binaries) ensure_node_binaries ;;
  images)
    mkdir -p "${STATE}"
    ensure_packages; ensure_pause_image; ensure_python_base; build_images; build_go_sink
    ;;
  bridge) bridge_up; echo "NODE_NAME=${NODE_NAME}"; echo "NODE_IP=${NODE_IP}" ;;
  up)
    [[ -n "${2:-}" && -f "${2}" ]] || die "usage: $0 up KUBECONFIG (an admin kubeconfig; got '${2:-}')"
    if [[ -f "${STATE}/prepared.env" ]]; then
      # shellcheck disable=SC1091
      source "${STATE}/prepared.env"
    else
      prepare
    fi
    bridge_up
    start_node "$(realpath "$2")"
    ;;
  down) down ;;
  *) die "usage: $0 prepare | binaries | images | bridge | up KUBECONFIG | down (got '${1:-}')" ;;
esac
