#!/usr/bin/env bash
# Installs what the tests need (into .venv), lints with ruff, and runs the tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh dev
python -m ruff check .
exec python -m pytest -q "$@"
