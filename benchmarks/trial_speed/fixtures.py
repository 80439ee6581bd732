"""What the trial_speed measures train on: generated photos, a trial's parameters, and its fit setup, built through
the same seams as trial.py (harness/fit/setup.py), so a measure times what a trial runs."""
from __future__ import annotations

import copy
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchmarks.runner import Bench
from harness.data.demo import generate
from harness.fit.setup import Fit, FitSetup, Split, load_data, prepare_machine
from harness.params import TrialParams
from harness.validation.holdout import holdout_split
from models import create_model


def photos(bench: Bench, people: int, eval_images: int = 0) -> Path:
    """Photo-sized (384x512) JPEGs in the mask contest's layout, generated once per run of the suite."""
    folder = bench.scratch / f"photos-{people}-{eval_images}"
    if not folder.exists():
        generate(folder, people=people, eval_images=eval_images, seed=0, jpeg_only=True)
    return folder


def trial_params(bench: Bench, data_dir: Path, **values: Any) -> TrialParams:
    """A standalone trial's parameters on `data_dir`, untrained weights, the suite's device and image cache."""
    return TrialParams(**{"data_dir": str(data_dir), "cache_dir": str(bench.scratch / "cache"), "pretrained": False,
                          "device": bench.device.type, **values})


def fit_setup(params: TrialParams) -> tuple[FitSetup, Split]:
    """The trial's fit setup and its holdout split."""
    params, data = load_data(params)
    setup = FitSetup(params, data, prepare_machine(params),
                     partial(create_model, params.model, data.heads, False, "", params.fast_swish))
    train_idx, val_idx = holdout_split(params, data)
    return setup, Split(1, train_idx, val_idx)


def fits(params: TrialParams, **variants: dict[str, Any]) -> dict[str, Fit]:
    """One fit per variant of the parameters (name -> changed values), each from the same seed, hence the same
    initial weights."""
    found = {}
    for name, changes in variants.items():
        setup, split = fit_setup(replace(params, **changes))
        found[name] = setup.fit(split)
    return found


def snapshot(fit: Fit) -> dict[str, Any]:
    """A copy of the fit's weights and optimiser state (a state_dict's tensors are the live ones)."""
    return copy.deepcopy({"model": fit.model.state_dict(), "optimizer": fit.optimizer.state_dict()})


def restart(fit: Fit, state: dict[str, Any]) -> None:
    """The fit's model and optimiser back to a snapshot: a timed pass starts from the same weights every round, with
    the loaders (and their started workers) kept."""
    fit.start_from(copy.deepcopy(state["model"]), copy.deepcopy(state["optimizer"]))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
