#!/usr/bin/env bash
# The test command: set-up (idempotent) and the whole test suite.
#   bash scripts/test.sh [pytest args...]
# Tests needing TensorRT or a GPU are marked and skip with the missing piece named.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
set +e
"$root/.venv/bin/python" -m pytest -ra "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
