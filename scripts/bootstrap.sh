#!/usr/bin/env bash
# Create or reuse the project's virtual environment.
# The expensive dependency install happens only when pyproject.toml changed (stamp = its hash);
# otherwise we only re-link this checkout (a few seconds), so CI and second runs are fast.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RADSAL_VENV:-.venv}"
PY="${PYTHON:-python3}"
hash=$(sha256sum pyproject.toml | cut -c1-16)
stamp="$VENV/.radsal-deps-$hash"
if [ ! -x "$VENV/bin/python" ]; then
  echo "radsal: creating virtual environment in $VENV"
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$stamp" ]; then
  echo "radsal: installing dependencies into $VENV (first run: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  rm -f "$VENV"/.radsal-deps-*
  touch "$stamp"
else
  # Same dependencies: only point the editable install at this checkout.
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
fi
