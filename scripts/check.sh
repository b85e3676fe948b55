#!/usr/bin/env bash
# The project's checks, in the order a failure is cheapest to read: format and lint, types,
# import layers, generated files, then the test tiers. Run from an environment with
# `pip install -e '.[dev]'` done. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff";          ruff check . && ruff format --check .
echo "== mypy";          mypy
echo "== import-linter"; lint-imports
# Installs podman, buildah and runc where missing (root) and proves they run a container here.
echo "== containers";    bash scripts/ensure_containers.sh
echo "== pytest";        python -m pytest -ra --durations=25 "$@"
