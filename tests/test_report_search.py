"""The report's search views: importance (Optuna's evaluators over the trials' own records), parallel coordinates,
score against inference time (the Pareto front), ASHA's rungs and stops, and the comparison of experiments."""
from __future__ import annotations

import datetime
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from test_report import Tables, by_trial, report

from harness.experiment.rungs import STATE, Rungs, stop_reason
from harness.experiment.stops import STOPS_FILE, record_stop
from harness.report.compare import curve, read_side
from harness.report.importance import importance
from harness.report.pareto import pareto_front
from harness.report.runs import read_experiment

START = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.UTC)


def write_trial(exp: Path, trial: str, params: dict, scores: list[float], ms: float | None = None,
                minutes: float = 0.0, task: str = "multi") -> Path:
    """A run folder: params.json with the tuned `params`, one epoch per score (ended a minute apart from
    `minutes` after START), and cost.json when `ms` is given."""
    folder = exp / f"{task}_{trial}"
    folder.mkdir(parents=True)
    chosen = {"classification": task, **params}
    (folder / "params.json").write_text(json.dumps({**chosen, "epochs": len(scores), "trial_id": trial,
                                                    "model": params.get("model", "resnet18"),
                                                    "nni_parameters": chosen}))
    records = [{"epoch": i + 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": s, "val_f1": s,
                "lr": 0.001, "seconds": 60.0, "dumped": False,
                "ended_at": (START + datetime.timedelta(minutes=minutes + i + 1)).isoformat()}
               for i, s in enumerate(scores)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if ms is not None:
        (folder / "cost.json").write_text(json.dumps({"ms_per_image": ms, "parameters": int(ms * 1e6),
                                                      "device": "cpu"}))
    return folder


def lr_experiment(root: Path, name: str = "Exp1abcd", trials: int = 12) -> Path:
    """The score follows the learning rate; the batch size is noise."""
    exp = root / name
    rng = np.random.default_rng(0)
    for i in range(trials):
        lr = float(10 ** rng.uniform(-4, -2))
        batch = int(rng.choice([16, 32]))
        score = 0.9 - 0.15 * abs(np.log10(lr) + 3) + rng.normal(0, 0.002)
        write_trial(exp, f"t{i:02d}", {"lr": lr, "batch_size": batch}, [score - 0.1, score], ms=1.0 + i % 4,
                    minutes=2 * i)
    return exp


def test_importance_finds_the_hyperparameter_that_moves_the_score(tmp_path):
    runs = read_experiment(lr_experiment(tmp_path)).runs
    found = importance(runs, ["batch_size", "lr"], "val_acc", "multi")
    assert found.trials == 12 and set(found.by_evaluator) == {"fANOVA", "PED-ANOVA"}
    for values in found.by_evaluator.values():
        assert values["lr"] > values["batch_size"]
        assert sum(values.values()) == pytest.approx(1.0)
    assert importance(runs, ["batch_size", "lr"], "val_acc", "multi") == found  # seeded: the same numbers again


def test_too_few_trials_have_no_importance(tmp_path):
    runs = read_experiment(lr_experiment(tmp_path, trials=4)).runs
    assert importance(runs, ["batch_size", "lr"], "val_acc", "multi") is None


@pytest.mark.parametrize("pairs, front", [
    ([(0.9, 2.0), (0.8, 1.0), (0.7, 3.0), (0.95, 5.0)], [1, 0, 3]),  # (0.7, 3 ms) is beaten by (0.9, 2 ms)
    ([(0.8, 1.0), (0.8, 1.0)], [0]),                                 # equal pairs: the first
    ([(0.8, 1.0), (0.9, 1.0)], [1]),                                 # same time: the higher score
    ([], []),
])
def test_the_pareto_front(pairs, front):
    assert pareto_front(pairs) == front


def test_the_page_shows_importance_parallel_coordinates_and_the_pareto_front(tmp_path, capsys):
    exp = lr_experiment(tmp_path)
    code, stdout, err = report([exp], capsys)
    assert code == 0, err
    html = (exp / "report" / "report.html").read_text()
    figures = {p.name for p in (exp / "report" / "figures").iterdir()}
    assert {"importance_multi.png", "parallel_multi.png", "pareto_multi.png"} <= figures
    for heading in ("Which hyperparameters mattered", "Parallel coordinates", "Score against inference time"):
        assert f"<h2>{heading}</h2>" in html
    tables = Tables(html).tables
    importance_table = next(t for t in tables if t[0][:3] == ["hyperparameter", "fANOVA", "PED-ANOVA"])
    assert importance_table[1][0] == "lr"  # most important first
    front = next(t for t in tables if t[0][:1] == ["trial"] and "ms / image" in t[0])
    ms = [float(row[3]) for row in front[1:]]
    assert ms == sorted(ms) and ms[0] == 1.0  # fastest first, and the fastest trial is on the front
    rows = by_trial(html)
    assert rows["t00"]["ms/img"] == "1.000" and rows["t00"]["params"] == "1.00M"


def test_asha_rungs_and_stops_are_shown(tmp_path, capsys):
    exp = lr_experiment(tmp_path)
    rungs = Rungs(3, [1, 3])
    rungs.advance("t00", [0.8])
    rungs.advance("t01", [0.2])
    (exp / "checkpoint").mkdir()
    (exp / "checkpoint" / STATE).write_text(json.dumps(rungs.to_dict()))
    (exp / "log").mkdir()
    for stop in rungs.stops:  # as the Asha assessor records them (harness/experiment/assessors.py)
        record_stop(exp / "log" / STOPS_FILE, stop["trial"], stop["step"], stop_reason(stop), stop)
    record_stop(exp / "log" / STOPS_FILE, "t02", 2, "Medianstop at step 2")  # another assessor's: not ASHA's table
    with (exp / "log" / STOPS_FILE).open("a") as handle:
        handle.write("not json\n")
    assert report([exp], capsys)[0] == 0
    html = (exp / "report" / "report.html").read_text()
    assert "<h2>Early stopping</h2>" in html and "<h3>1 stop</h3>" in html
    rung_table = next(t for t in Tables(html).tables if t[0][0] == "rung (epochs)")
    assert rung_table[1] == ["1", "2", "1", "0.8000", "0.8000"] and rung_table[2][:3] == ["3", "0", "0"]
    assert by_trial(html)["t01"]["status"].endswith("ASHA's 1-epoch rung")


def nni_profile(exp: Path, tuner: dict, assessor: dict | None = None) -> None:
    """NNI's database as the manager leaves it: the profile's params are the config it ran."""
    (exp / "db").mkdir()
    with sqlite3.connect(exp / "db" / "nni.sqlite") as db:
        db.execute("CREATE TABLE ExperimentProfile (params text, id text, execDuration integer, startTime integer, "
                   "endTime integer, logDir text, nextSequenceId integer, revision integer)")
        config = {"tuner": tuner, **({"assessor": assessor} if assessor else {})}
        db.execute("INSERT INTO ExperimentProfile VALUES (?, ?, 0, ?, NULL, '', 0, 1)",
                   (json.dumps(config), exp.name, int(START.timestamp() * 1000)))


def test_comparing_two_experiments(tmp_path, capsys):
    first = lr_experiment(tmp_path, "ExpAsha1")
    nni_profile(first, {"className": "harness.experiment.tuners.TPE"},
                {"className": "harness.experiment.assessors.Asha"})
    second = tmp_path / "ExpHyper2"
    write_trial(second, "h1", {"lr": 0.001, "batch_size": 16}, [0.5, 0.95], minutes=30)
    nni_profile(second, {"name": "Hyperband"})
    code, stdout, err = report([first, second], capsys)
    assert code == 0, err
    page = tmp_path / "comparison-ExpAsha1-ExpHyper2" / "report.html"
    assert f"wrote {page} (2 experiments, 1 pictures" in stdout
    html = page.read_text()
    summary, side_by_side = Tables(html).tables
    assert [row[1] for row in summary[1:]] == ["TPE + Asha", "Hyperband"]
    assert summary[1][2] == "NNI's profile (db/nni.sqlite)"
    assert summary[2][6:9] == ["0.9500", "h1", "32.0"]  # its second epoch ended 32 minutes after the start
    assert side_by_side[0][1:] == ["ExpAsha1 (TPE + Asha)", "ExpHyper2 (Hyperband)"]
    assert side_by_side[1][2].startswith("0.9500 h1") and side_by_side[2][2] == "—"
    assert len(Tables(html).images) == 1


def test_the_curve_is_the_best_so_far_from_the_start(tmp_path):
    exp = tmp_path / "ExpC"
    write_trial(exp, "a", {"lr": 0.001}, [0.5, 0.7])           # epochs end at 1 and 2 minutes
    write_trial(exp, "b", {"lr": 0.002}, [0.6, 0.65], minutes=1.5)  # at 2.5 and 3.5 minutes
    nni_profile(exp, {"name": "TPE"})
    assert curve(read_side(read_experiment(exp)), "val_acc", "multi") == [(60.0, 0.5), (120.0, 0.7), (210.0, 0.7)]


@pytest.mark.parametrize("extra, needle", [([], "given twice"), (["--select"], "--select is for one experiment")])
def test_comparison_misuse_is_one_line(tmp_path, capsys, extra, needle):
    exp = lr_experiment(tmp_path)
    other = lr_experiment(tmp_path, "Other123", trials=2) if extra else exp
    code, _, err = report([exp, other, *extra], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
