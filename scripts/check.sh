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
if [[ $# -gt 0 ]]; then
  echo "== pytest";      exec python -m pytest -ra --durations=25 "$@"
fi
# Every tier. The e2e tier (its own control plane, node and broker, on the node's bridge) runs
# beside the others, its output shown after theirs: both spend most of their time waiting on
# processes they started, and one after the other they took over 20 minutes.
e2e_log="$(mktemp)"
echo "== pytest (the e2e tier in a second process, its output below the others')"
python -m pytest -ra --durations=10 tests/e2e >"${e2e_log}" 2>&1 &
e2e_pid=$!
# SIGINT, not SIGTERM: pytest then tears its fixtures down (the node, the control plane).
trap 'kill -INT "${e2e_pid}" 2>/dev/null; wait "${e2e_pid}" 2>/dev/null; rm -f "${e2e_log}"' EXIT
rc=0
python -m pytest -ra --durations=25 --ignore=tests/e2e || rc=$?
e2e_rc=0
wait "${e2e_pid}" || e2e_rc=$?
echo "== pytest tests/e2e (exit ${e2e_rc})"
cat "${e2e_log}"
(( rc == 0 && e2e_rc == 0 ))
