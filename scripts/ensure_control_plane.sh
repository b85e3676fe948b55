#!/usr/bin/env bash
# Print the folder holding etcd, kube-apiserver, kube-controller-manager and kubectl, building them
# from the pinned Go module in tests/e2e/cluster the first time.
#
# The binaries are cached outside the repo, keyed by the Kubernetes release the module pins, under
# ${UDSINK_CACHE:-~/.cache/udsink}/control-plane-<version>/, with a `.complete` marker written
# last, so an interrupted build is redone rather than half-used. A lock keeps two test sessions
# starting together from building into the same folder at once. Build output goes to stderr;
# stdout carries only the folder, so callers can do  BIN="$(scripts/ensure_control_plane.sh)".
set -euo pipefail

MODULE_DIR="$(cd "$(dirname "$0")/../tests/e2e/cluster" && pwd)"
KUBE_VERSION="$(grep -oE 'k8s\.io/kubernetes v[0-9.]+' "${MODULE_DIR}/go.mod" | head -n1 | cut -d' ' -f2)"
CACHE_DIR="${UDSINK_CACHE:-${HOME}/.cache/udsink}"
OUT_DIR="${CACHE_DIR}/control-plane-${KUBE_VERSION}"
MARKER="${OUT_DIR}/.complete"

if [[ -f "${MARKER}" ]]; then
  echo "${OUT_DIR}"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "ensure_control_plane: 'go' is not on PATH; it is needed to build Kubernetes ${KUBE_VERSION}" >&2
  exit 1
fi

mkdir -p "${CACHE_DIR}"
exec 9>"${OUT_DIR}.lock"
flock 9
if [[ ! -f "${MARKER}" ]]; then
  echo "ensure_control_plane: building Kubernetes ${KUBE_VERSION} control plane into ${OUT_DIR} (first run only)" >&2
  mkdir -p "${OUT_DIR}"
  # The version stamps `helm` and `kubectl version` read.
  # shellcheck source=scripts/kube_ldflags.sh
  source "$(dirname "$0")/kube_ldflags.sh"
  ldflags="$(kube_ldflags "${KUBE_VERSION}")"
  start=$(date +%s)
  # One `go build` for the four mains, so the packages they share compile once (the node's
  # kubelet and scheduler are built by scripts/e2e_node.sh, only when the node is needed).
  # -mod=readonly: go.mod and go.sum are committed; a build never rewrites them.
  (cd "${MODULE_DIR}" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
    go build -trimpath -ldflags "${ldflags}" -o "${OUT_DIR}/" \
    ./cmd/etcd ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kubectl) >&2
  for bin in etcd kube-apiserver kube-controller-manager kubectl; do
    if [[ ! -x "${OUT_DIR}/${bin}" ]]; then
      echo "ensure_control_plane: the build did not produce ${OUT_DIR}/${bin}" >&2
      exit 1
    fi
  done
  echo "ensure_control_plane: built in $(( $(date +%s) - start ))s" >&2
  touch "${MARKER}"
fi
echo "${OUT_DIR}"
