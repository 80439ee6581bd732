"""Which tuner spends a fixed CPU budget best: TPE + Medianstop, Hyperband and random search on the demo data.

    python -m benchmarks.search [--minutes 20] [--out bench_out/search] [--tuners tpe,hyperband,random]

The tuners' experiments run side by side for the same wall-clock budget, one trial each at a time (so that
other load on the machine falls on all of them alike), on the same generated demo data (18 classes, the
demo's models and search space without `classification`: every trial trains the 18-class task, so scores compare).
While an experiment runs, every run folder's metrics.jsonl is read every few seconds: the curve is the best
validation macro-F1 of any finished epoch against elapsed time. At the end of the budget the experiment is
stopped (a running trial's finished epochs count) and the ensemble's greedy --select runs on the validation CSVs
of all its trials (the same code as `python -m ensemble --select`). Writes search.json, search.png and prints a
markdown table (README: "Checkpoints, resume and budget-aware tuners")."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import ROOT
from harness.atomic import write_json
from harness.data.demo import generate
from harness.experiment.config import load_config, with_overrides
from harness.experiment.nnictl import free_port, start, stop
from harness.experiment.rest import NniRest

EPOCHS = 6  # a TPE or random trial's length; Hyperband's budgets run from 1 to R = 6 epochs (eta 3: 1, 2, 6)
TRIAL_FLAGS = ["--epochs", str(EPOCHS), "--img_size", "64", "--pretrained", "false", "--num_workers", "1",
               "--scheduler", "cosine", "--classification", "multi", "--dump_threshold", "0.5",
               "--metric", "val_f1", "--checkpoint", "none",
               # three experiments' trials share the cores: one thread each instead of one per core each
               "--cpu_threads", "1"]


def tuner_config(name: str) -> dict:
    """(config file, changes): each tuner as a user would run it from this project's configs."""
    if name == "tpe":
        config = load_config(ROOT / "config.yml")
        config["assessor"]["classArgs"]["start_step"] = 2  # of 6 epochs, as start_step 5 is of 30 in config.yml
        return config
    if name == "hyperband":
        config = load_config(ROOT / "config.hyperband.yml")
        config["tuner"]["classArgs"].update(R=EPOCHS, eta=3)
        return config
    if name == "random":
        config = load_config(ROOT / "config.yml")
        config.pop("assessor")
        config["tuner"] = {"name": "Random"}
        return config
    raise SystemExit(f"unknown tuner {name!r}: expected tpe, hyperband or random")


def best_so_far(experiment: Path) -> tuple[float | None, int]:
    best, epochs = None, 0
    for metrics in experiment.glob("*/metrics.jsonl"):
        for line in metrics.read_text().splitlines():
            try:
                score = json.loads(line).get("val_f1")
            except ValueError:
                continue  # a line being written
            epochs += 1
            if score is not None and (best is None or score > best):
                best = score
    return best, epochs


def start_tuner(name: str, data: Path, work: Path, minutes: float) -> dict:
    space = json.loads((ROOT / "search_space.demo.json").read_text())
    space.pop("classification")
    (work / f"{name}-space.json").write_text(json.dumps(space))
    config = with_overrides(tuner_config(name), ROOT, working_dir=work / name, cpu=True,
                            trial_args=["--data_dir", str(data), *TRIAL_FLAGS])
    config.update(searchSpaceFile=str(work / f"{name}-space.json"), trialConcurrency=1, maxTrialNumber=10_000,
                  maxExperimentDuration=f"{int(minutes * 60) + 600}s")
    path = work / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    return {"tuner": name, "port": port, "experiment": start(path, port), "folder": None, "curve": []}


def trial_records(folder: Path, statuses: dict[str, str]) -> list[dict]:
    """What each trial drew and reached: its model, the epochs it trained (Hyperband's budget or a Medianstop stop
    shows here), its best validation macro-F1 and NNI's last status for it."""
    records = []
    for params_file in sorted(folder.glob("*/params.json")):
        params = json.loads(params_file.read_text())
        scores = []
        for line in (params_file.parent / "metrics.jsonl").read_text().splitlines():
            try:
                scores.append(json.loads(line).get("val_f1"))
            except ValueError:
                continue  # the line a stopped trial was writing
        scores = [s for s in scores if s is not None]
        records.append({"trial": params.get("trial_id"), "status": statuses.get(params.get("trial_id"), "?"),
                        "parameters": params.get("nni_parameters", {}), "epochs": len(scores),
                        "best_val_f1": max(scores, default=None)})
    return records


def finish_tuner(run: dict, work: Path, minutes: float) -> dict:
    folder = work / run["tuner"] / run["experiment"]
    best, epochs = best_so_far(folder)
    run["curve"].append((minutes * 60, best, epochs))
    records = trial_records(folder, run["statuses"])
    runs = sorted(p.parent for p in folder.glob("*/params.json"))
    ensemble = None
    try:
        from harness.report.selection import select

        ensemble = select(runs, "val_f1")[0].score
    except Exception as error:  # noqa: BLE001 - no dumped member in the budget: the table says so
        print(f"{run['tuner']}: no ensemble ({error})", file=sys.stderr)
    return {"tuner": run["tuner"], "experiment": run["experiment"], "trials": len(run["statuses"]), "epochs": epochs,
            # Read before the benchmark's own stop: a cancelled trial is one the assessor stopped (NNI 3.0's local
            # service shows those USER_CANCELED, README "Stopping").
            "early_stopped": sum(r["status"] in ("EARLY_STOPPED", "USER_CANCELED") for r in records),
            "best_val_f1": best, "ensemble_val_f1": ensemble, "curve": run["curve"], "trial_records": records}


def run_side_by_side(names: list[str], data: Path, work: Path, minutes: float, poll: float) -> list[dict]:
    """All tuners' experiments at once, one trial each: whatever else loads the machine loads them alike, which
    wall-clock budgets run one after the other cannot promise on a shared machine."""
    runs: list[dict] = []
    try:
        for name in names:
            runs.append(start_tuner(name, data, work, minutes))
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < minutes * 60:
            for run in runs:
                run["curve"].append((elapsed, *best_so_far(work / run["tuner"] / run["experiment"])))
            time.sleep(poll)
        for run in runs:  # before the stop: a trial the stop interrupts would read as USER_CANCELED
            run["statuses"] = {t["trialJobId"]: t["status"] for t in NniRest(run["port"]).trials()}
    finally:
        for run in runs:
            stop(run["experiment"])
    return [finish_tuner(run, work, minutes) for run in runs]


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
    for result in results:
        points = [(t / 60, best) for t, best, _ in result["curve"] if best is not None]
        if points:
            axis.step(*zip(*points, strict=True), where="post", label=result["tuner"])
    axis.set(xlabel="minutes", ylabel="best validation macro-F1 so far", title="Search on the demo data (2 CPU cores)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget per tuner")
    parser.add_argument("--tuners", default="tpe,hyperband,random")
    parser.add_argument("--people", type=int, default=120, help="people of the generated demo data (7 photos each)")
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "search")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the data and the experiments' folders here (default: a temporary folder)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        work.mkdir(parents=True, exist_ok=True)
        data = generate(work / "demo", people=args.people, eval_images=100, seed=0)
        results = run_side_by_side(args.tuners.split(","), data, work, args.minutes, args.poll)
    write_json({"minutes": args.minutes, "epochs": EPOCHS, "trial_flags": TRIAL_FLAGS, "results": results},
               args.out / "search.json")
    plot(results, args.out / "search.png")
    print(f"\n{args.minutes:g} minutes, the tuners side by side, one trial each at a time\n")
    print("| tuner | trials started | stopped early | epochs trained | best val macro-F1 | "
          "ensemble --select val macro-F1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['tuner']} | {r['trials']} | {r['early_stopped']} | {r['epochs']} | {fmt(r['best_val_f1'])} | "
              f"{fmt(r['ensemble_val_f1'])} |")
    for r in results:  # which models the budget went to: what explains most of a table like this one
        by_model: dict[str, list] = {}
        for record in r["trial_records"]:
            by_model.setdefault(record["parameters"].get("model", "?"), []).append(record)
        print(f"{r['tuner']}: " + "; ".join(
            f"{model} {len(rs)} trials, {sum(x['epochs'] for x in rs)} epochs, best "
            f"{fmt(max((x['best_val_f1'] for x in rs if x['best_val_f1'] is not None), default=None))}"
            for model, rs in sorted(by_model.items())))
    print(f"\ncurve: {args.out / 'search.png'}")


if __name__ == "__main__":
    main()
