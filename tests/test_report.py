"""python -m harness.report: the page's content (trials, statuses, best epochs, members, --select), its pictures,
its errors, and that it never writes into run folders. Hand-made run folders for the cases, two real trials for
the end-to-end run."""
from __future__ import annotations

import ast
import base64
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from ensemble.tasks import labels_for_task
from ensemble_helpers import noisy_probs, write_soft
from ensemble_helpers import run_cli as run_ensemble
from harness.outputs.soft_csv import soft_csv_names
from harness.report.__main__ import PROG, main

ROOT = Path(__file__).resolve().parents[1]
EVAL_IDS = [f"{i:05d}.jpg" for i in range(6)]
VALID_IDS = [f"{i // 7:06d}_female_Asian_30/mask{i % 7}.jpg" for i in range(70)]
CLASSES = {"mask": 3, "gender": 2, "age": 3, "multi": 18}
PNG = b"\x89PNG\r\n\x1a\n"


def write_run(exp: Path, trial: str, task: str, model: str, lr: float, batch_size: int, epochs: int,
              scores: list[tuple[float, float]], dumps: dict[int, float], multi_labels: np.ndarray, seed: int,
              stopped_after: int | None = None) -> Path:
    """A run folder as trial.py leaves it under NNI: params.json, metrics.jsonl (scores: (val_acc, val_f1) per
    epoch), the soft-CSV pair of each dumped epoch (dumps: epoch -> how well its validation CSV predicts)."""
    rng = np.random.default_rng(seed)
    folder = exp / f"{task}_{model}_{batch_size}_focal_{lr:.3g}_{trial}"
    folder.mkdir(parents=True)
    chosen = {"classification": task, "model": model, "lr": lr, "batch_size": batch_size, "criterion": "focal"}
    params = {**chosen, "epochs": epochs, "optimizer": "adam", "seed": 42, "img_size": 224, "data_dir": "/data",
              "experiment_id": exp.name, "trial_id": trial, "num_classes": CLASSES[task], "nni_parameters": chosen}
    (folder / "params.json").write_text(json.dumps(params))
    records = []
    for epoch, (acc, f1) in enumerate(scores, start=1):
        train_acc, train_loss = 0.5 + 0.1 * epoch, 1.0 / epoch
        records.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": 1.2 / epoch,
                        "val_acc": acc, "val_f1": f1, "lr": lr, "train_images_per_s": 80.0,
                        "dumped": epoch in dumps, "seconds": 12.5})
        if epoch in dumps:
            eval_name, valid_name = soft_csv_names(epoch, train_acc, train_loss)
            k = CLASSES[task]
            write_soft(folder / valid_name, VALID_IDS,
                       noisy_probs(rng, labels_for_task(multi_labels, "multi", task), k, dumps[epoch]),
                       labels_for_task(multi_labels, "multi", task))
            write_soft(folder / eval_name, EVAL_IDS, noisy_probs(rng, rng.integers(0, k, 6), k, 1.0))
    if records:
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if stopped_after is not None:
        (folder / "stopped.json").write_text(json.dumps({"stopped": True, "signal": "SIGTERM", "checkpoint": "last.pt",
                                                         "last_completed_epoch": stopped_after}))
    return folder


def experiment(root: Path) -> Path:
    """Five trials of three tasks (mask, age, and an 18-class multi that votes in every task): one of each status,
    and NNI's own folders beside them."""
    exp = root / "Xy12abCd"
    labels = np.random.default_rng(0).integers(0, 18, size=len(VALID_IDS))
    write_run(exp, "tA", "mask", "resnet18", 1e-3, 16, 3, [(.6, .5), (.8, .6), (.7, .75)], {1: 1.0, 3: 2.5},
              labels, 1)
    write_run(exp, "tB", "mask", "ecaresnet50t", 1e-4, 32, 5, [(.55, .5), (.65, .6)], {2: 1.5}, labels, 2,
              stopped_after=2)
    write_run(exp, "tC", "multi", "resnet18", 1e-4, 8, 4, [(.3, .2), (.4, .3)], {2: 3.0}, labels, 3)
    write_run(exp, "tD", "age", "resnet18", 3e-4, 16, 3, [], {}, labels, 4)
    write_run(exp, "tE", "age", "ecaresnet50t", 1e-3, 16, 2, [(.7, .6), (.9, .85)], {1: 2.0}, labels, 5)
    for sub in ("trials/AbC12", "db", "log"):
        (exp / sub).mkdir(parents=True)
    (exp / "db" / "nni.sqlite").write_bytes(b"\x00SQLite")
    return exp


def report(argv: list, capsys) -> tuple[int, str, str]:
    """The CLI in-process, as `python -m harness.report` runs it: (exit status, stdout, stderr)."""
    from harness.cli import run_cli

    try:
        run_cli(lambda: main([str(a) for a in argv]), PROG)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return int(code or 0), captured.out, captured.err


class Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts; and every <img> src."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data + " ")


def by_trial(html: str) -> dict[str, dict[str, str]]:
    """The trials table (the page's first) as {trial id: {column: text}}."""
    header, *rows = Tables(html).tables[0]
    return {row[1].split()[0]: dict(zip(header, row)) for row in rows}


def test_the_table_shows_each_trials_best_epoch_scores_dumps_and_status(tmp_path, capsys):
    exp = experiment(tmp_path)
    code, stdout, err = report([exp], capsys)
    assert code == 0, err
    page = exp / "report" / "report.html"
    assert f"wrote {page} (5 trials, 5 pictures" in stdout
    html = page.read_text()
    rows = by_trial(html)
    assert list(rows) == ["tE", "tA", "tB", "tC", "tD"]  # best val_acc first, the trial without epochs last
    expected = {"task": "mask", "status": "succeeded", "epochs": "3/3", "best epoch": "2", "val acc": "0.8000",
                "val macro-F1": "0.6000", "dumps": "2 (epochs 1, 3)", "model": "resnet18", "lr": "0.001",
                "batch_size": "16"}
    assert {column: rows["tA"].get(column) for column in expected} == expected
    assert (rows["tB"]["status"], rows["tB"]["epochs"], rows["tB"]["best epoch"]) == (
        "stopped at epoch 2 (SIGTERM)", "2/5", "2")
    assert (rows["tC"]["status"], rows["tC"]["dumps"]) == ("running/incomplete", "1 (epoch 2)")
    assert (rows["tD"]["status"], rows["tD"]["best epoch"], rows["tD"]["val acc"]) == (
        "failed before first epoch", "—", "—")
    assert rows["tE"]["val acc"] == "0.9000" and rows["tE"]["status"] == "succeeded"
    assert "criterion" not in rows["tA"]  # the same in every trial: listed once, not as a column
    assert "<code>criterion</code> focal" in html
    assert "5 trials: 2 succeeded, 1 stopped, 1 running/incomplete, 1 failed before first epoch" in html
    assert "Best val_acc: 0.9000, trial tE (age, ecaresnet50t) at epoch 2." in html


def test_val_f1_picks_another_best_epoch(tmp_path, capsys):
    exp = experiment(tmp_path)
    assert report([exp, "--metric", "val_f1", "-o", tmp_path / "f1.html"], capsys)[0] == 0
    rows = by_trial((tmp_path / "f1.html").read_text())
    assert (rows["tA"]["best epoch"], rows["tA"]["val acc"], rows["tA"]["val macro-F1"]) == ("3", "0.7000", "0.7500")
    assert (tmp_path / "figures" / "hyperparameters.png").is_file()  # beside -o


def test_members_per_task_list_every_dump_with_its_epochs_scores(tmp_path, capsys):
    exp = experiment(tmp_path)
    assert report([exp], capsys)[0] == 0
    html = (exp / "report" / "report.html").read_text()
    tables = Tables(html).tables
    headings = re.findall(r"<h3>(\w+): (\d+) dumps?</h3>", html)
    assert headings == [("mask", "3"), ("age", "1"), ("multi", "1")]
    mask = tables[1]  # trials, then one members table per task with dumps
    assert [row[0].split()[0] for row in mask[1:]] == [  # best val_acc first
        "submission3_0.8000_0.3333_soft.csv", "submission2_0.7000_0.5000_soft.csv",
        "submission1_0.6000_1.0000_soft.csv"]
    assert mask[1][2:5] == ["3", "0.7000", "0.7500"] and mask[1][-1] == "eval + valid"
    assert "mask_ecaresnet50t_32_focal_0.0001_tB" in mask[2][0]


def test_every_picture_is_an_embedded_png_and_a_file_beside_the_page(tmp_path, capsys):
    exp = experiment(tmp_path)
    assert report([exp], capsys)[0] == 0
    html = (exp / "report" / "report.html").read_text()
    sources = Tables(html).images
    files = sorted((exp / "report" / "figures").iterdir())
    assert [f.name for f in files] == ["curves_age.png", "curves_mask.png", "curves_multi.png", "hyperparameters.png",
                                       "parallel_mask.png"]  # the only task with two scored trials
    embedded = []
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        embedded.append(base64.b64decode(source.split(",", 1)[1], validate=True))
    assert all(png.startswith(PNG) for png in embedded)
    assert sorted(embedded) == sorted(f.read_bytes() for f in files)  # the page shows exactly the files
    for name in (f.name for f in files):
        assert f'href="figures/{name}"' in html
    from PIL import Image

    with Image.open(exp / "report" / "figures" / "hyperparameters.png") as picture:
        assert picture.width >= 1000  # four hyperparameters side by side, each readable
    assert not list((exp / "report").rglob(".*.tmp"))


@pytest.mark.parametrize("metric", [None, "accuracy"], ids=["defaults", "accuracy"])
def test_select_shows_what_the_ensemble_chooses(tmp_path, capsys, metric):
    """Both defaults select by macro_f1; --select_metric takes the ensemble's --metric names; the page names it."""
    exp = experiment(tmp_path)
    chosen_metric = ["--select_metric", metric] if metric else []
    code, _, err = report([exp, "--select", "--rounds", "10", *chosen_metric], capsys)
    assert code == 0, err
    html = (exp / "report" / "report.html").read_text()
    code, stdout, _ = run_ensemble(["--from", exp, "--select", "--rounds", "10",
                                    *(["--metric", metric] if metric else []), "-o", tmp_path / "sub.csv"], capsys)
    assert code == 0
    name = metric or "macro_f1"
    assert f"by validation <b>{name}</b>" in html and f"--select --metric {name}</code>" in html
    expected = re.findall(rf"^(\w+): ensemble {name} ([\d.]+) vs best single ([\d.]+)", stdout, re.M)
    assert [task for task, _, _ in expected] == ["mask", "gender", "age"]
    shown = re.findall(rf"<h3>(\w+): ensemble {name} ([\d.]+), best single ([\d.]+)</h3>", html)
    assert shown == expected
    section = html.split("Ensemble selection (--select)")[1]
    chosen = [(row[0].split()[1], row[2]) for table in Tables(section).tables for row in table[1:]]
    picks = re.findall(r"^\s+(\d+)/(\d+)\s+([^/\s]+)/", stdout, re.M)
    assert chosen == [(run, f"{count}/{rounds}") for count, rounds, run in picks]
    assert "multi (marginals)" in section  # the multi run votes on the gender task
    assert (exp / "report" / "figures" / "selection.png").read_bytes().startswith(PNG)

    assert report([exp], capsys)[0] == 0  # without --select, the old selection picture goes too
    assert not (exp / "report" / "figures" / "selection.png").exists()


def test_select_keeps_only_the_members_it_is_told(tmp_path):
    """select(keep=...) chooses among the members the filter keeps (benchmarks.search: the CSVs written by a time):
    without tA's CSVs, no mask member it chose is tA's; keeping none is the ensemble's one-line error."""
    from harness.errors import UserError
    from harness.report.selection import select

    exp = experiment(tmp_path)
    runs = sorted(p.parent for p in exp.glob("*/params.json"))
    every = {s.task: s for s in select(runs, "macro_f1")}
    without = {s.task: s for s in select(runs, "macro_f1", keep=lambda m: not m.path.parent.name.endswith("tA"))}
    assert any(c.run.endswith("tA") for c in every["mask"].chosen)
    assert not any(c.run.endswith("tA") for s in without.values() for c in s.chosen)
    assert without["mask"].candidates < every["mask"].candidates
    with pytest.raises(UserError, match="--select: no dumped eval soft CSVs"):
        select(runs, "macro_f1", keep=lambda m: False)


def test_a_bad_run_folder_is_skipped_and_named_on_the_page(tmp_path, capsys):
    exp = experiment(tmp_path)
    (exp / "mask_ecaresnet50t_32_focal_0.0001_tB" / "params.json").write_text("{oops")
    metrics = exp / "age_ecaresnet50t_16_focal_0.001_tE" / "metrics.jsonl"
    metrics.write_text(metrics.read_text().splitlines()[0] + "\n{\"val_acc\": 0.5}\n")
    code, _, err = report([exp], capsys)
    assert code == 0
    html = (exp / "report" / "report.html").read_text()
    assert sorted(by_trial(html)) == ["tA", "tC", "tD"]
    notes = re.search(r'<div class="notes">(.*?)</div>', html, re.S).group(1)
    assert "skipped mask_ecaresnet50t_32_focal_0.0001_tB" in notes and "unreadable params.json" in notes
    assert f"{metrics} line 2: expected one JSON object with an integer &#x27;epoch&#x27; per line" in notes
    assert "2 run folders skipped" in html
    assert err.count(f"{PROG}: warning: skipped") == 2


def bad_metric_value(root: Path) -> Path:
    exp = experiment(root)
    for metrics in exp.glob("*/metrics.jsonl"):
        metrics.write_text('{"epoch": 1, "val_acc": "high"}\n')
    (exp / "age_resnet18_16_focal_0.0003_tD" / "params.json").write_text('{"classification": "mask", "epochs": 0}')
    return exp


@pytest.mark.parametrize("setup, needles", [
    (lambda root: root / "nowhere", ["nowhere: folder not found (expected an experiment folder"]),
    (lambda root: (root / "empty").mkdir() or root / "empty",
     ["empty: no run folders in it (expected folders holding params.json"]),
    (lambda root: experiment(root) / "mask_resnet18_16_focal_0.001_tA",
     ["tA: a run folder (it holds params.json); give its experiment folder"]),
    (bad_metric_value, ["no run folder could be read; the first:", "metrics.jsonl line 1: 'val_acc' is 'high', "
                        "expected a number or null"]),
])
def test_unusable_input_ends_with_one_line_and_writes_nothing(tmp_path, capsys, setup, needles):
    target = setup(tmp_path)
    code, _, err = report([target, "-o", tmp_path / "out" / "report.html"], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"{PROG}: error: "), err
    for needle in needles:
        assert needle in err
    assert not (tmp_path / "out").exists()


def test_a_bad_params_json_says_what_was_expected(tmp_path, capsys):
    exp = experiment(tmp_path)
    (exp / "age_resnet18_16_focal_0.0003_tD" / "params.json").write_text('{"classification": "shoes", "epochs": 3}')
    assert report([exp], capsys)[0] == 0
    assert ("'classification' is 'shoes', expected one of mask, gender, age, multi"
            in (exp / "report" / "report.html").read_text().replace("&#x27;", "'"))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file() and "report" not in p.relative_to(folder).parts}


def test_the_report_never_writes_into_run_folders(tmp_path, capsys):
    exp = experiment(tmp_path)
    before = snapshot(exp)
    assert report([exp, "--select"], capsys)[0] == 0
    assert snapshot(exp) == before
    run = exp / "mask_resnet18_16_focal_0.001_tA"
    code, _, err = report([exp, "-o", run / "sub" / "report.html"], capsys)
    assert code == 2 and "inside the run folder" in err and "never writes into run folders" in err
    assert not (run / "sub").exists() and snapshot(exp) == before


def test_user_strings_are_escaped(tmp_path, capsys):
    exp = experiment(tmp_path)
    params_path = exp / "mask_resnet18_16_focal_0.001_tA" / "params.json"
    params = json.loads(params_path.read_text())
    params["model"] = params["nni_parameters"]["model"] = "<img src=x onerror=alert(1)>"
    params_path.write_text(json.dumps(params))
    assert report([exp], capsys)[0] == 0
    html = (exp / "report" / "report.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_only_the_selection_module_of_harness_imports_ensemble():
    """ensemble/ is built on harness/: the one arrow back up is harness/report/selection.py, loaded for --select."""
    offenders = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                       [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(m.split(".")[0] == "ensemble" for m in modules):
                offenders.append(path.relative_to(ROOT).as_posix())
    assert sorted(set(offenders)) == ["harness/report/selection.py"]


FAST = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8", "--lr", "0.003",
        "--num_workers", "0", "--epochs", "2", "--dump_threshold", "0", "--tensorboard", "false",
        "--checkpoint", "none"]


def test_end_to_end_on_two_real_trials(demo_dir, tmp_path):
    output = tmp_path / "runs"
    for task, lr in (("mask", "0.003"), ("multi", "0.001")):  # lr differs: a hyperparameter to plot
        done = subprocess.run([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(demo_dir), "--output_dir",
                               str(output), "--classification", task, *FAST, "--lr", lr], capture_output=True,
                              text=True, cwd=ROOT, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    exp = output / "standalone"
    done = subprocess.run([sys.executable, "-m", "harness.report", str(exp), "--select", "--metric", "val_f1"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    html = (exp / "report" / "report.html").read_text()
    rows = by_trial(html)
    assert len(rows) == 2
    for run in sorted(p for p in exp.iterdir() if (p / "params.json").is_file()):
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        best = max(records, key=lambda r: r["val_f1"])
        row = rows[json.loads((run / "params.json").read_text())["trial_id"]]
        assert (row["status"], row["epochs"], row["best epoch"]) == ("succeeded", "2/2", str(best["epoch"]))
        assert (row["val acc"], row["val macro-F1"]) == (f"{best['val_acc']:.4f}", f"{best['val_f1']:.4f}")
        assert row["dumps"] == "2 (epochs 1, 2)"
    assert re.findall(r"<h3>(\w+): ensemble macro_f1", html) == ["mask", "gender", "age"]
    images = Tables(html).images
    assert len(images) == 6  # curves of mask and multi, hyperparameters, selection, score against time per task
    assert all(base64.b64decode(src.split(",", 1)[1]).startswith(PNG) for src in images)
    assert {p.name for p in (exp / "report" / "figures").glob("pareto_*.png")} == {"pareto_mask.png",
                                                                                  "pareto_multi.png"}
    assert len(list((exp / "report" / "figures").glob("*.png"))) == 6


@pytest.mark.parametrize("source", ["stopped.json", "the assessor's log"])
def test_a_trial_the_assessor_stopped_reads_as_such(tmp_path, capsys, source):
    """NNI 3.0's web UI shows it as USER_CANCELED; the trial's stopped.json says stopped_by 'assessor', and the
    assessor's own record (<experiment>/log/assessor_stops.jsonl) names it where stopped.json could not."""
    from harness.experiment.stops import STOPS_FILE, record_stop

    exp = experiment(tmp_path)
    stopped = next(exp.glob("*_tB")) / "stopped.json"
    if source == "stopped.json":
        stopped.write_text(json.dumps({**json.loads(stopped.read_text()), "signal": "SIGINT",
                                       "stopped_by": "assessor"}))
    else:
        record_stop(exp / "log" / STOPS_FILE, "tB", 2, "Medianstop at step 2")
    code, stdout, err = report([exp], capsys)
    assert code == 0, err
    html = (exp / "report" / "report.html").read_text()
    assert by_trial(html)["tB"]["status"] == "stopped by the assessor at epoch 2"
    assert "1 stopped by the assessor" in html
