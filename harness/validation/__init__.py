"""Validation schemes: how a run's images are split for training and validation, what each epoch of a split
writes, and the run's final result. One epoch loop (harness/fit/loop.py) trains whatever a scheme yields.

A scheme has:
    describe()               what params.json records as the run's validation ('validation'); the ensemble's
                             --select compares members only when these agree
    steps                    NNI's intermediate results over the run (K-fold: epochs of every fold)
    splits(done)             the splits to train, continuing after `done` completed steps (a resume)
    writer()                 the hook that writes an epoch's outputs (placed at "writer" in harness/fit/hooks.ORDER)
    discard_unrecorded(done) removes soft CSVs that `done` completed steps do not account for (a kill between a
                             dump and its checkpoint), returning their names
    finish(records, key)     the run's final record (K-fold: after assembling its out-of-fold CSVs)
    partial(records, key)    the final record when training stopped early (a diverged loss)

A new scheme (nested folds, a time split...) is one class here and one entry in SCHEMES."""
from __future__ import annotations

from harness.fit.setup import TrialData
from harness.outputs.run_folder import RunFolder
from harness.params import TrialParams
from harness.validation.holdout import Holdout
from harness.validation.kfold import KFold
from harness.validation.refit import Refit

SCHEMES = {"holdout": Holdout, "kfold": KFold, "refit": Refit}


def scheme_for(params: TrialParams, data: TrialData, run: RunFolder) -> Holdout | KFold | Refit:
    """--refit: every training image, no validation; --folds 1: a holdout split (--val_ratio); K >= 2: K-fold."""
    name = "refit" if params.refit else "kfold" if params.folds > 1 else "holdout"
    return SCHEMES[name](params, data, run)
