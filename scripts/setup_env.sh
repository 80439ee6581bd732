# Sourced by the other scripts: makes .venv (or $VENV) and installs the pinned requirements into it, once, and
# again whenever a requirements file changes; then activates it (trials run `python` from this PATH).
# Usage: source scripts/setup_env.sh [dev]
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
files=("$ROOT/requirements.txt")
[ "${1:-}" = dev ] && files+=("$ROOT/requirements-dev.txt")
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating the virtual environment $VENV"
  "$PYTHON" -m venv "$VENV" || return 1 2>/dev/null || exit 1
fi
stamp_of() { echo "$VENV/.installed-$(cat "$@" | sha1sum | cut -c1-16)"; }
stamp="$(stamp_of "${files[@]}")"
# The test set-up installs everything the main job needs too: after scripts/test.sh, scripts/demo.sh installs nothing.
with_dev="$(stamp_of "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt")"
if [ ! -f "$stamp" ] && [ ! -f "$with_dev" ]; then
  names="$(for f in "${files[@]}"; do basename "$f"; done | paste -sd' ')"
  if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "installing $names into $VENV (torch is already there: only what is missing or changed)"
  else
    echo "installing $names into $VENV (first time: torch with its CUDA libraries, about 5.5 GB, a few minutes)"
  fi
  "$VENV/bin/python" -m pip install --quiet --upgrade pip &&
    "$VENV/bin/python" -m pip install --quiet $(printf -- '-r %s ' "${files[@]}") &&
    touch "$stamp" || { echo "installing the requirements failed" >&2; return 1 2>/dev/null || exit 1; }
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
