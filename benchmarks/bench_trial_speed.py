"""How fast a trial runs, measured in one run on the same images, as ratios that do not depend on the machine's mood.

    python benchmarks/bench_trial_speed.py [--data_dir DIR] [--people 60] [--model resnet18] [--img_size 224]
                                          [--out bench_out/speed.json]

1. the loader's images per second: decoding every JPEG (crop, resize, augment) against the decoded-image cache
   (augment only), same images, same augmentations, same workers;
2. one trial epoch (train + validation) with and without the cache;
3. the harness's own overhead: train_one_epoch (uint8 batches normalised per batch, sums kept on the device)
   against a bare PyTorch loop training the same model from the same state on the same, already normalised batches;
4. precision: training images per second in fp32, with mixed precision (bf16 on a CPU) and with mixed precision +
   channels_last, for --precision_models (model@px; on a GPU batch --batch_size, on a CPU 16 under 128 px, else 8);
5. start-up: process start to the first optimiser step of a standalone trial against a timm-style reference
   (benchmarks/timm_style_first_step.py) on the same photos, peak RSS of both, and the trial's import profile;
6. allocator: training steps per second and peak RSS with --keep_freed_memory true and false;
7. accuracy: the same seeded demo trial with --amp off and --amp bf16, validation scores side by side, for
   several seeds (the spread between seeds is the yardstick);
8. trial epochs: whole standalone trials (trial.py, 2 epochs, the second one timed from metrics.jsonl) of
   --epoch_models at 224 px, as the harness ran before this work (fp32, NCHW, torch's default optimiser
   implementation), in fp32 with fused optimisers, and with --amp auto (bf16 + channels_last on a CPU with bf16
   units), taking turns;
9. optimizer: training steps of the demo's models with torch's fused Adam against its default implementation.

--sections picks among cache, overhead, precision, optimizer, startup, allocator, accuracy, epochs (default: all).

Without --data_dir it generates photo-sized (384x512) JPEGs in the mask contest's layout. Prints a markdown table
(the README's figures come from it) and writes every number to --out."""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from harness.atomic import write_json  # noqa: E402
from harness.data.demo import generate  # noqa: E402
from harness.data.layouts import TrainSet, load_train  # noqa: E402
from harness.data.loaders import Loaders, LoaderSettings, build_loaders  # noqa: E402
from harness.data.split import split_indices  # noqa: E402
from harness.data.transforms import Normalizer  # noqa: E402
from harness.params import TrialParams  # noqa: E402
from harness.train.allocator import keep_freed_memory  # noqa: E402
from harness.train.losses import create_loss  # noqa: E402
from harness.train.optim import create_optimizer  # noqa: E402
from harness.train.passes import TrainStep, predict, train_one_epoch  # noqa: E402
from harness.train.precision import Precision, resolve_precision  # noqa: E402
from models import create_model, set_fast_swish  # noqa: E402


def loaders_for(params: TrialParams, train_set: TrainSet, labels: np.ndarray, pin_memory: bool = False,
                **changes) -> Loaders:
    """The trial's loaders for these parameters (`changes` override them), as trial.py builds them."""
    params = replace(params, **changes)
    train_idx, val_idx = split_indices(train_set.groups, train_set.group_strata, params.val_ratio, params.seed)
    return build_loaders(train_set, None, labels, train_idx, val_idx, LoaderSettings(
        batch_size=params.batch_size, num_workers=params.num_workers, seed=params.seed, img_size=params.img_size,
        crop=params.crop, cache=params.cache, cache_dir=params.cache_dir, pin_memory=pin_memory))


def loader_rates(params: TrialParams, train_set: TrainSet, labels: np.ndarray, repeats: int,
                 epochs: int) -> dict[str, float]:
    """Images per second of the training loader alone (no model), decoding JPEGs against reading the cache: both
    loaders live side by side and take turns, `epochs` passes each per round (a contest epoch is 20 times longer
    than one pass here, so a single pass would overweigh the start of an epoch); medians over the rounds."""
    loaders = {name: loaders_for(params, train_set, labels, cache=cache).train
               for name, cache in (("jpeg", False), ("cache", True))}
    for loader in loaders.values():  # start the (persistent) workers, warm the page cache
        for _ in loader:
            pass
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    for round_ in range(repeats):
        for name in (list(loaders) if round_ % 2 == 0 else list(loaders)[::-1]):
            start, images = time.perf_counter(), 0
            for _ in range(epochs):
                for batch, _labels in loaders[name]:
                    images += len(batch)
            rates[name].append(images / (time.perf_counter() - start))
    ratios = [c / j for j, c in zip(rates["jpeg"], rates["cache"])]
    return {"loader_jpeg_img_s": statistics.median(rates["jpeg"]),
            "loader_cache_img_s": statistics.median(rates["cache"]), "loader_ratio": statistics.median(ratios),
            "loader_rounds_img_s": rates}


def epoch_seconds(params: TrialParams, train_set: TrainSet, labels: np.ndarray, device: torch.device,
                  repeats: int) -> dict[str, float]:
    """One trial epoch as trial.py runs it (train, then validate), without and with the cache, taking turns from
    the same initial model; medians."""
    precision = resolve_precision(device, params.amp, params.channels_last)
    normalize = Normalizer(*train_set.mean_std, device=device, channels_last=precision.channels_last)
    heads = {params.classification: train_set.num_classes(params.classification)}
    torch.manual_seed(0)
    initial = create_model(params.model, heads, pretrained=False)
    set_fast_swish(initial, True)
    initial = initial.to(device, memory_format=torch.channels_last if precision.channels_last
                         else torch.preserve_format)
    criteria = {task: create_loss(params.criterion, classes) for task, classes in heads.items()}
    setups = {name: loaders_for(params, train_set, labels, pin_memory=device.type == "cuda", cache=cache)
              for name, cache in (("jpeg", False), ("cache", True))}
    for setup in setups.values():  # warm-up: workers started, allocator and kernels settled
        model = copy.deepcopy(initial)
        optimizer = create_optimizer(params.optimizer, model.parameters(), params.lr)
        train_one_epoch(model, itertools.islice(setup.train, 3),
                        TrainStep(heads, criteria, optimizer, normalize, precision))
    seconds: dict[str, list[float]] = {name: [] for name in setups}
    for round_ in range(repeats):
        for name in (list(setups) if round_ % 2 == 0 else list(setups)[::-1]):
            model = copy.deepcopy(initial)
            optimizer = create_optimizer(params.optimizer, model.parameters(), params.lr)
            start = time.perf_counter()
            train_one_epoch(model, setups[name].train,
                            TrainStep(heads, criteria, optimizer, normalize, precision, precision.grad_scaler()))
            predict(model, setups[name].val, heads, normalize, precision, criteria)
            seconds[name].append(time.perf_counter() - start)
    return {"epoch_jpeg_s": statistics.median(seconds["jpeg"]), "epoch_cache_s": statistics.median(seconds["cache"]),
            "epoch_ratio": statistics.median(j / c for j, c in zip(seconds["jpeg"], seconds["cache"])),
            "epoch_rounds_s": seconds}


def harness_overhead(params: TrialParams, train_set: TrainSet, labels: np.ndarray, device: torch.device,
                     batches: int, repeats: int) -> dict[str, float]:
    """Median seconds of `batches` training steps, bare loop against the harness, interleaved `repeats` times."""
    precision = Precision(device)
    loader = loaders_for(params, train_set, labels, num_workers=0).train
    raw = [batch for batch, _ in zip(loader, range(batches))]
    normalize = Normalizer(*train_set.mean_std, device=device)
    ready = [(normalize(images), targets[:, 0].to(device)) for images, targets in raw]
    heads = {params.classification: train_set.num_classes(params.classification)}
    torch.manual_seed(0)
    initial = create_model(params.model, heads, pretrained=False).to(device)
    criterion = torch.nn.CrossEntropyLoss()

    def fresh():
        model = copy.deepcopy(initial)
        return model, torch.optim.Adam(model.parameters(), lr=params.lr)

    def bare() -> float:
        model, optimizer = fresh()
        model.train()
        synchronize(device)
        start = time.perf_counter()
        for inputs, targets in ready:
            optimizer.zero_grad()
            loss = criterion(model(inputs), targets)
            loss.backward()
            optimizer.step()
        synchronize(device)
        return time.perf_counter() - start

    def harness() -> float:
        model, optimizer = fresh()
        start = time.perf_counter()
        train_one_epoch(model, raw, TrainStep(heads, {params.classification: criterion}, optimizer, normalize,
                                              precision))  # ends with its one sync
        return time.perf_counter() - start

    bare(), harness()  # warm-up: allocator, kernels
    pairs: list[tuple[float, float]] = []
    for round_ in range(repeats):  # alternate who goes first, so drift in the machine's speed cancels out
        if round_ % 2 == 0:
            pairs.append((bare(), harness()))
        else:
            harness_s = harness()
            pairs.append((bare(), harness_s))
    ratios = [h / b for b, h in pairs]
    return {"bare_s": statistics.median(b for b, _ in pairs), "harness_s": statistics.median(h for _, h in pairs),
            "overhead": statistics.median(ratios) - 1, "overhead_range": [min(ratios) - 1, max(ratios) - 1],
            "pairs_s": pairs}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def precision_table(models: list[str], device: torch.device, img_size: int, batch_size: int, steps: int,
                    amp_dtype: torch.dtype, rounds: int = 1) -> list[dict]:
    """Training images per second per model in fp32, mixed precision, and mixed precision + channels_last: the three
    settings take turns (reversed every other round) and each figure is the median over `rounds`."""
    settings = [("fp32", None, False), ("fp32+channels_last", None, True), ("amp", amp_dtype, False),
                ("amp+channels_last", amp_dtype, True)]
    rows = []
    for name in models:
        rates: dict[str, list[float]] = {label: [] for label, _, _ in settings}
        for round_ in range(rounds):
            for label, dtype, nhwc in (settings if round_ % 2 == 0 else settings[::-1]):
                rates[label].append(_training_rate(name, device, img_size, batch_size, steps, dtype, nhwc))
        row: dict = {"model": name, "img_size": img_size}
        row.update({label: statistics.median(values) for label, values in rates.items()})
        row["amp_speedup"] = statistics.median(a / f for a, f in zip(rates["amp"], rates["fp32"]))
        for label in ("fp32+channels_last", "amp+channels_last"):
            row[f"{label}_speedup"] = statistics.median(a / f for a, f in zip(rates[label], rates["fp32"]))
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def optimizer_table(models: list[str], device: torch.device, img_size: int, batch_size: int, steps: int,
                    amp_dtype: torch.dtype | None, nhwc: bool, rounds: int) -> list[dict]:
    """Training images per second with torch's fused Adam against its default implementation (--fused_optimizer),
    taking turns; medians, and the median of the per-round ratios."""
    rows = []
    for name in models:
        rates: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(rounds):
            for fused in ((True, False) if round_ % 2 == 0 else (False, True)):
                rates[fused].append(_training_rate(name, device, img_size, batch_size, steps, amp_dtype, nhwc,
                                                   fused=fused))
        rows.append({"model": name, "img_size": img_size, "batch_size": batch_size,
                     "fused": statistics.median(rates[True]), "default": statistics.median(rates[False]),
                     "speedup": statistics.median(f / d for f, d in zip(rates[True], rates[False])),
                     "rounds": rates})
    return rows


def _training_rate(name: str, device: torch.device, img_size: int, batch_size: int, steps: int,
                   dtype: torch.dtype | None, nhwc: bool, fused: bool = True) -> float:
    precision = Precision(device, dtype, nhwc)
    torch.manual_seed(0)
    model = create_model(name, {"multi": 18}, pretrained=False)
    set_fast_swish(model, True)
    model = model.to(device, memory_format=torch.channels_last if nhwc else torch.preserve_format)
    optimizer = create_optimizer("adam", model.parameters(), lr=1e-4, fused=fused)
    images = torch.randint(0, 256, (batch_size, img_size, img_size, 3), dtype=torch.uint8)
    batches = [(images, torch.randint(0, 18, (batch_size, 1)))] * steps
    normalize = Normalizer((0.5,) * 3, (0.25,) * 3, device, nhwc)
    heads, criteria = {"multi": 18}, {"multi": torch.nn.CrossEntropyLoss()}
    step = TrainStep(heads, criteria, optimizer, normalize, precision, precision.grad_scaler())
    train_one_epoch(model, batches[:1], step)
    result = train_one_epoch(model, batches, step)
    return result.images / result.seconds


def image_folder(train_set: TrainSet, labels: np.ndarray, folder: Path) -> Path:
    """The same photos as an ImageFolder (a subfolder of symlinks per class), for the timm-style reference."""
    for path, label in zip(train_set.paths, labels):
        target = folder / f"{int(label):02d}" / path.replace("/", "_")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(Path(train_set.root, path).resolve())
    return folder


def _first_step(command: list[str], env: dict[str, str]) -> dict:
    """Process start to first optimiser step (s) and peak RSS (MB) of one run under benchmarks/first_step.py."""
    start = time.time()
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "first_step.py"), *command],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"first_step_at"')]
    if not lines:
        raise RuntimeError(f"{command[0]} reached no optimiser step: {done.stderr[-2000:]}")
    result = json.loads(lines[-1])
    return {"seconds": result["first_step_at"] - start, "peak_rss_mb": result["peak_rss_mb"],
            "after_first_s": result["after_first_s"], "steps": result["steps"]}


def startup(data_dir: Path, train_set: TrainSet, labels: np.ndarray, scratch: Path, model: str, img_size: int,
            batch_size: int, workers: int, rounds: int) -> dict:
    """A standalone trial against the timm-style reference (benchmarks/timm_style_first_step.py) on the same photos:
    process start to first optimiser step and peak RSS then, taking turns; plus where the trial's start-up goes
    (python -X importtime: the largest packages a trial imports)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    commands = {
        "trial": [str(ROOT / "trial.py"), "--data_dir", str(data_dir), "--output_dir", str(scratch / "runs"),
                  "--model", model, "--img_size", str(img_size), "--batch_size", str(batch_size), "--epochs", "1",
                  "--pretrained", "false", "--num_workers", str(workers), "--cache_dir", str(scratch / "cache")],
        "timm": [str(ROOT / "benchmarks" / "timm_style_first_step.py"),
                 str(image_folder(train_set, labels, scratch / "imagefolder")), "--model", model,
                 "--img_size", str(img_size), "--batch_size", str(batch_size), "--workers", str(workers)]}
    for command in commands.values():  # warm-up: page cache, the trial's image cache
        _first_step(command, env)
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    for round_ in range(rounds):
        for name in (list(commands) if round_ % 2 == 0 else list(commands)[::-1]):
            runs[name].append(_first_step(commands[name], env))
    profile = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "benchmarks" / "first_step.py"),
                              *commands["trial"]], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    return {"model": model, "img_size": img_size,
            "trial_s": statistics.median(r["seconds"] for r in runs["trial"]),
            "timm_s": statistics.median(r["seconds"] for r in runs["timm"]),
            "ratio": statistics.median(t["seconds"] / m["seconds"] for t, m in zip(runs["trial"], runs["timm"])),
            "trial_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs["trial"]),
            "timm_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs["timm"]),
            "imports_s": import_profile(profile.stderr), "runs": runs}


def allocator(data_dir: Path, scratch: Path, model: str, img_size: int, batch_size: int, workers: int,
              steps: int, rounds: int) -> dict:
    """The same standalone trial with --keep_freed_memory true and false, taking turns: training steps per second
    from the first optimiser step to the steps-th (start-up excluded), and the process's peak RSS by then."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("NNI_")}, "FIRST_STEP_AFTER": str(steps)}
    command = [str(ROOT / "trial.py"), "--data_dir", str(data_dir), "--output_dir", str(scratch / "runs"),
               "--model", model, "--img_size", str(img_size), "--batch_size", str(batch_size), "--epochs", "1",
               "--pretrained", "false", "--num_workers", str(workers), "--cache_dir", str(scratch / "cache"),
               "--amp", "off"]
    sides = {"kept": [*command, "--keep_freed_memory", "true"], "glibc default": [*command, "--keep_freed_memory",
                                                                                  "false"]}
    _first_step(sides["kept"], env)  # warm-up: page cache and the image cache
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for round_ in range(rounds):
        for name in (list(sides) if round_ % 2 == 0 else list(sides)[::-1]):
            runs[name].append(_first_step(sides[name], env))
    rate = {name: [(r["steps"] - 1) / r["after_first_s"] for r in side] for name, side in runs.items()}
    return {"model": model, "img_size": img_size, "batch_size": batch_size, "steps": steps,
            "steps_per_s": {name: statistics.median(v) for name, v in rate.items()},
            "speedup": statistics.median(k / d for k, d in zip(rate["kept"], rate["glibc default"])),
            "peak_rss_mb": {name: statistics.median(r["peak_rss_mb"] for r in side) for name, side in runs.items()},
            "runs": runs}


def import_profile(importtime: str, top: int = 8) -> dict[str, float]:
    """Cumulative seconds of the largest top-level packages in `python -X importtime` output."""
    packages: dict[str, float] = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        if name.startswith("  "):  # imported by another module: counted in its parent's cumulative time
            continue
        root = name.strip().split(".")[0]
        packages[root] = packages.get(root, 0.0) + int(cumulative) / 1e6
    return dict(sorted(packages.items(), key=lambda item: -item[1])[:top])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores{gpu}; torch {torch.__version__}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, help="a data set to measure on (default: generated JPEGs)")
    parser.add_argument("--people", type=int, default=100, help="people of the generated set (7 photos each)")
    parser.add_argument("--model", default=None, help="model of the epoch and overhead runs "
                                                      "(default: ecaresnet50t on a GPU, resnet10t on a CPU)")
    parser.add_argument("--img_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="loader workers (default: one core left to the training process)")
    parser.add_argument("--loader_repeats", type=int, default=6, help="loader rounds per path, taking turns")
    parser.add_argument("--loader_epochs", type=int, default=3, help="passes over the images per loader round")
    parser.add_argument("--epoch_repeats", type=int, default=4, help="trial epochs per path, taking turns")
    parser.add_argument("--overhead_batches", type=int, default=6, help="training steps of one overhead run")
    parser.add_argument("--repeats", type=int, default=4, help="overhead runs per side, taking turns")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "speed.json")
    parser.add_argument("--sections", default="cache,overhead,precision,optimizer,startup,allocator,accuracy,epochs",
                        help="comma-separated: cache (loader and epoch with/without it), overhead (against a bare "
                             "loop), precision (fp32 against bf16/fp16 and channels_last, CPU too), startup (to the "
                             "first step, against timm's), allocator (--keep_freed_memory's speed and memory), "
                             "accuracy (fp32 against bf16 on the demo data), epochs (whole trial epochs: before "
                             "this work, fp32, --amp auto), optimizer (fused Adam against torch's default)")
    parser.add_argument("--precision_models", default="resnet10t@64,resnet18@64,ecaresnet50t@224,efficientnet_b4@224",
                        help="model@img_size rows of the precision table")
    parser.add_argument("--precision_rounds", type=int, default=2)
    parser.add_argument("--startup_rounds", type=int, default=3)
    parser.add_argument("--accuracy_epochs", type=int, default=6)
    parser.add_argument("--accuracy_seeds", default="1,2,3,4")
    parser.add_argument("--epoch_models", default="resnet18,ecaresnet50t",
                        help="models of the trial-epoch comparison (224 px)")
    parser.add_argument("--epoch_rounds", type=int, default=2)
    parser.add_argument("--allocator_steps", type=int, default=12, help="training steps of one allocator run")
    parser.add_argument("--allocator_rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))

    keep_freed_memory()  # as trial.py does, for both sides of every comparison
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = args.model or ("ecaresnet50t" if device.type == "cuda" else "resnet10t")
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or generate(Path(scratch) / "data", people=args.people, eval_images=20,
                                             seed=0, jpeg_only=True)
        train_set = load_train(data_dir)
        labels = train_set.task_labels("multi")
        params = TrialParams(data_dir=str(data_dir), model=model, img_size=args.img_size, batch_size=args.batch_size,
                             num_workers=args.num_workers, cache_dir=str(Path(scratch) / "cache"), pretrained=False)
        results: dict = {"machine": machine(), "images": len(train_set.paths), "model": model,
                         "img_size": args.img_size, "batch_size": args.batch_size, "num_workers": args.num_workers}
        if "cache" in sections:
            start = time.perf_counter()
            loaders_for(params, train_set, labels)
            results["cache_build_s"] = time.perf_counter() - start
            results.update(loader_rates(params, train_set, labels, args.loader_repeats, args.loader_epochs))
            results.update(epoch_seconds(params, train_set, labels, device, args.epoch_repeats))
        if "overhead" in sections:
            results["overhead"] = harness_overhead(params, train_set, labels, device, args.overhead_batches,
                                                   args.repeats)
        if "precision" in sections:
            dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
            results["precision_dtype"] = str(dtype).replace("torch.", "")
            results["precision"] = []
            for item in args.precision_models.split(","):
                name, size = item.split("@")
                batch = args.batch_size if device.type == "cuda" else 16
                steps = 20 if device.type == "cuda" else (20 if int(size) < 128 else 5)
                results["precision"] += precision_table([name], device, int(size), batch, steps=steps,
                                                        amp_dtype=dtype, rounds=args.precision_rounds)
        if "optimizer" in sections:
            auto = resolve_precision(device, "auto", "auto")
            results["optimizer"] = {"precision": auto.reason, "rows": optimizer_table(
                ["resnet10t", "resnet18"], device, 64, 16, 30, auto.amp_dtype, auto.channels_last, rounds=6)}
        if "startup" in sections:
            results["startup"] = startup(data_dir, train_set, labels, Path(scratch), "resnet18", 32,
                                         args.batch_size, 1, args.startup_rounds)
        if "allocator" in sections:
            results["allocator"] = allocator(data_dir, Path(scratch), model, args.img_size, args.batch_size, 1,
                                             args.allocator_steps, args.allocator_rounds)
        if "accuracy" in sections:
            results["accuracy"] = accuracy(Path(scratch), args.accuracy_epochs,
                                           [int(seed) for seed in args.accuracy_seeds.split(",")])
        if "epochs" in sections:
            results["epochs"] = trial_epochs(Path(scratch), args.epoch_models.split(","), args.epoch_rounds)
    write_json(results, args.out)
    print(report(results))
    return 0


def report(r: dict) -> str:
    lines = [f"Machine: {r['machine']}"]
    if "loader_ratio" in r:
        lines += [
            f"{r['images']} photos of 384x512 (JPEG), trained at {r['img_size']} px, batch {r['batch_size']}, "
            f"{r['num_workers']} loader workers; cache built once in {r['cache_build_s']:.1f} s", "",
            "| measure | without cache | with cache | ratio |", "|---|---:|---:|---:|",
            f"| loader, images/s (decode+crop+resize+augment vs augment) | {r['loader_jpeg_img_s']:.0f} | "
            f"{r['loader_cache_img_s']:.0f} | {r['loader_ratio']:.1f}x |",
            f"| one trial epoch of {r['model']} (train + validation), s | {r['epoch_jpeg_s']:.1f} | "
            f"{r['epoch_cache_s']:.1f} | {r['epoch_ratio']:.2f}x |", "",
            "(medians of passes taking turns; the ratio is the median of the per-round ratios)"]
    if "overhead" in r:
        overhead = r["overhead"]
        lines += ["", f"Harness overhead against a bare PyTorch loop ({r['model']}, same batches, median of pairs): "
                      f"bare {overhead['bare_s']:.2f} s, harness {overhead['harness_s']:.2f} s, overhead "
                      f"{overhead['overhead'] * 100:+.1f}% (pairs from {overhead['overhead_range'][0] * 100:+.1f}% "
                      f"to {overhead['overhead_range'][1] * 100:+.1f}%)"]
    if "precision" in r:
        amp = r.get("precision_dtype", "amp")
        lines += ["", f"| model | px | fp32 | fp32 + channels_last | {amp} | {amp} + channels_last | "
                      f"speed-up: fp32 + channels_last | {amp} | {amp} + channels_last |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {row['model']} | {row.get('img_size', r['img_size'])} | {row['fp32']:.1f} | "
                  f"{row.get('fp32+channels_last', float('nan')):.1f} | {row['amp']:.1f} | "
                  f"{row['amp+channels_last']:.1f} | {row.get('fp32+channels_last_speedup', float('nan')):.2f}x | "
                  f"{row['amp_speedup']:.2f}x | {row['amp+channels_last_speedup']:.2f}x |" for row in r["precision"]]
        lines.append("(training images per second, medians of the rounds)")
    if "optimizer" in r:
        lines += ["", "| model | px | batch | fused Adam img/s | default Adam img/s | speed-up |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {row['model']} | {row['img_size']} | {row['batch_size']} | {row['fused']:.0f} | "
                  f"{row['default']:.0f} | {row['speedup']:.2f}x |" for row in r["optimizer"]["rows"]]
        lines.append(f"(training steps, {r['optimizer']['precision']}; medians of 6 rounds taking turns)")
    if "startup" in r:
        up = r["startup"]
        imports = ", ".join(f"{name} {seconds:.2f}" for name, seconds in up["imports_s"].items())
        lines += ["", f"Start-up to the first optimiser step ({up['model']}, {up['img_size']} px, medians of "
                      f"{len(up['runs']['trial'])} turns): trial {up['trial_s']:.2f} s, timm-style reference "
                      f"{up['timm_s']:.2f} s, ratio {up['ratio']:.2f}; peak RSS then {up['trial_peak_rss_mb']:.0f} MB "
                      f"against {up['timm_peak_rss_mb']:.0f} MB", f"Trial imports (s, cumulative): {imports}"]
    if "allocator" in r:
        al = r["allocator"]
        kept, default = al["steps_per_s"]["kept"], al["steps_per_s"]["glibc default"]
        lines += ["", f"--keep_freed_memory ({al['model']}, {al['img_size']} px, batch {al['batch_size']}, fp32, "
                      f"{al['steps']} steps, medians of {len(al['runs']['kept'])} turns): {kept:.3f} steps/s against "
                      f"{default:.3f} with glibc's default, {al['speedup']:.2f}x; peak RSS "
                      f"{al['peak_rss_mb']['kept']:.0f} MB against {al['peak_rss_mb']['glibc default']:.0f} MB"]
    if "epochs" in r:
        lines += ["", "| model | px | " + " | ".join(f"{name}, s" for name in EPOCH_SETTINGS) +
                  " | speed-up: " + " | ".join(list(EPOCH_SETTINGS)[1:]) + " |",
                  "|---|---:|" + "---:|" * (2 * len(EPOCH_SETTINGS) - 1)]
        for row in r["epochs"]["rows"]:
            lines.append(f"| {row['model']} | {row['img_size']} | " +
                         " | ".join(f"{row['seconds'][name]:.1f}" for name in EPOCH_SETTINGS) + " | " +
                         " | ".join(f"{row['speedup'][name]:.2f}x" for name in list(EPOCH_SETTINGS)[1:]) + " |")
        lines.append(f"(one trial epoch, train + validation, {r['epochs']['train_images']} training and "
                     f"{r['epochs']['val_images']} validation images; medians of {r['epochs']['rounds']} rounds)")
    if "accuracy" in r:
        acc = r["accuracy"]
        lines += ["", "| seed | precision | " + " | ".join(acc["metrics"]) + " | whole trial, s |",
                  "|---|---|" + "---:|" * (len(acc["metrics"]) + 1)]
        for seed, pair in acc["runs"].items():
            for amp, row in pair.items():
                lines.append(f"| {seed} | {amp} | " + " | ".join(f"{row[m]:.4f}" for m in acc["metrics"]) +
                             f" | {row['seconds']:.0f} |")
        differences = {m: ", ".join(f"{d:+.4f}" for d in acc["bf16_minus_fp32"][m]) for m in ("val_acc", "val_f1")}
        lines.append(f"bf16 - fp32 per seed: val_acc {differences['val_acc']}; val_f1 {differences['val_f1']}. "
                     f"fp32 across seeds spans val_acc {acc['fp32_seed_spread']['val_acc']:.4f}, val_f1 "
                     f"{acc['fp32_seed_spread']['val_f1']:.4f}")
    return "\n".join(lines)


# How a trial ran before this work (fp32 on a CPU, NCHW, torch's default optimiser implementation), fp32 now (fused
# optimisers), and what --amp auto picks (bf16 + channels_last where the CPU has bf16 units).
EPOCH_SETTINGS = {"before": ["--amp", "off", "--fused_optimizer", "false"], "fp32": ["--amp", "off"],
                  "auto": ["--amp", "auto"]}


def trial_epochs(scratch: Path, models: list[str], rounds: int, img_size: int = 224, batch_size: int = 16) -> dict:
    """A standalone trial of 2 epochs per setting, taking turns (reversed every other round); the second epoch's
    `seconds` from metrics.jsonl (train + validation: the first also warms the kernels and builds the cache)."""
    data = generate(scratch / "epochs", people=24, eval_images=4, seed=0, jpeg_only=True)
    rows = []
    for model in models:
        runs: dict[str, list[float]] = {name: [] for name in EPOCH_SETTINGS}
        for round_ in range(rounds):
            for name in (list(EPOCH_SETTINGS) if round_ % 2 == 0 else list(EPOCH_SETTINGS)[::-1]):
                output = scratch / f"epochs-{model}-{name}-{round_}"
                done = subprocess.run([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(data),
                                       "--output_dir", str(output), "--model", model, "--img_size", str(img_size),
                                       "--batch_size", str(batch_size), "--epochs", "2", "--pretrained", "false",
                                       "--num_workers", "1", "--checkpoint", "none", "--tensorboard", "false",
                                       "--dump_threshold", "1", "--cache_dir", str(scratch / "cache"),
                                       *EPOCH_SETTINGS[name]], capture_output=True, text=True, cwd=ROOT,
                                      timeout=3600)
                if done.returncode:
                    raise RuntimeError(done.stderr[-2000:])
                records = [json.loads(line) for line in
                           next(output.glob("standalone/*/metrics.jsonl")).read_text().splitlines()]
                runs[name].append(records[-1]["seconds"])
        rows.append({"model": model, "img_size": img_size, "batch_size": batch_size, "runs": runs,
                     "seconds": {name: statistics.median(values) for name, values in runs.items()},
                     "speedup": {name: statistics.median(b / s for b, s in zip(runs["before"], runs[name]))
                                 for name in EPOCH_SETTINGS}})
    train_set = load_train(data)
    val = len(split_indices(train_set.groups, train_set.group_strata, 0.2, 42)[1])
    return {"rounds": rounds, "train_images": len(train_set.paths) - val, "val_images": val, "rows": rows}


def accuracy(scratch: Path, epochs: int, seeds: list[int]) -> dict:
    """The same seeded trial on the demo data (resnet10t, 64 px, the 18-class task, 6 epochs as the demo trains)
    with --amp off and --amp bf16, for each seed: the last epoch's validation scores side by side. A seed fixes the
    initial weights, the batches, the augmentations and the validation people, so the two runs of a seed differ
    only in their arithmetic; the spread between seeds says how large a difference the noise alone makes."""
    data = generate(scratch / "demo", people=120, eval_images=20, seed=0)
    runs: dict[str, dict[str, dict]] = {}
    for seed in seeds:
        runs[str(seed)] = {}
        for amp in ("off", "bf16"):
            output = scratch / f"accuracy-{amp}-{seed}"
            start = time.perf_counter()
            done = subprocess.run([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(data), "--output_dir",
                                   str(output), "--model", "resnet10t", "--img_size", "64", "--batch_size", "32",
                                   "--epochs", str(epochs), "--pretrained", "false", "--num_workers", "1",
                                   "--seed", str(seed), "--lr", "0.003", "--scheduler", "cosine", "--amp", amp,
                                   "--checkpoint", "none", "--tensorboard", "false",
                                   "--cache_dir", str(scratch / "cache")],
                                  capture_output=True, text=True, cwd=ROOT, timeout=3600)
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])
            metrics = next(output.glob("standalone/*/metrics.jsonl")).read_text().splitlines()
            runs[str(seed)][amp] = {**json.loads(metrics[-1]), "seconds": time.perf_counter() - start}
    summary = {amp: {metric: statistics.mean(run[amp][metric] for run in runs.values())
                     for metric in ("val_acc", "val_f1")} for amp in ("off", "bf16")}
    differences = {metric: [run["bf16"][metric] - run["off"][metric] for run in runs.values()]
                   for metric in ("val_acc", "val_f1")}
    return {"epochs": epochs, "seeds": seeds, "metrics": ["train_loss", "val_loss", "val_acc", "val_f1"],
            "runs": runs, "mean": summary, "bf16_minus_fp32": differences,
            "fp32_seed_spread": {metric: max(r["off"][metric] for r in runs.values()) -
                                 min(r["off"][metric] for r in runs.values()) for metric in ("val_acc", "val_f1")}}


if __name__ == "__main__":
    raise SystemExit(main())
