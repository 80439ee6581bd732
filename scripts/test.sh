#!/usr/bin/env bash
# Installs what the tests need (into .venv) and runs them. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh dev
exec python -m pytest -q "$@"
