"""python -m benchmarks.trial_speed MEASURE [MEASURE ...] [flags]: see benchmarks/trial_speed/__init__.py."""
from __future__ import annotations

from benchmarks.runner import DEFAULT_OUT, run_suite
from benchmarks.trial_speed import __doc__ as doc
from benchmarks.trial_speed.measures import MEASURES

if __name__ == "__main__":
    raise SystemExit(run_suite(doc, MEASURES, None, DEFAULT_OUT / "trial_speed.json"))
