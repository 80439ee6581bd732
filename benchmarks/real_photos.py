"""Contest techniques on real photos, scored on a held-out part that no selection sees.

    python -m benchmarks.real_photos --data data/real/face-mask [--seeds 0,1,2] [--epochs 8] [--img_size 64]
                                     [--model resnet18] [--jobs 2] [--work bench_out/real] [--only a,b]
                                     [--out benchmarks/real_photos_face-mask.json]

The data set is one that `python -m harness.real_photos` laid out: train/ for training and validation, eval/ with
the held-out images, and heldout_answers.csv beside them, read only here, to score.

Per seed, every technique runs alone on top of the plain trial, at the plain trial's budget (same model, size,
epochs, batch, lr, seed, hence the same validation people): a run's held-out score is that of the eval CSV of its
best-validation dump (what the ensemble would take from it). Techniques that need another run come after it:
refit (of the plain run), pseudo-labels (from the ensemble of the seed's other holdout runs), TTA (the plain run
predicted again), distillation (of the seed's K-fold run). The ensembles: `python -m ensemble --select` over the
seed's holdout runs (every holdout technique; K-fold runs are validated on other images, so they form their own
pool with the distilled run), and the same without each technique, so its line says what it adds to the final
blend. The seconds are each run's wall time (start-up, training, validation, dumps). Scores: accuracy and macro-F1
on the held-out images; medians over the seeds with their ranges."""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.atomic import write_json
from harness.metrics import accuracy, macro_f1
from harness.outputs.reading import best_record, json_object, read_run

ROOT = Path(__file__).resolve().parents[1]
# Techniques that are one more set of flags on the plain trial.
FLAGS: dict[str, list[str]] = {
    "plain": [],
    "mixup+cutmix": ["--mixup", "0.2", "--cutmix", "1.0", "--mix_prob", "0.5"],
    "label_smoothing": ["--criterion", "label_smoothing"],
    "ema": ["--ema_decay", "0.99"],
    "sampler": ["--sampler", "weighted"],
    "class_weights": ["--class_weights", "sqrt_inverse"],
    "sam": ["--optimizer", "sam"],
    "focal+f1": ["--criterion", "focal+f1", "--loss_weights", "0.6,0.4"],
    "kfold": ["--folds", "3"],
}
# Techniques made from another run: (what they start from, how).
DERIVED = ("tta_hflip", "tta_d4", "refit", "pseudo_labels", "distill")
# What a technique is compared with, seed by seed: the plain run, but the distilled run with the K-fold run it
# distils (both K-fold runs, validated out of fold).
BASELINES = {"distill": "kfold"}


@dataclass
class Result:
    technique: str
    seed: int
    folder: str
    seconds: float
    csv: str = ""  # the eval CSV scored: the best-validation dump's, a re-prediction's for TTA
    scores: dict[str, float] = field(default_factory=dict)


def base_flags(args: argparse.Namespace, seed: int) -> list[str]:
    return ["--data_dir", str(args.data), "--model", args.model, "--pretrained", "false", "--img_size",
            str(args.img_size), "--batch_size", str(args.batch_size), "--lr", str(args.lr), "--optimizer", "adamw",
            "--scheduler", "cosine", "--epochs", str(args.epochs), "--seed", str(seed), "--num_workers", "1",
            "--cpu_threads", "1", "--crop", "1.0", "--tensorboard", "false", "--dump_threshold", "0",
            "--checkpoint", "last"]


def timed(command: list[str], log: Path) -> float:
    started = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed: see {log}")
    return time.perf_counter() - started


def train(args: argparse.Namespace, technique: str, seed: int, extra: list[str]) -> tuple[Path, float]:
    """A standalone trial into work/<technique>/seed<seed>/; returns its run folder and wall seconds."""
    output = args.work / technique / f"seed{seed}"
    if (output / "seconds.json").is_file():  # done before: reused
        return own_run(output), json.loads((output / "seconds.json").read_text())
    shutil.rmtree(output, ignore_errors=True)  # an interrupted earlier try: its run folder would be taken for this one
    output.mkdir(parents=True)
    seconds = timed([sys.executable, "trial.py", *base_flags(args, seed), "--output_dir", str(output), *extra],
                    output / "log.txt")
    (output / "seconds.json").write_text(json.dumps(seconds))
    return own_run(output), seconds


def own_run(output: Path) -> Path:
    """The run a technique's own trial wrote (refits and distilled runs may sit beside it)."""
    return min(p.parent for p in output.glob("standalone/*/params.json"))


def chosen_csv(folder: Path) -> Path:
    """The eval CSV of the run's best-validation dump (K-fold: of its best cross-validated epoch), untagged."""
    run = read_run(folder)
    records = json_object(folder / "kfold.json", "kfold.json")["epochs"] if (folder / "kfold.json").is_file() \
        else list(run.records)
    key = "val_acc" if any(r.get("val_acc") is not None for r in records) else "train_acc"
    best = best_record([r for r in records if r.get("dumped")], key)
    return folder / next(d.eval_csv for d in run.dumps if d.eval_csv and d.epoch == best["epoch"] and not d.tag)


def answers_of(data: Path) -> pd.DataFrame:
    """The held-out answers: heldout_answers.csv of a real photo set, eval_answers.csv of the demo data."""
    found = [data / name for name in ("heldout_answers.csv", "eval_answers.csv") if (data / name).is_file()]
    if not found:
        raise SystemExit(f"{data}: no heldout_answers.csv (python -m harness.real_photos) or eval_answers.csv "
                         "(python -m harness.demo_data) to score on")
    return pd.read_csv(found[0])


def held_out(csv: Path, answers: pd.DataFrame) -> dict[str, float]:
    frame = pd.read_csv(csv).set_index("ImageID").loc[answers["ImageID"]]
    probs = frame[[c for c in frame.columns if c.isdigit()]].to_numpy()
    truth, predicted = answers["ans"].to_numpy(), probs.argmax(1)
    return {"accuracy": accuracy(truth, predicted), "macro_f1": macro_f1(truth, predicted, probs.shape[1])}


def ensemble(args: argparse.Namespace, folders: list[Path], name: str, blend: str = "caruana") -> Path:
    """python -m ensemble --select [--blend B] over the run folders; returns its blended soft CSV."""
    out = args.work / "ensembles" / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    timed([sys.executable, "-m", "ensemble", "--from", *map(str, folders), "--select", "--info",
           str(args.data / "eval" / "info.csv"), "-o", str(out), *(["--blend", blend] if blend != "caruana" else [])],
          out.with_suffix(".log"))
    return out.with_name(f"{out.stem}_multi_soft.csv")


def predicted(args: argparse.Namespace, plain: Path, policy: str, seed: int) -> Result:
    """The plain run's best checkpoint predicted again with a TTA policy: its new eval CSV."""
    log = args.work / f"predict_{policy}_seed{seed}.log"
    done = log.with_suffix(".json")
    if done.is_file():
        return Result(f"tta_{policy}", seed, **json.loads(done.read_text()))
    seconds = timed([sys.executable, "predict.py", str(plain), "--tta", policy], log)
    csv = next(line for line in log.read_text().splitlines() if Path(line).name.startswith("submission"))
    done.write_text(json.dumps({"folder": str(plain), "seconds": seconds, "csv": csv}))
    return Result(f"tta_{policy}", seed, str(plain), seconds, csv)


def derived(args: argparse.Namespace, technique: str, seed: int, runs: dict[str, Result]) -> tuple[Path, float]:
    plain = Path(runs["plain"].folder)
    if technique == "refit":
        refit = plain.with_name(plain.name + "_refit")
        done = refit / "seconds.json"
        seconds = json.loads(done.read_text()) if done.is_file() else timed(
            [sys.executable, "trial.py", "--refit", str(plain)], args.work / f"refit_seed{seed}.log")
        done.write_text(json.dumps(seconds))
        return refit, seconds
    if technique == "pseudo_labels":
        pool = [Path(r.folder) for name, r in runs.items() if name in FLAGS and name != "kfold"]
        blended = ensemble(args, pool, f"pseudo_source_seed{seed}")
        return train(args, technique, seed, ["--pseudo_labels", str(blended.resolve()), "--pseudo_threshold",
                                             "0.9"])
    kfold = Path(runs["kfold"].folder)  # distill
    done = kfold.parent.parent / "distill_seconds.json"
    seconds = json.loads(done.read_text()) if done.is_file() else timed(
        [sys.executable, "distill.py", str(kfold.parent.parent), "--run", str(kfold)],
        args.work / f"distill_seed{seed}.log")
    done.write_text(json.dumps(seconds))
    return distilled_run(kfold), seconds


def distilled_run(kfold: Path) -> Path:
    """The finished distilled run beside the K-fold run it learnt from: the first, when a retry wrote another."""
    return min(p for p in kfold.parent.iterdir() if p != kfold and (p / "kfold.json").is_file())


def run_seed(args: argparse.Namespace, seed: int, techniques: list[str]) -> dict[str, Result]:
    """Every technique of one seed: the flag ones side by side (args.jobs at a time), then the derived ones."""
    def one(technique: str) -> Result:
        extra = FLAGS[technique] + (["--checkpoint", "none"] if technique == "kfold" else ["--checkpoint", "best"])
        folder, seconds = train(args, technique, seed, extra)
        return Result(technique, seed, str(folder), seconds)

    with ThreadPoolExecutor(args.jobs) as pool:
        runs = {r.technique: r for r in pool.map(one, [t for t in techniques if t in FLAGS])}
    for technique in (t for t in DERIVED if t in techniques):
        if technique.startswith("tta_"):
            runs[technique] = predicted(args, Path(runs["plain"].folder), technique.removeprefix("tta_"), seed)
        else:
            folder, seconds = derived(args, technique, seed, runs)
            runs[technique] = Result(technique, seed, str(folder), seconds)
    answers = answers_of(args.data)
    for result in runs.values():
        result.csv = result.csv or str(chosen_csv(Path(result.folder)))
        result.scores = held_out(Path(result.csv), answers)
    return runs


def pools(runs: dict[str, Result]) -> dict[str, list[str]]:
    """The seed's ensembles: every holdout technique, the K-fold pool (K-fold and distilled runs: validated on the
    out-of-fold images), and each pool less each of its techniques."""
    holdout = [t for t in runs if t not in ("kfold", "distill") and not t.startswith("tta_")]
    kfold = [t for t in ("kfold", "distill") if t in runs]
    found = {"all holdout": holdout, **({"all kfold": kfold} if kfold else {})}
    for technique in holdout:
        if technique != "plain":
            found[f"holdout without {technique}"] = [t for t in holdout if t != technique]
    if len(kfold) == 2:
        found["kfold without distill"] = ["kfold"]
    return found


def ensembles(args: argparse.Namespace, seed: int, runs: dict[str, Result]) -> dict[str, dict[str, float]]:
    answers = answers_of(args.data)
    scores = {}
    for name, members in pools(runs).items():
        folders = sorted({Path(runs[t].folder) for t in members})
        # The whole pools also with the ensemble's other blends (ensemble/blends.py), fitted on validation only.
        for blend in ("caruana", "weights", "stack") if name.startswith("all ") else ("caruana",):
            shown = name if blend == "caruana" else f"{name} ({blend})"
            blended = ensemble(args, folders, f"seed{seed}_{shown.replace(' ', '_')}", blend)
            scores[shown] = held_out(blended, answers)
    return scores


def summary(results: list[Result], blends: dict[int, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Medians and ranges over the seeds, per technique and per ensemble."""
    def spread(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    by_technique: dict[str, dict[str, Any]] = {}
    for technique in dict.fromkeys(r.technique for r in results):
        mine = [r for r in results if r.technique == technique]
        by_technique[technique] = {metric: spread([r.scores[metric] for r in mine])
                                   for metric in ("accuracy", "macro_f1")}
        by_technique[technique]["seconds"] = spread([r.seconds for r in mine])
    names = dict.fromkeys(name for seed in blends.values() for name in seed)
    by_blend = {name: {metric: spread([seed[name][metric] for seed in blends.values() if name in seed])
                       for metric in ("accuracy", "macro_f1")} for name in names}
    return {"techniques": by_technique, "ensembles": by_blend}


def paired(values: dict[int, float], base: dict[int, float]) -> str:
    """A technique's held-out score less the plain run's of the same seed: median (min to max), better/worse seeds."""
    diffs = [values[seed] - base[seed] for seed in values if seed in base]
    if not diffs:
        return " | "
    better, worse = sum(d > 1e-9 for d in diffs), sum(d < -1e-9 for d in diffs)  # equal scores are neither
    return f"{statistics.median(diffs):+.4f} ({min(diffs):+.4f} to {max(diffs):+.4f}) | {better} / {worse}"


def table(found: dict[str, Any]) -> str:
    """The figures as markdown: each technique against the plain run of its seed, then the ensembles against the
    ensemble of every holdout run of the seed."""
    def cell(s: dict[str, float], f: str = "{:.4f}") -> str:
        return f"{f.format(s['median'])} ({f.format(s['min'])}-{f.format(s['max'])})"

    by_seed: dict[str, dict[int, float]] = {}
    for run in found["runs"]:
        by_seed.setdefault(run["technique"], {})[run["seed"]] = run["scores"]["macro_f1"]
    lines = ["| technique | held-out macro-F1, median (range) | less its baseline's, same seed | better / worse | "
             "held-out accuracy | seconds |", "|---|---:|---:|---:|---:|---:|"]
    for technique, row in found["techniques"].items():
        base = by_seed[BASELINES.get(technique, "plain")]
        lines.append(f"| {technique} | {cell(row['macro_f1'])} | "
                     f"{paired(by_seed[technique], base) if technique != 'plain' else ' | '} | "
                     f"{cell(row['accuracy'])} | {cell(row['seconds'], '{:.0f}')} |")
    blends = found.get("blends_by_seed", {})
    seeds = {name: {int(seed): scores[name]["macro_f1"] for seed, scores in blends.items() if name in scores}
             for name in found["ensembles"]}
    lines += ["", "| ensemble (python -m ensemble --select) | held-out macro-F1, median (range) | less the full "
              "pool's, same seed | better / worse | held-out accuracy |", "|---|---:|---:|---:|---:|"]
    for name, row in found["ensembles"].items():
        full = "all kfold" if name.startswith("kfold") else "all holdout"
        versus = paired(seeds[name], seeds[full]) if seeds.get(name) and name != full else " | "
        lines.append(f"| {name} | {cell(row['macro_f1'])} | {versus} | {cell(row['accuracy'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_photos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a laid-out photo set (required unless --report)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--img_size", type=int, default=64)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--jobs", type=int, default=2, help="trials side by side (one CPU thread each)")
    parser.add_argument("--only", help="comma-separated techniques (default: every one)")
    parser.add_argument("--work", type=Path, default=Path("bench_out/real"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--report", type=Path, help="print the tables of a figures file and stop")
    args = parser.parse_args(argv)
    if args.report:
        print(table(json.loads(args.report.read_text())))
        return 0
    if args.data is None:
        parser.error("--data is required")
    args.work = args.work / args.data.name
    techniques = args.only.split(",") if args.only else [*FLAGS, *DERIVED]
    results, blends = [], {}
    for seed in map(int, args.seeds.split(",")):
        runs = run_seed(args, seed, ["plain", *[t for t in techniques if t != "plain"]])
        results += runs.values()
        blends[seed] = ensembles(args, seed, runs)
        print(f"seed {seed}: " + ", ".join(f"{t} {r.scores['macro_f1']:.4f}" for t, r in runs.items()), flush=True)
    found = {"data": str(args.data), "settings": {k: str(v) for k, v in vars(args).items()},
             "runs": [vars(r) for r in results], **summary(results, blends), "blends_by_seed": blends}
    print(table(found))
    write_json(found, args.out or Path("benchmarks") / f"real_photos_{args.data.name}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


