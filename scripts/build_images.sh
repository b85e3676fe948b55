#!/usr/bin/env bash
# Build the project's four images from images/*/Dockerfile with whichever builder is present:
# docker (BuildKit), podman or buildah. The tag is the one version of the project (pyproject.toml's
# `version`, which is also the chart's appVersion); the names are the chart's defaults, so a chart
# installed without image values runs exactly these images.
#
#   scripts/build_images.sh                 # all four
#   scripts/build_images.sh runtime         # some of: sdk runtime operator example-sinks
#
# Settings (environment):
#   UDSINK_IMAGE_BUILDER   docker | podman | buildah (default: the first one found, in that order;
#                          docker only when its daemon answers)
#   UDSINK_REGISTRY        registry and owner the names start with (default ghcr.io/udsink); to
#                          push to your own: UDSINK_REGISTRY=registry.example.com/team, then
#                          `docker push` and point the chart at it (docs/install.md)
#   PYTHON_IMAGE           base image for the Dockerfiles' ARG PYTHON_IMAGE (default: theirs)
#   UDSINK_IMAGE_ARCHIVE_DIR  also write each image as a docker-archive tar there (for
#                          `ctr images import`, `kind load image-archive`, `podman load`)
#   UDSINK_BUILD_FLAGS     extra flags for the build command (word-split)
#   UDSINK_BUILDAH_ROOT    buildah/podman only: keep images in this storage root (and a runroot
#                          next to it) instead of the machine's own
#   UDSINK_OCI_RUNTIME     buildah/podman only: the OCI runtime for RUN steps (default: chosen
#                          from the host's cgroup layout, docs/compatibility.md)
# Build output goes to stderr; stdout lists the built references, one a line.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="$(sed -nE 's/^version = "([^"]+)"/\1/p' "${ROOT}/pyproject.toml" | head -n1)"
REGISTRY="${UDSINK_REGISTRY:-ghcr.io/udsink}"

# Dockerfile folder -> repository name (the chart's defaults: image.repository, runtime.image).
declare -A NAMES=(
  [sdk]=udsink-sdk
  [runtime]=udsink
  [operator]=udsink-operator
  [example-sinks]=example-sinks
)

die() { echo "build_images: $*" >&2; exit 1; }

[[ -n "${VERSION}" ]] || die "no version = \"...\" line in ${ROOT}/pyproject.toml"

pick_builder() {
  if [[ -n "${UDSINK_IMAGE_BUILDER:-}" ]]; then
    command -v "${UDSINK_IMAGE_BUILDER}" >/dev/null \
      || die "UDSINK_IMAGE_BUILDER=${UDSINK_IMAGE_BUILDER} is not on PATH"
    echo "${UDSINK_IMAGE_BUILDER}"
    return
  fi
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker; return; fi
  for b in podman buildah; do
    if command -v "$b" >/dev/null; then echo "$b"; return; fi
  done
  die "none of docker (with a running daemon), podman or buildah is available; install one"
}

BUILDER="$(pick_builder)"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(sdk runtime operator example-sinks)
for t in "${targets[@]}"; do
  [[ -n "${NAMES[$t]:-}" ]] || die "unknown image '$t'; accepted: ${!NAMES[*]}"
done

storage=()
if [[ -n "${UDSINK_BUILDAH_ROOT:-}" && "${BUILDER}" != docker ]]; then
  storage=(--root "${UDSINK_BUILDAH_ROOT}/root" --runroot "${UDSINK_BUILDAH_ROOT}/runroot"
           --storage-driver overlay)
fi
# podman and buildah are told which OCI runtime runs the RUN steps: their default depends on
# which of crun/runc the host's packages brought, and crun refuses cgroup v1 hybrid hosts
# (operator/udsink_cli/oci_runtime.py decides; UDSINK_OCI_RUNTIME overrides).
runtime=()
if [[ "${BUILDER}" != docker ]]; then
  chosen="$("${PYTHON:-python3}" "${ROOT}/operator/udsink_cli/oci_runtime.py")" \
    || die "cannot build with ${BUILDER}: see the line above"
  runtime=(--runtime "${chosen}")
  echo "build_images: ${BUILDER} runs build steps with ${chosen}" >&2
fi
build_args=()
[[ -z "${PYTHON_IMAGE:-}" ]] || build_args=(--build-arg "PYTHON_IMAGE=${PYTHON_IMAGE}")
# shellcheck disable=SC2206  # word-splitting is the point of this setting
extra=(${UDSINK_BUILD_FLAGS:-})

for t in "${targets[@]}"; do
  ref="${REGISTRY}/${NAMES[$t]}:${VERSION}"
  echo "build_images: ${BUILDER} building ${ref} from images/${t}/Dockerfile" >&2
  start=$(date +%s)
  case "${BUILDER}" in
    docker)
      DOCKER_BUILDKIT=1 docker build "${build_args[@]}" "${extra[@]}" \
        -f "${ROOT}/images/${t}/Dockerfile" -t "${ref}" "${ROOT}" >&2
      ;;
    podman | buildah)
      # `bud` is buildah's name for `build`; podman accepts `build`.
      verb=build; [[ "${BUILDER}" == buildah ]] && verb=bud
      "${BUILDER}" "${storage[@]}" "${verb}" "${runtime[@]}" "${build_args[@]}" "${extra[@]}" \
        -f "${ROOT}/images/${t}/Dockerfile" -t "${ref}" "${ROOT}" >&2
      ;;
  esac
  echo "build_images: built ${ref} in $(( $(date +%s) - start ))s" >&2
  if [[ -n "${UDSINK_IMAGE_ARCHIVE_DIR:-}" ]]; then
    mkdir -p "${UDSINK_IMAGE_ARCHIVE_DIR}"
    tar="${UDSINK_IMAGE_ARCHIVE_DIR}/${t}.tar"
    rm -f "${tar}"
    case "${BUILDER}" in
      docker) docker save -o "${tar}" "${ref}" ;;
      podman) podman "${storage[@]}" save --format docker-archive -o "${tar}" "${ref}" >&2 ;;
      buildah) buildah "${storage[@]}" push "${ref}" "docker-archive:${tar}:${ref}" >&2 ;;
    esac
  fi
  echo "${ref}"
done
