#!/usr/bin/env bash
# Print the path of a checking tool the test suite runs (actionlint for the GitHub workflows,
# promtool for the Prometheus rules), building it from the Go module proxy the first time.
#
#   scripts/ensure_go_tool.sh actionlint
#   scripts/ensure_go_tool.sh promtool
#
# Each binary is cached outside the repo, keyed by tool and version, under
# ${UDSINK_CACHE:-~/.cache/udsink}/go-tool-<tool>-<version>[-<build tags>]/, with a `.complete` marker written
# last (an interrupted build is redone, never half-used) and a lock (two test sessions starting
# together build once). Build output goes to stderr; stdout carries only the path.
set -euo pipefail

TOOL="${1:-}"
case "${TOOL}" in
  actionlint)
    VERSION="${UDSINK_ACTIONLINT_VERSION:-v1.7.12}"
    PACKAGE="github.com/rhysd/actionlint/cmd/actionlint"
    TAGS=""
    ;;
  promtool)
    # Prometheus tags v3.X.Y as Go module versions v0.3XX.Y (v0.316.0 is Prometheus 3.16.0).
    VERSION="${UDSINK_PROMTOOL_VERSION:-v0.316.0}"
    PACKAGE="github.com/prometheus/prometheus/cmd/promtool"
    # Without the service-discovery providers (Prometheus' own build tag since 3.10): the
    # tests run `check rules` and `test rules` only, and the cloud SDKs those providers pull in
    # were most of a cold build (903 s on a fresh 2-core machine).
    TAGS="remove_all_sd"
    ;;
  *)
    echo "ensure_go_tool: unknown tool '${TOOL}'; accepted: actionlint, promtool" >&2
    exit 2
    ;;
esac

CACHE_DIR="${UDSINK_CACHE:-${HOME}/.cache/udsink}"
OUT_DIR="${CACHE_DIR}/go-tool-${TOOL}-${VERSION}${TAGS:+-${TAGS//,/-}}"
MARKER="${OUT_DIR}/.complete"

if [[ -f "${MARKER}" ]]; then
  echo "${OUT_DIR}/${TOOL}"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "ensure_go_tool: 'go' is not on PATH; it is needed to build ${TOOL} ${VERSION}" >&2
  exit 1
fi

mkdir -p "${CACHE_DIR}"
exec 9>"${OUT_DIR}.lock"
flock 9
if [[ ! -f "${MARKER}" ]]; then
  echo "ensure_go_tool: building ${PACKAGE}@${VERSION} into ${OUT_DIR} (first run only)" >&2
  mkdir -p "${OUT_DIR}"
  start=$(date +%s)
  # Outside any module, so no go.mod of the repo takes part.
  (cd "${TMPDIR:-/tmp}" && GOBIN="${OUT_DIR}" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install -trimpath -tags "${TAGS}" -ldflags "-s -w" "${PACKAGE}@${VERSION}") >&2
  if [[ ! -x "${OUT_DIR}/${TOOL}" ]]; then
    echo "ensure_go_tool: the build did not produce ${OUT_DIR}/${TOOL}" >&2
    exit 1
  fi
  echo "ensure_go_tool: built ${TOOL} ${VERSION} in $(( $(date +%s) - start ))s" >&2
  touch "${MARKER}"
fi
echo "${OUT_DIR}/${TOOL}"
