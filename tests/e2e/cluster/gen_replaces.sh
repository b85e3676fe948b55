#!/usr/bin/env bash
# Regenerate go.mod's replace block: k8s.io/kubernetes points its staging modules at
# ./staging/src/..., which only exists inside its own repository. Outside it, each staging
# module k8s.io/<m> is published as k8s.io/<m> v0.<minor>.<patch>, so we pin every one of
# them to the release matching KUBE_VERSION. Run from this folder after changing KUBE_VERSION,
# then `go mod tidy`.
set -euo pipefail
cd "$(dirname "$0")"
KUBE_VERSION="${1:-$(grep -oE 'k8s\.io/kubernetes v[0-9.]+' go.mod | head -n1 | cut -d' ' -f2)}"
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
# The go.mod of the release is all we need here (the proxy serves it on its own).
download="$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" || true)"
kube_mod="$(echo "${download}" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
if [[ -z "${kube_mod}" || ! -f "${kube_mod}" ]]; then
  echo "gen_replaces: cannot fetch the go.mod of k8s.io/kubernetes@${KUBE_VERSION}:" >&2
  echo "${download}" >&2
  exit 1
fi
staging="$(sed -n 's/^\t\(k8s.io\/[a-z0-9-]*\) => \.\/staging\/.*/\1/p' "${kube_mod}")"
go mod edit -require="k8s.io/kubernetes@${KUBE_VERSION}"
for m in ${staging}; do
  go mod edit -replace="${m}=${m}@${STAGING_VERSION}"
done
echo "gen_replaces: pinned $(echo "${staging}" | wc -w) staging modules to ${STAGING_VERSION}" >&2
