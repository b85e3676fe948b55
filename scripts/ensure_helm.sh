#!/usr/bin/env bash
# Print the path of a helm v3 binary, building it from Go modules the first time.
#
# The binary is cached outside the repo, keyed by version, under
# ${UDSINK_CACHE:-~/.cache/udsink}/helm-<version>/helm, so only the first run on a machine pays
# for the build (a few minutes). Go's own module and build caches are used as they are.
# Build output goes to stderr; stdout carries only the path, so callers can do
#   HELM="$(scripts/ensure_helm.sh)"
set -euo pipefail

HELM_VERSION="${UDSINK_HELM_VERSION:-v3.22.0}"
# The Kubernetes minor of the client-go this helm release builds with (v0.37 for v3.22).
# Like helm's own release builds, it becomes the default API version of `helm template` and
# `helm install --dry-run`; left unset, a source build assumes Kubernetes 1.20.
HELM_K8S_MINOR="${UDSINK_HELM_K8S_MINOR:-37}"
CACHE_DIR="${UDSINK_CACHE:-${HOME}/.cache/udsink}"
GOBIN_DIR="${CACHE_DIR}/helm-${HELM_VERSION}"
HELM_BIN="${GOBIN_DIR}/helm"

if [[ -x "${HELM_BIN}" ]]; then
  echo "${HELM_BIN}"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "ensure_helm: 'go' is not on PATH; it is needed to build helm ${HELM_VERSION}" >&2
  exit 1
fi

mkdir -p "${GOBIN_DIR}"
# A lock, so two test sessions starting together do not build into the same folder at once.
exec 9>"${GOBIN_DIR}.lock"
flock 9
if [[ ! -x "${HELM_BIN}" ]]; then
  echo "ensure_helm: building helm ${HELM_VERSION} into ${GOBIN_DIR} (first run only)" >&2
  # Outside any module, so the repo's own go.mod (if any) does not take part.
  ldflags="-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  for pkg in pkg/chartutil pkg/lint/rules; do
    ldflags+=" -X helm.sh/helm/v3/${pkg}.k8sVersionMajor=1"
    ldflags+=" -X helm.sh/helm/v3/${pkg}.k8sVersionMinor=${HELM_K8S_MINOR}"
  done
  (cd "${TMPDIR:-/tmp}" && GOBIN="${GOBIN_DIR}" CGO_ENABLED=0 \
    go install -ldflags "${ldflags}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}") >&2
fi
"${HELM_BIN}" version --short >&2
echo "${HELM_BIN}"
