"""One place for a trial's defaults: the argparse flags, NNI's parameters merged over them, and their checks.

Search-space keys are trial.py flags of the same name, so a search space can tune anything a user can type, and a
trial runs standalone with the same flags."""
from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

from harness.data.labels import CLASSIFICATIONS
from harness.errors import UserError
from harness.fit.dump_rule import DUMP_RULES
from harness.train.checkpoint import CHECKPOINT_MODES
from harness.train.class_balance import CLASS_WEIGHTS, SAMPLERS
from harness.train.compiled import COMPILE_MODES
from harness.train.losses import LOSSES, loss_mix
from harness.train.optim import BASE_OPTIMIZERS, OPTIMIZERS, SCHEDULERS
from harness.train.tta import MERGES, TTA

TRUE_WORDS = {"true", "1", "yes", "on"}
# Upper bounds of the values that could exhaust the machine (memory, processes, threads, time) or break a library.
MAX_BATCH_SIZE = 4096
MAX_IMG_SIZE = 2048       # pixels a side: a 16-image batch of 2048 px is 0.8 GB of float input already
MAX_EPOCHS = 10_000
MAX_WORKERS = 64          # DataLoader processes
MAX_CPU_THREADS = 1024
MAX_FOLDS = 100
MAX_BUDGET_UNIT = 1000.0  # epochs per unit of TRIAL_BUDGET
SEED_LIMIT = 2**32        # numpy's seeds are 32-bit
FALSE_WORDS = {"false", "0", "no", "off"}


def _flag(default: Any, help: str, choices: Sequence[str] | None = None, tunable: bool = True) -> Any:
    """tunable=False: a flag only the config's trialCommand (or a user's command line) may set, never NNI."""
    return field(default=default, metadata={"help": help, "choices": choices, "tunable": tunable})


@dataclass
class TrialParams:
    # The original contest code's four search-space keys.
    batch_size: int = _flag(16, "images per training batch")
    model: str = _flag("ecaresnet50t", "a name of models/ (the search space's models) or any timm model name")
    criterion: str = _flag("cross_entropy", f"loss: {', '.join(LOSSES)}, or several joined by '+' (focal+f1), "
                                            "weighed by --loss_weights")
    classification: str = _flag(
        "multi", "task: mask, gender, age, or multi (all 18 classes; the only task of a single-label data set); "
                 "multihead: one backbone with mask, gender and age heads, 18-class soft CSVs", tuple(CLASSIFICATIONS))
    loss_weights: str = _flag("", "weights of a mixed --criterion's parts, comma-separated (0.6,0.4), scaled to sum "
                                  "to 1; empty: equal")
    # What users tune next.
    lr: float = _flag(1e-4, "initial learning rate")
    optimizer: str = _flag("adam", "optimizer (sgd with momentum); sam, asam: sharpness-aware minimisation around "
                                   "--sam_base, two forward-backward passes per step", tuple(OPTIMIZERS))
    sam_base: str = _flag("adam", "sam and asam: the base optimiser that takes the step", tuple(BASE_OPTIMIZERS))
    sam_rho: float = _flag(0.0, "sam and asam: radius of the ascent; 0: the variant's default (sam 0.05, asam 2.0)")
    scheduler: str = _flag("step", "step: lr/10 every 10 epochs (the original contest code's); cosine: cosine decay "
                                     "to 0",
                           tuple(SCHEDULERS))
    weight_decay: float = _flag(0.0, "weight decay (decoupled for adamw)")
    momentum: float = _flag(0.9, "momentum for sgd")
    epochs: int = _flag(20, "training epochs")
    # Data.
    data_dir: str = _flag("data/mask", "data set root holding train/ (and eval/ for predictions)", tunable=False)
    allow_outside_links: bool = _flag(False, "read images that symbolic links in the data set lead to outside "
                                             "--data_dir (paths that climb out with '..' are always refused)",
                                      tunable=False)
    output_dir: str = _flag("nni_experiments", "root of the run folders: <output_dir>/<experiment>/<run>/",
                            tunable=False)
    img_size: int = _flag(224, "square side the images are resized to")
    crop: float = _flag(0.8, "central fraction of each side kept before resizing (1 keeps the whole image)")
    val_ratio: float = _flag(0.2, "share of people (or images, for single-label data) held out; 0: no validation")
    seed: int = _flag(42, "seed of the split, the initial weights and the augmentations")
    num_workers: int = _flag(2, "DataLoader worker processes")
    loader_nice: int = _flag(0, "niceness of the loader workers (0-19), so that they give the cores to the training "
                                "threads; measured 0.92x the images/s at 10 on a 2-core CPU (docs/speed.md)")
    cpu_threads: int = _flag(0, "threads of torch's CPU arithmetic; 0: torch's default (one per core). Trials that "
                                "share a CPU side by side each take cores / trialConcurrency")
    # Model.
    pretrained: bool = _flag(True, "start from ImageNet weights")
    weights: str = _flag("", "local weights file for --pretrained true, for machines that cannot download",
                         tunable=False)
    # Outputs.
    dump_threshold: float = _flag(0.9, "dump soft CSVs only at epochs whose train accuracy reaches this")
    dump_rule: str = _flag("either", "which epochs above --dump_threshold are dumped: contest (train loss below the "
                                     "last dump's), improved (the best validation score so far), either",
                           tuple(DUMP_RULES))
    # Checkpoints and resume (README: "Checkpoints, resume and budget-aware tuners").
    checkpoint: str = _flag("last", "last: resumable state after every epoch (last.pt); best: the best epoch's "
                                    "weights (best.pt); none", CHECKPOINT_MODES)
    resume: str = _flag("", "a run folder to continue after its last completed epoch, with its params.json's "
                            "values (other flags are ignored)", tunable=False)
    budget_unit: float = _flag(1.0, "epochs per unit of Hyperband's and BOHB's TRIAL_BUDGET: the trial trains "
                                    "max(1, round(TRIAL_BUDGET * budget_unit)) epochs instead of --epochs")
    # Population Based Training (config.pbt.yml): NNI's PBT tuner sends both with every trial; each must lie under
    # the experiment's folder (harness/train/population.py says why and checks it).
    load_checkpoint_dir: str = _flag("", "PBT: a folder whose checkpoint the trial starts from (if it holds one)")
    save_checkpoint_dir: str = _flag("", "PBT: a folder the trial saves its final weights to, for the next step")
    tta: str = _flag("none", "test-time augmentation of every dumped CSV and validation score: hflip merges the "
                             "predictions of the image and its mirror; vflip, flips (both and their product), d4 (the "
                             "8 rotations and mirrors of the square), five_crop (corners and centre at 0.875, resized "
                             "back), scales (0.875x, 1x, 1.125x)", tuple(TTA))
    tta_merge: str = _flag("mean", "how --tta merges its views: mean of the probabilities, or gmean (their geometric "
                                   "mean, renormalised)", tuple(MERGES))
    # Mixing, class imbalance, weight averaging (README: "Contest techniques"; harness/train/mixing.py,
    # class_balance.py, averaging.py).
    mixup: float = _flag(0.0, "MixUp's beta alpha (timm's Mixup); 0: off")
    cutmix: float = _flag(0.0, "CutMix's beta alpha; 0: off (both above 0: each batch takes one or the other)")
    mix_prob: float = _flag(1.0, "chance that a training batch is mixed when --mixup or --cutmix is above 0")
    class_weights: str = _flag("none", "per-class loss weights from the training split's counts: inverse "
                                       "(N / (C n_k)), sqrt_inverse, none", CLASS_WEIGHTS)
    sampler: str = _flag("none", "weighted: draw training images with chance 1 / (their class's count), "
                                 "len(train) per epoch, with replacement", SAMPLERS)
    old_age: int = _flag(60, "training labels' first age of the 60+ class (mask contest, age and multi tasks); "
                             "validation keeps the contest's 60")
    ema_decay: float = _flag(0.0, "exponential moving average of the weights, what validation, dumps and "
                                  "harness.predict use; 0: off")
    # Training targets beyond the true labels (docs/techniques.md; harness/train/targets.py).
    soft_targets: str = _flag("", "a validation soft CSV covering every training image (a K-fold run's out-of-fold "
                                  "CSV, or distill.py's blend): self-distillation", tunable=False)
    soft_weight: float = _flag(0.3, "with --soft_targets: each target is (1 - W) x the label + W x the soft CSV's row")
    pseudo_labels: str = _flag("", "an eval soft CSV (python -m ensemble writes <output>_<task>_soft.csv): its "
                                   "confident eval images join training", tunable=False)
    pseudo_threshold: float = _flag(0.9, "with --pseudo_labels: an eval image joins when its most probable class "
                                         "reaches this in every head")
    pseudo_soft: bool = _flag(False, "with --pseudo_labels: train on their probabilities, not their top class")
    refit: str = _flag("", "a finished run folder to train again on every training image for the epochs its "
                           "validation chose (docs/techniques.md: Refit)", tunable=False)
    # K-fold (README: "K-fold and multi-head models"). Not in search_space.json: it multiplies a trial's cost by K.
    folds: int = _flag(1, "1: one holdout split (--val_ratio); K >= 2: train the K person-grouped, stratified folds "
                          "(fixed fold seed) one after another in this trial; its soft CSVs hold out-of-fold "
                          "predictions of every training image and the folds' average on the eval set")
    metric: str = _flag("val_acc", "what NNI's tuner maximises ('default'); train_acc when there is no validation",
                        ("val_acc", "val_f1"))
    tensorboard: bool = _flag(True, "per-epoch scalars for TensorBoard: $NNI_OUTPUT_DIR/tensorboard under NNI (its "
                                    "web UI's TensorBoard button), <run folder>/tensorboard standalone")
    mlflow_uri: str = _flag("", "an MLflow tracking URI (file:///path for a local store, needs `pip install "
                                "mlflow-skinny`): one MLflow run per trial, each epoch's record as metrics, "
                                "params.json as params; empty: off", tunable=False)
    # Speed.
    cache: bool = _flag(True, "decode every image once into a shared memory-mapped cache")
    cache_dir: str = _flag("", "where the decoded-image cache lives; empty: $XDG_CACHE_HOME/nni-harness or "
                               "~/.cache/nni-harness (shared storage for trials on several machines)", tunable=False)
    device: str = _flag("auto", "auto uses cuda when present", ("auto", "cuda", "cpu"), tunable=False)
    amp: str = _flag("auto", "mixed precision: auto picks bf16 on a GPU that has it (else fp16 with a grad "
                     "scaler), and on a CPU with native bf16 units (else fp32: emulated bf16 is slower); off: fp32",
                     ("auto", "bf16", "fp16", "off"))
    channels_last: str = _flag("auto", "channels_last memory format: auto turns it on with mixed precision",
                               ("auto", "true", "false"))
    keep_freed_memory: bool = _flag(True, "glibc keeps freed memory in the process (harness/train/allocator.py): "
                                          "faster CPU steps for a resident size that stays at its peak")
    pin_memory: bool = _flag(True, "page-locked batches on cuda, so host-to-GPU copies overlap with compute")
    cudnn_benchmark: bool = _flag(True, "let cuDNN pick the fastest kernels for the fixed input size")
    fast_swish: bool = _flag(True, "efficientnet-pytorch models train with the plain (faster, not memory-efficient) "
                                   "swish")
    compile: str = _flag("off", "torch.compile the model (harness/train/compiled.py): on, off, or auto (on for GPU "
                                "trials of at least 10 epochs; never on a CPU, where it was measured to gain nothing)",
                         COMPILE_MODES)
    fused_optimizer: bool = _flag(True, "torch's fused optimiser kernels (one pass over each parameter per step; "
                                        "harness/train/optim.py has the figures)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FLAG_TYPES: dict[str, type] = get_type_hints(TrialParams)
# Paths and the device come from the config's trialCommand only. NNI's REST API has no authentication: anyone who
# reaches its port can add a trial with any parameters, so a tuner-supplied path could make a trial read or write
# any folder the user can.
UNTUNABLE: frozenset[str] = frozenset(f.name for f in fields(TrialParams) if not f.metadata["tunable"])


def parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in TRUE_WORDS | FALSE_WORDS:
        return value.lower() in TRUE_WORDS
    raise UserError(f"{name} must be true or false, got {value!r}")


def coerce(name: str, value: Any) -> Any:
    """Check one value against its flag's type; NNI's numbers may arrive as 16.0 for an int (quniform)."""
    kind = FLAG_TYPES[name]
    if kind is bool:
        return parse_bool(value, name)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            raise UserError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"{name} must be a finite number, got {value!r} ({type(value).__name__})")
        return float(value)
    if not isinstance(value, str):
        raise UserError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trial.py",
        description="Train one image classifier; under NNI the search space's values override these flags.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(TrialParams):
        kind = FLAG_TYPES[f.name]
        parse = (lambda text, name=f.name: _parse_bool_flag(text, name)) if kind is bool else kind
        metavar = "true|false" if kind is bool else None
        shown = str(f.default).lower() if kind is bool else repr(f.default) if f.default == "" else f.default
        parser.add_argument(f"--{f.name}", type=parse, default=f.default, choices=f.metadata["choices"],
                            metavar=metavar, help=f"{f.metadata['help']} (default: {shown})")
    return parser


def _parse_bool_flag(text: str, name: str) -> bool:
    try:
        return parse_bool(text, f"--{name}")
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


# Keys NNI's budget-aware tuners add to the search space's (README: "Checkpoints, resume and budget-aware tuners").
TRIAL_BUDGET = "TRIAL_BUDGET"  # Hyperband, BOHB: how long this trial runs, in the tuner's unit


def budget_epochs(budget: Any, epochs_per_unit: float) -> int:
    """Hyperband's budgets are R / eta**s, fractions included: round to whole epochs, at least one."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
        raise UserError(f"{TRIAL_BUDGET} must be a number above 0, got {budget!r}")
    return max(1, round(budget * epochs_per_unit))


def merge_parameters(flags: Mapping[str, Any], tuned: Mapping[str, Any] | None) -> TrialParams:
    """The flags, with NNI's choice (if any) over them. An unknown key or a wrong type stops the trial at once."""
    merged = dict(flags)
    if tuned is not None and not isinstance(tuned, Mapping):  # NNI's REST API takes any JSON as a parameter set
        raise UserError(f"NNI's parameters must be a JSON object of search-space keys, got a "
                        f"{type(tuned).__name__}: {str(tuned)[:80]}")
    tuned = dict(tuned or {})
    budget = tuned.pop(TRIAL_BUDGET, None)
    for key, value in tuned.items():
        if key not in FLAG_TYPES:
            raise UserError(f"search-space key {key!r} is not a trial.py flag: expected one of "
                            f"{', '.join(sorted(FLAG_TYPES.keys() - UNTUNABLE))}")
        if key in UNTUNABLE:
            raise UserError(f"search-space key {key!r} cannot come from NNI: paths and the device are set in the "
                            f"config's trialCommand (--{key}), never by the tuner")
        merged[key] = coerce(key, value)
    if budget is not None:
        if not 0 < merged["budget_unit"] <= MAX_BUDGET_UNIT:
            raise UserError(f"budget_unit must be in (0, {MAX_BUDGET_UNIT:g}], got {merged['budget_unit']!r}")
        merged["epochs"] = budget_epochs(budget, merged["budget_unit"])
    params = TrialParams(**merged)
    check(params)
    return params


def check(params: TrialParams) -> None:
    """Values a type cannot catch: choices (search-space values skip argparse) and ranges."""
    for f in fields(TrialParams):
        choices = f.metadata["choices"]
        value = getattr(params, f.name)
        if choices and value not in choices:
            raise UserError(f"{f.name} must be one of {', '.join(choices)}, got {value!r}")
    ranges = {
        # BatchNorm cannot normalise a batch of one image in training.
        "batch_size": (2 <= params.batch_size <= MAX_BATCH_SIZE,
                       f"at least 2 (BatchNorm cannot train on batches of one image) and at most {MAX_BATCH_SIZE}"),
        "seed": (0 <= params.seed < SEED_LIMIT, f"in 0..{SEED_LIMIT - 1} (numpy's seeds are 32-bit)"),
        "epochs": (1 <= params.epochs <= MAX_EPOCHS, f"in 1..{MAX_EPOCHS}"),
        "lr": (params.lr > 0, "above 0"),
        "weight_decay": (params.weight_decay >= 0, "0 or more"),
        "momentum": (0 <= params.momentum < 1, "in [0, 1)"),
        "sam_rho": (params.sam_rho >= 0, "0 or more (0: the variant's default)"),
        "img_size": (16 <= params.img_size <= MAX_IMG_SIZE, f"in 16..{MAX_IMG_SIZE}"),
        "crop": (0 < params.crop <= 1, "in (0, 1]"),
        "val_ratio": (0 <= params.val_ratio < 1, "in [0, 1)"),
        "num_workers": (0 <= params.num_workers <= MAX_WORKERS, f"in 0..{MAX_WORKERS}"),
        "loader_nice": (0 <= params.loader_nice <= 19, "in 0..19 (0: the trial's own priority)"),
        "cpu_threads": (0 <= params.cpu_threads <= MAX_CPU_THREADS, f"in 0..{MAX_CPU_THREADS} (0: one per core)"),
        "budget_unit": (0 < params.budget_unit <= MAX_BUDGET_UNIT, f"in (0, {MAX_BUDGET_UNIT:g}]"),
        "dump_threshold": (0 <= params.dump_threshold <= 1, "in [0, 1]"),
        "mixup": (params.mixup >= 0, "0 or more (0: off)"),
        "cutmix": (params.cutmix >= 0, "0 or more (0: off)"),
        "mix_prob": (0 <= params.mix_prob <= 1, "in [0, 1]"),
        "old_age": (30 < params.old_age <= 100, "in 31..100 (the 30-59 class must keep at least one age)"),
        "ema_decay": (0 <= params.ema_decay < 1, "in [0, 1) (0: off)"),
        "soft_weight": (0 <= params.soft_weight <= 1, "in [0, 1]"),
        "pseudo_threshold": (0 < params.pseudo_threshold <= 1, "in (0, 1]"),
    }
    for f in fields(TrialParams):
        value = getattr(params, f.name)
        if FLAG_TYPES[f.name] is float and not math.isfinite(value):
            raise UserError(f"{f.name} must be a finite number, got {value!r}")
    for name, (ok, expected) in ranges.items():
        if not ok:
            raise UserError(f"{name} must be {expected}, got {getattr(params, name)!r}")
    loss_mix(params.criterion, params.loss_weights)  # every part known, one weight per part
    if params.weights and not params.pretrained:
        raise UserError("--weights is only read with --pretrained true")
    check_folds(params)


def check_folds(params: TrialParams) -> None:
    """What K-fold (--folds > 1) cannot be combined with, each for a reason a user can act on."""
    if not 1 <= params.folds <= MAX_FOLDS:
        raise UserError(f"folds must be in 1..{MAX_FOLDS}, got {params.folds}")
    if params.folds == 1:
        return
    if params.checkpoint == "best":
        raise UserError("--checkpoint best keeps one model's weights, a K-fold run has one per fold: use "
                        "--checkpoint last (resumable) or none with --folds > 1")
    if params.load_checkpoint_dir or params.save_checkpoint_dir:
        raise UserError("Population Based Training passes one model's weights between trials: it cannot run with "
                        "--folds > 1")


def parse_params(argv: Sequence[str] | None, tuned: Mapping[str, Any] | None) -> TrialParams:
    flags = vars(build_parser().parse_args(argv))
    return merge_parameters(flags, tuned)
