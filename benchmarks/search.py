"""Which tuner spends a fixed CPU budget best: TPE + Medianstop, TPE + ASHA, Hyperband and BOHB, repeated, on the
generated demo data and on a real photo set.

    python -m benchmarks.search [--minutes 15] [--repetitions 3] [--sets demo,face-mask]
        [--tuners tpe_medianstop,tpe_asha,hyperband,bohb] [--out bench_out/search] [--keep DIR]

Per repetition and data set, the tuners' experiments run side by side for the same wall-clock budget, one trial each
at a time (so that other load on the machine falls on all of them alike), with the same trial flags (18-class task
on the demo, the photo set's two classes, 64 px, the demo's small models, 6-epoch trials, one CPU thread per
trial). While they run, every run folder's metrics.jsonl is read every few seconds: the curve is the best
validation macro-F1 of any finished epoch against elapsed time, and the time to reach the data set's target is read
from it. At fixed budgets (a third, two thirds and all of the time) the ensemble's greedy --select (the same code
as `python -m ensemble --select`) runs on the soft CSVs that existed by then. Writes search.json (every experiment,
curve and trial), search.png (median curves with their spread; the ensemble at each budget) and prints the tables
(docs/search.md, "Which tuner: a measurement")."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import yaml

from benchmarks.common import ROOT
from harness.atomic import write_json
from harness.data.demo import generate
from harness.experiment.config import load_config, with_overrides
from harness.experiment.nnictl import free_port, start, stop
from harness.experiment.rest import NniRest

EPOCHS = 6  # a TPE trial's length; Hyperband's and BOHB's budgets run from 1 to 6 epochs (eta 3), ASHA's rungs 1, 3
TRIAL_FLAGS = ["--epochs", str(EPOCHS), "--img_size", "64", "--pretrained", "false", "--num_workers", "1",
               "--scheduler", "cosine", "--classification", "multi", "--dump_threshold", "0.5",
               "--metric", "val_f1", "--checkpoint", "none", "--tensorboard", "false",
               # four experiments' trials share the cores: one thread each instead of one per core each
               "--cpu_threads", "1"]
TUNERS = ("tpe_medianstop", "tpe_asha", "hyperband", "bohb")
# name -> (target validation macro-F1; the search space's keys left out: the task is fixed, and a photo set has no
# ages for --old_age). The demo data is generated; the photo set is laid out by harness/data/real_photos.py.
SETS = {"demo": (0.9, ("classification",)), "face-mask": (0.94, ("classification", "old_age"))}
BUDGET_SHARES = (1 / 3, 2 / 3, 1.0)
START_TRIES = 8
# NNI's manager gives its tuner process 10 s to connect, and on a saturated machine importing nni alone takes longer
# (docs/nni-traps.md): the benchmark raises its own priority by BOOST, which the NNI processes it starts inherit
# (they idle between commands), and starts every trial BOOST lower, back at normal priority. Needs root; without
# it the benchmark runs at normal priority and retries a start the tuner missed.
BOOST = 19


def tuner_config(name: str, space_keys: int) -> dict:
    """Each tuner as a user would run it from this project's configs, scaled to 6-epoch trials."""
    if name == "tpe_medianstop":
        config = load_config(ROOT / "config.yml")
        config["assessor"]["classArgs"]["start_step"] = 2  # of 6 epochs, as start_step 5 is of 30 in config.yml
    elif name == "tpe_asha":
        config = load_config(ROOT / "config.asha.yml")
        config["assessor"]["classArgs"].update(min_resource=1, max_resource=EPOCHS)  # rungs at 1 and 3 epochs
    elif name == "hyperband":
        config = load_config(ROOT / "config.hyperband.yml")
        config["tuner"]["classArgs"].update(R=EPOCHS, eta=3)
    elif name == "bohb":
        config = load_config(ROOT / "config.bohb.yml")
        config["tuner"]["classArgs"].update(min_budget=1, max_budget=EPOCHS, eta=3,
                                            min_points_in_model=space_keys + 1)
    else:
        raise SystemExit(f"unknown tuner {name!r}: expected {', '.join(TUNERS)}")
    return config


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


def start_tuner(name: str, data: Path, work: Path, minutes: float, set_name: str) -> dict | None:
    space = json.loads((ROOT / "search_space.demo.json").read_text())
    for key in SETS[set_name][1]:
        space.pop(key)
    folder = work / f"{set_name}-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "space.json").write_text(json.dumps(space))
    config = with_overrides(tuner_config(name, len(space)), ROOT, working_dir=folder, cpu=True,
                            trial_args=["--data_dir", str(data), "--cache_dir", str(work / "cache"), *TRIAL_FLAGS])
    # The trials back at normal priority (main() raised this process's, which NNI's processes inherit)
    config["trialCommand"] = f"nice -n {BOOST} " + config["trialCommand"]
    config.update(searchSpaceFile=str(folder / "space.json"), trialConcurrency=1, maxTrialNumber=10_000,
                  maxExperimentDuration=f"{int(minutes * 60) + 600}s")
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    for _ in range(START_TRIES):
        port = free_port()
        experiment = start(folder / "config.yml", port)
        if tuner_connected(folder / experiment / "log"):
            return {"tuner": name, "port": port, "experiment": experiment, "folder": folder, "curve": []}
        stop(experiment)
        print(f"{set_name} {name}: NNI's tuner did not connect within its 10 s (a loaded machine, "
              f"docs/nni-traps.md); starting it again", flush=True)
        time.sleep(20)
    print(f"{set_name} {name}: the tuner did not connect in {START_TRIES} starts: left out of this repetition",
          flush=True)
    return None


def tuner_connected(log_dir: Path, timeout: float = 120) -> bool:
    """Whether NNI's dispatcher started (dispatcher.log) before the manager gave up on it (nnimanager.log). The
    experiments start one at a time and each waits for its tuner, so that four tuners do not import NNI at once."""
    def failed() -> bool:
        manager = (log_dir / "nnimanager.log").read_text() if (log_dir / "nnimanager.log").is_file() else ""
        return "did not connect" in manager or "to: ERROR" in manager

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not failed():
        dispatcher = log_dir / "dispatcher.log"
        if dispatcher.is_file() and "Dispatcher started" in dispatcher.read_text():
            time.sleep(2)  # the manager's verdict may land just after the dispatcher's line
            return not failed()
        time.sleep(1)
    return False


def trial_records(folder: Path, statuses: dict[str, str]) -> list[dict]:
    """What each trial drew and reached: its model, the epochs it trained (a budget or a stop shows here), its best
    validation macro-F1 and NNI's last status for it."""
    records = []
    for params_file in sorted(folder.glob("*/params.json")):
        params = json.loads(params_file.read_text())
        scores = []
        metrics = params_file.parent / "metrics.jsonl"
        for line in (metrics.read_text().splitlines() if metrics.is_file() else []):
            try:
                scores.append(json.loads(line).get("val_f1"))
            except ValueError:
                continue  # the line a stopped trial was writing
        scores = [s for s in scores if s is not None]
        records.append({"trial": params.get("trial_id"), "status": statuses.get(params.get("trial_id"), "?"),
                        "parameters": params.get("nni_parameters", {}), "epochs": len(scores),
                        "best_val_f1": max(scores, default=None)})
    return records


def ensemble_by(experiment: Path, cutoff: float) -> float | None:
    """The ensemble's --select validation macro-F1 over the soft CSVs written before `cutoff` (a time.time()), as
    harness/report/selection.py computes it for the whole experiment (the mean over tasks when there are several)."""
    from harness.errors import UserError
    from harness.report.selection import select

    def written_by_then(member) -> bool:
        valid = member.path.with_name(member.path.name.replace("submission", "valid", 1))
        return member.path.stat().st_mtime <= cutoff and valid.is_file()

    runs = sorted(p.parent for p in experiment.glob("*/params.json"))
    try:
        return statistics.mean(s.score for s in select(runs, "macro_f1", keep=written_by_then))
    except (UserError, OSError):  # none yet, or a run folder being written when the budget ended
        return None


def time_to(curve: list, target: float) -> float | None:
    """Seconds until the best score so far reached `target`; None when it never did."""
    return next((t for t, best, _ in curve if best is not None and best >= target), None)


def finish_tuner(run: dict, minutes: float, target: float) -> dict:
    folder = run["folder"] / run["experiment"]
    _, best, epochs = run["curve"][-1]  # at the end of its budget, before its stop
    records = trial_records(folder, run["statuses"])
    ensembles = {f"{share:.2f}": ensemble_by(folder, run["began_at"] + share * minutes * 60)
                 for share in BUDGET_SHARES}
    stops = folder / "log" / "assessor_stops.jsonl"
    return {"tuner": run["tuner"], "experiment": run["experiment"], "trials": len(run["statuses"]),
            "epochs": epochs,
            # Read before the benchmark's own stop: a cancelled trial is one the assessor stopped (NNI 3.0's local
            # service shows those USER_CANCELED, docs/trial.md "Stopping").
            "early_stopped": sum(r["status"] in ("EARLY_STOPPED", "USER_CANCELED") for r in records),
            "asha_stops": len(stops.read_text().splitlines()) if stops.is_file() else None,
            "best_val_f1": best, "seconds_to_target": time_to(run["curve"], target), "ensemble_val_f1": ensembles,
            "curve": run["curve"], "trial_records": records}


def run_side_by_side(names: list[str], data: Path, work: Path, minutes: float, poll: float, set_name: str) -> list:
    """All tuners' experiments at once, one trial each: whatever else loads the machine loads them alike, which
    wall-clock budgets run one after the other cannot promise on a shared machine. Each one's clock starts when its
    tuner is up (the starts are one at a time) and each is stopped when its own budget is spent."""
    runs: list[dict] = []
    budget = minutes * 60
    try:
        for name in names:
            started = start_tuner(name, data, work, minutes, set_name)
            if started is not None:
                runs.append({**started, "began": time.monotonic(), "began_at": time.time()})
        while not all(run.get("statuses") is not None for run in runs):
            for run in (run for run in runs if run.get("statuses") is None):
                elapsed = time.monotonic() - run["began"]
                run["curve"].append((min(elapsed, budget), *best_so_far(run["folder"] / run["experiment"])))
                if elapsed >= budget:  # statuses before the stop: a trial it interrupts reads as USER_CANCELED
                    run["statuses"] = {t["trialJobId"]: t["status"] for t in NniRest(run["port"]).trials()}
                    stop(run["experiment"])
            time.sleep(poll)
    finally:
        for run in runs:
            if run.get("statuses") is None:
                stop(run["experiment"])
    return [finish_tuner(run, minutes, SETS[set_name][0]) for run in runs]


def spread(values: list) -> str:
    """'median (min-max)' of the numbers; 'n/a' when none; '(k of n)' when some are missing."""
    found = [v for v in values if v is not None]
    if not found:
        return "n/a"
    text = f"{statistics.median(found):.3f} ({min(found):.3f}-{max(found):.3f})"
    return text + (f" [{len(found)} of {len(values)}]" if len(found) < len(values) else "")


def minutes_spread(values: list) -> str:
    found = [v / 60 for v in values if v is not None]
    if not found:
        return f"not reached (0 of {len(values)})"
    text = f"{statistics.median(found):.1f} ({min(found):.1f}-{max(found):.1f})"
    return text + (f" [reached in {len(found)} of {len(values)}]" if len(found) < len(values) else "")


def table(results: list[dict], set_name: str) -> str:
    """One markdown table of a data set: medians and spreads over the repetitions, per tuner."""
    target = SETS[set_name][0]
    lines = [f"| tuner | time to val macro-F1 {target} (min) | best val macro-F1 | ensemble at 1/3 | at 2/3 | "
             f"at the end | trials | stopped early |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for tuner in dict.fromkeys(r["tuner"] for r in results):
        mine = [r for r in results if r["tuner"] == tuner]
        ensembles = [spread([r["ensemble_val_f1"][f"{share:.2f}"] for r in mine]) for share in BUDGET_SHARES]
        lines.append(f"| {tuner} | {minutes_spread([r['seconds_to_target'] for r in mine])} | "
                     f"{spread([r['best_val_f1'] for r in mine])} | {' | '.join(ensembles)} | "
                     f"{statistics.median(r['trials'] for r in mine):g} | "
                     f"{statistics.median(r['early_stopped'] for r in mine):g} |")
    return "\n".join(lines)


def plot(results: list[dict], minutes: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sets = list(dict.fromkeys(r["set"] for r in results))
    figure, axes = plt.subplots(len(sets), 2, figsize=(12, 4 * len(sets)), dpi=100, squeeze=False)
    grid = np.linspace(0, minutes * 60, 121)
    for row, set_name in zip(axes, sets):
        mine = [r for r in results if r["set"] == set_name]
        for i, tuner in enumerate(dict.fromkeys(r["tuner"] for r in mine)):
            colour = f"C{i}"
            curves = np.array([[next((b for t, b, _ in reversed(r["curve"]) if t <= x and b is not None), np.nan)
                                for x in grid] for r in mine if r["tuner"] == tuner])
            with warnings.catch_warnings():  # a tuner with no score yet at a moment: a gap in its line
                warnings.simplefilter("ignore", RuntimeWarning)
                low, mid, high = (np.nanmin(curves, 0), np.nanmedian(curves, 0), np.nanmax(curves, 0))
            row[0].step(grid / 60, mid, where="post", color=colour, label=tuner)
            row[0].fill_between(grid / 60, low, high, step="post", color=colour, alpha=0.15)
            values = [[r["ensemble_val_f1"][f"{s:.2f}"] for r in mine if r["tuner"] == tuner] for s in BUDGET_SHARES]
            medians = [statistics.median([v for v in vs if v is not None]) if any(v is not None for v in vs)
                       else np.nan for vs in values]
            x = np.array(BUDGET_SHARES) * minutes + (i - 1.5) * minutes / 60
            row[1].plot(x, medians, "o-", color=colour, label=tuner)
            for xi, vs in zip(x, values):
                found = [v for v in vs if v is not None]
                if found:
                    row[1].vlines(xi, min(found), max(found), color=colour, alpha=0.6)
        row[0].axhline(SETS[set_name][0], color="grey", linestyle=":", linewidth=1)
        row[0].set(xlabel="minutes", ylabel="best validation macro-F1 so far",
                   title=f"{set_name}: best epoch so far (median, band: min-max of "
                         f"{len({r['repetition'] for r in mine})} runs)")
        row[1].set(xlabel="minutes (budget)", ylabel="ensemble --select validation macro-F1",
                   title=f"{set_name}: the ensemble at fixed budgets (median, bar: min-max)")
        for axis in row:
            axis.grid(alpha=0.3)
            axis.legend(fontsize=9)
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget per experiment")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--tuners", default=",".join(TUNERS))
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--photo_dir", type=Path, default=ROOT / "data" / "real" / "face-mask",
                        help="the face-mask photo set (python -m harness.data.real_photos --set face-mask)")
    parser.add_argument("--people", type=int, default=120, help="people of the generated demo data (7 photos each)")
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "search")
    parser.add_argument("--replot", action="store_true",
                        help="only draw search.png and print the tables again from --out's search.json")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the data and the experiments' folders here (default: a temporary folder)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        os.nice(-BOOST)
    except OSError:
        print(f"note: not allowed to raise this process's priority by {BOOST}: NNI's tuners may miss their 10 s on "
              f"a loaded machine (each start is tried {START_TRIES} times)", flush=True)
    if args.replot:
        saved = json.loads((args.out / "search.json").read_text())
        return summarise(saved["results"], saved["minutes"], args.out)
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        work.mkdir(parents=True, exist_ok=True)
        data = {name: args.photo_dir if name == "face-mask" else
                generate(work / "demo", people=args.people, eval_images=100, seed=0) for name in args.sets.split(",")}
        for repetition in range(1, args.repetitions + 1):
            for set_name, folder in data.items():  # alternating: the machine's load drifts over both alike
                found = run_side_by_side(args.tuners.split(","), folder, work / f"rep{repetition}", args.minutes,
                                         args.poll, set_name)
                results += [{**r, "set": set_name, "repetition": repetition} for r in found]
                write_json({"minutes": args.minutes, "epochs": EPOCHS, "trial_flags": TRIAL_FLAGS,
                            "targets": {name: SETS[name][0] for name in data}, "results": results},
                           args.out / "search.json")
                print(f"repetition {repetition}, {set_name}: " + "; ".join(
                    f"{r['tuner']} best {r['best_val_f1']}" for r in found), flush=True)
    summarise(results, args.minutes, args.out)


def summarise(results: list[dict], minutes: float, out: Path) -> None:
    plot(results, minutes, out / "search.png")
    for set_name in dict.fromkeys(r["set"] for r in results):
        mine = [r for r in results if r["set"] == set_name]
        print(f"\n{set_name}, {minutes:g} minutes, {len({r['repetition'] for r in mine})} repetitions, the tuners "
              f"side by side\n")
        print(table(mine, set_name))
    print(f"\ncurves: {out / 'search.png'}")


if __name__ == "__main__":
    main()
