#!/usr/bin/env bash
# Regenerate the single initial migration from the models (allowed until the first release).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f migrations/versions/0001_initial_schema.py
RADSAL_DATABASE_URL="sqlite:///$tmp/gen.sqlite" .venv/bin/alembic revision --autogenerate \
  -m "initial schema" --rev-id 0001 >/dev/null
mv migrations/versions/0001_initial_schema.py migrations/versions/0001_initial_schema.py 2>/dev/null || true
rm -rf "$tmp"
echo "regenerated migrations/versions/0001_initial_schema.py"
