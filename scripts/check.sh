#!/usr/bin/env bash
# The project's checks, in the order a failure is cheapest to read: format and lint, types,
# import layers, generated files, then the test tiers. Run from an environment with
# `pip install -e '.[dev]'` done. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# One command per line: under `set -e` a failure on the left of `&&` does not stop the script.
echo "== ruff";          ruff check .
echo "== ruff format";   ruff format --check .
echo "== mypy";          mypy
echo "== import-linter"; lint-imports
# Installs podman, buildah and runc where missing (root) and proves they run a container here.
echo "== containers";    bash scripts/ensure_containers.sh
if [[ $# -gt 0 ]]; then
  echo "== pytest";      python -m pytest -ra --durations=25 "$@"
  exit
fi
# Without arguments, the e2e tier (mostly waiting on its node and pods) and then the fault tier
# run in a second pytest process beside the other tiers, each process with its own brokers, so
# the two take about as long; its output follows theirs. The second process never outlives
# this script.
e2e_log=$(mktemp)
python -m pytest -ra --durations=25 -m "e2e or faults" -p no:cacheprovider >"$e2e_log" 2>&1 &
e2e_pid=$!
stop_e2e() {
  if kill -0 "$e2e_pid" 2>/dev/null; then kill "$e2e_pid" 2>/dev/null || true; fi
  wait "$e2e_pid" 2>/dev/null || true
  rm -f "$e2e_log"
}
trap stop_e2e EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "== pytest (every tier but e2e and faults; those two run beside it)"
rc=0
python -m pytest -ra --durations=25 -m "not e2e and not faults" || rc=$?
e2e_rc=0
wait "$e2e_pid" || e2e_rc=$?
echo "== pytest, the e2e and fault tiers (exit ${e2e_rc})"
cat "$e2e_log"
if [[ $rc -ne 0 ]]; then exit "$rc"; fi
exit "$e2e_rc"
