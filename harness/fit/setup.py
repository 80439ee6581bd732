"""The one fit setup: what a run trains with, built from the parameters in one place. trial.py builds each split's
Fit with it; predict.py and the benchmarks use its loaders and predictor.

models/ is not imported here (harness/ never imports it): the caller passes the function that builds a fresh
model, `new_model()`."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from harness.data.labels import OLD_AGE, csv_task
from harness.data.layouts import EvalSet, TrainSet, data_fingerprint, load_eval, load_train
from harness.data.loaders import Loaders, LoaderSettings, TrainingDraw, build_loaders, eval_batch_size
from harness.data.transforms import Normalizer
from harness.outputs.progress import EpochProgress
from harness.params import TrialParams
from harness.train.allocator import keep_freed_memory
from harness.train.averaging import WeightAverage, ema_enabled
from harness.train.checkpoint import restore_rng_states, rng_states
from harness.train.class_balance import class_weights, sample_weights
from harness.train.compiled import compile_model, wants_compile
from harness.train.losses import create_loss
from harness.train.mixing import BatchMixer, mixing_enabled
from harness.train.optim import create_optimizer, create_scheduler
from harness.train.passes import Prediction, TrainResult, TrainStep, train_one_epoch
from harness.train.precision import Precision, resolve_device, resolve_precision, seed_everything, set_cpu_threads
from harness.train.predictor import Predictor
from harness.train.targets import SoftTargets, TrainingTargets, training_targets

log = logging.getLogger("trial")


@dataclass
class TrialData:
    """The data set as a run reads it: its images, the labels of the task's heads, and the eval set."""
    task: str                # the search-space 'classification'
    train_set: TrainSet
    eval_set: EvalSet | None
    heads: dict[str, int]    # task -> classes, in the model's order
    labels: np.ndarray       # [N, heads]: validation labels (the contest's rules)
    train_labels: np.ndarray  # [N, heads]: training labels (--old_age moves the 60+ class's first age)
    targets: TrainingTargets | None = None  # soft targets and pseudo-labelled eval images
    ignored: dict[str, str] = field(default_factory=dict)  # parameters this data set cannot use, and why

    def drawn_labels(self, train_idx: np.ndarray) -> np.ndarray:
        """[drawn images, heads]: the training labels of a split's draw, pseudo-labelled eval images included."""
        own = self.train_labels[train_idx]
        return own if self.targets is None else np.concatenate([own, self.targets.added_labels])

    @property
    def num_classes(self) -> int:
        """Columns of the run's soft CSVs."""
        return self.train_set.num_classes(csv_task(self.task))

    def describe(self) -> dict[str, Any]:
        """params.json's keys about the data: its classes, heads, layout and fingerprint, the training targets
        beyond the labels, and the parameters it could not use."""
        return {"num_classes": self.num_classes, "class_names": self.train_set.class_names[csv_task(self.task)],
                "heads": self.heads, "data_layout": self.train_set.layout, "data_fingerprint": self.fingerprint,
                **({"training_targets": self.targets.summary} if self.targets else {}),
                **({"ignored": self.ignored} if self.ignored else {})}

    @functools.cached_property
    def fingerprint(self) -> str:
        """What the split and the soft CSVs' rows depend on (params.json's data_fingerprint)."""
        return data_fingerprint(self.train_set, self.eval_set)


def usable(params: TrialParams, train_set: TrainSet) -> tuple[TrialParams, dict[str, str]]:
    """The parameters with those this data set cannot use put back to their neutral value, and why (params.json's
    'ignored'): a search space copied from the mask contest's still runs on a single-label set."""
    if params.old_age != OLD_AGE and train_set.ages is None:
        why = f"old_age {params.old_age} needs ages, and this {train_set.layout} data set has none: trained with 60"
        log.warning("%s", why)
        return replace(params, old_age=OLD_AGE), {"old_age": why}
    return params, {}


def load_data(params: TrialParams) -> tuple[TrialParams, TrialData]:
    """Everything that can fail on the user's data fails here, before anything is written or decoded. Returns the
    parameters the run really trains with (see `usable`) and the data."""
    task = params.classification  # the search-space key 'classification' names the task
    train_set = load_train(params.data_dir, params.allow_outside_links)
    eval_set = load_eval(params.data_dir, params.allow_outside_links)
    params, ignored = usable(params, train_set)
    heads = train_set.heads(task)
    # --old_age moves the 60+ class's first age in the training labels only: validation keeps the contest's rule,
    # so validation scores (and the validation CSVs' labels) stay comparable across trials.
    train_labels = train_set.head_labels(task, params.old_age)
    return params, TrialData(task, train_set, eval_set, heads, train_set.head_labels(task), train_labels,
                             training_targets(params, train_set, eval_set, heads, train_labels), ignored)


@dataclass(frozen=True)
class Machine:
    device: torch.device
    precision: Precision
    threads: int


def prepare_machine(params: TrialParams) -> Machine:
    """The device, the precision and the CPU threads; set before any loader worker forks."""
    if params.keep_freed_memory:
        keep_freed_memory()  # before the workers fork and the first batch: CPU steps reuse warm pages
    threads = set_cpu_threads(params.cpu_threads)
    device = resolve_device(params.device)
    torch.backends.cudnn.benchmark = params.cudnn_benchmark
    return Machine(device, resolve_precision(device, params.amp, params.channels_last), threads)


def loader_settings(params: TrialParams, device: torch.device, **changes: Any) -> LoaderSettings:
    """The loaders' settings from the parameters (`changes` over them: predict.py's --num_workers)."""
    values = dict(batch_size=params.batch_size, num_workers=params.num_workers, seed=params.seed,
                  img_size=params.img_size, crop=params.crop, cache=params.cache, cache_dir=params.cache_dir,
                  pin_memory=params.pin_memory and device.type == "cuda", worker_nice=params.loader_nice,
                  eval_batch_size=eval_batch_size(params.batch_size, device.type))
    return LoaderSettings(**{**values, **changes})


@dataclass(frozen=True)
class Split:
    """One training split of a validation scheme: which images train and which are held out."""
    number: int              # from 1 (K-fold: the fold)
    train_idx: np.ndarray
    val_idx: np.ndarray
    offset: int = 0          # steps before its epoch 1 (K-fold: the earlier folds' epochs)
    first_epoch: int = 1     # above 1 when a resumed run continues this split


@dataclass
class Fit:
    """One split's training: everything the epoch loop and the hooks act on."""
    split: Split
    heads: dict[str, int]
    model: nn.Module
    criteria: dict[str, nn.Module]
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    scaler: torch.amp.GradScaler | None
    loaders: Loaders
    predictor: Predictor
    mix: BatchMixer | SoftTargets | None

    @property
    def average(self) -> WeightAverage | None:
        return self.predictor.average

    def train_step(self, after_step: Callable[[nn.Module], None] | None = None) -> TrainStep:
        return TrainStep(self.heads, self.criteria, self.optimizer, self.predictor.normalize,
                         self.predictor.precision, self.scaler, self.mix, after_step)

    def train_epoch(self, number: int, epochs: int, after_step: Callable[[nn.Module], None] | None) -> TrainResult:
        return train_one_epoch(self.model, self.loaders.train, self.train_step(after_step),
                               EpochProgress(number, epochs, len(self.loaders.train)))

    def validate(self) -> Prediction | None:
        return self.predictor(self.loaders.val, self.criteria) if self.loaders.val else None

    def start_from(self, weights: dict[str, Any], optimizer_state: dict[str, Any]) -> None:
        """Other weights to train from (a PBT parent's); the average, if any, starts again at them."""
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(optimizer_state)
        if self.average is not None:
            self.average.restart_from(self.model)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "average": self.average.state_dict() if self.average is not None else None,
                "rng": rng_states(self.loaders.train)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.average is not None:
            self.average.load_state_dict(state["average"]) if state["average"] else self.average.restart_from(
                self.model)
        restore_rng_states(self.loaders.train, state["rng"])


class FitSetup:
    def __init__(self, params: TrialParams, data: TrialData, machine: Machine,
                 new_model: Callable[[], nn.Module] | None = None) -> None:
        self.params, self.data, self.machine, self.new_model = params, data, machine, new_model
        self.normalize = Normalizer(*data.train_set.mean_std, device=machine.device,
                                    channels_last=machine.precision.channels_last)

    def loaders(self, train_idx: np.ndarray, val_idx: np.ndarray, **changes: Any) -> Loaders:
        """The loaders of one split; --sampler weighted draws by its training labels."""
        data, targets = self.data, self.data.targets
        weights = sample_weights(data.drawn_labels(train_idx)) if self.params.sampler == "weighted" else None
        draw = TrainingDraw(labels=data.train_labels, weights=weights)
        if targets is not None:
            draw = replace(draw, added=targets.added, added_labels=targets.added_labels,
                           with_index=targets.soft is not None)
        return build_loaders(data.train_set, data.eval_set, data.labels, train_idx, val_idx,
                             loader_settings(self.params, self.machine.device, **changes), draw)

    def on_device(self, model: nn.Module) -> nn.Module:
        return model.to(self.machine.device, memory_format=self.machine.precision.memory_format)

    def predictor(self, model: nn.Module, tta: str | None = None, average: WeightAverage | None = None) -> Predictor:
        return Predictor(model, self.data.heads, self.normalize, self.machine.precision,
                         self.params.tta if tta is None else tta, average, self.params.tta_merge)

    def criteria(self, train_idx: np.ndarray) -> dict[str, nn.Module]:
        """One loss per head; --class_weights from the split's training labels (after --old_age)."""
        labels, params = self.data.drawn_labels(train_idx), self.params
        return {name: create_loss(params.criterion, classes, class_weights(
            labels[:, h], classes, params.class_weights), params.loss_weights).to(self.machine.device)
            for h, (name, classes) in enumerate(self.data.heads.items())}

    def mix(self) -> BatchMixer | SoftTargets | None:
        """What a training step does to a batch's targets: soft targets (then mixed), or MixUp/CutMix alone."""
        params, targets = self.params, self.data.targets
        mixer = BatchMixer(self.data.heads, params.mixup, params.cutmix, params.mix_prob) \
            if mixing_enabled(params.mixup, params.cutmix, params.mix_prob) else None
        soft = targets.batch_targets(self.machine.device) if targets is not None else None
        if soft is not None:
            soft.mixer = mixer
        return soft or mixer

    def fit(self, split: Split) -> Fit:
        """A split's fit: its loaders, and for a split that starts afresh its training workers, so that they prepare
        the first batches while the model is built (a resumed split's loader generator is restored first, by the
        Checkpoint hook); then its model from the seed (every split starts from the same initial weights), its
        criteria, optimiser, scheduler and predictor."""
        params = self.params
        loaders = self.loaders(split.train_idx, split.val_idx)
        if split.first_epoch == 1:
            loaders.train.start()
        seed_everything(params.seed)  # after the loaders: building the image cache draws from torch's generator
        model = self.on_device(self.new_model())
        optimizer = create_optimizer(params.optimizer, model.parameters(), params.lr, params.weight_decay,
                                     params.momentum, params.fused_optimizer, params.sam_base, params.sam_rho)
        average = WeightAverage(model, params.ema_decay) if ema_enabled(params.ema_decay) else None
        # After the average's copy: it stays a plain module.
        if wants_compile(params.compile, params.epochs, self.machine.device.type):
            log.info("torch.compile (--compile %s, %d epochs): the model compiles at its first step and its first "
                     "validation", params.compile, params.epochs)
            compile_model(model)
        return Fit(split, self.data.heads, model, self.criteria(split.train_idx), optimizer,
                   create_scheduler(params.scheduler, optimizer, params.epochs),
                   self.machine.precision.grad_scaler(), loaders, self.predictor(model, average=average), self.mix())
