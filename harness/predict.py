"""`python -m harness.predict RUN_DIR [--data_dir DIR] [--tta ...]`: predict again from a run folder's checkpoint.

The wiring lives in the top-level predict.py, beside trial.py: it builds the run's model from models/, which
nothing in harness/ imports (tests/test_layout.py). This module is the name users type; it runs that script."""
from __future__ import annotations

import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "predict.py"

if __name__ == "__main__":
    runpy.run_path(str(SCRIPT), run_name="__main__")
