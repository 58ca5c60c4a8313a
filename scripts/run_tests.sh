#!/usr/bin/env bash
# The whole suite: pytest on SQLite, or PostgreSQL when RADSAL_TEST_DATABASE_URL is set.
# pytest's exit code 5 ("no tests collected") is a failure here: a suite that ran nothing passed nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV="${RADSAL_VENV:-.venv}"
"$VENV/bin/python" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "radsal: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
