"""K-fold inside one trial (--folds K): the fold assignment, the dump rule across folds, the OOF assembly and scores
as pure functions; then one standalone K-fold trial, killed mid-fold and resumed, against an uninterrupted one."""
import json
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.data.labels import multi_label, task_marginal
from harness.data.layouts import load_train
from harness.data.split import FOLD_SEED, assign_folds, fold_indices
from harness.errors import UserError
from harness.fit.setup import load_data
from harness.outputs.run_folder import RunFolder
from harness.params import parse_params
from harness.validation import scheme_for
from harness.validation.kfold import (
    cv_scores,
    dump_epochs,
    fold_candidates,
    keeps_eval,
    out_of_fold,
    resume_point,
    step_number,
)
from trial_checks import check_probabilities, records, run_to_end, trial, without_timing

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8",
        "--lr", "0.003", "--num_workers", "0", "--dump_threshold", "0", "--seed", "5", "--tensorboard", "false"]


def synthetic_people(people_per_stratum=10, strata=6):
    """7 photos a person (mask states 0,0,0,0,0,1,2), gender and age group constant per person."""
    person = np.repeat(np.arange(people_per_stratum * strata), 7)
    stratum = person // people_per_stratum
    mask = np.tile([0, 0, 0, 0, 0, 1, 2], people_per_stratum * strata)
    return person, multi_label(mask, stratum // 3, stratum % 3), stratum


# --- fold assignment ---------------------------------------------------------------------------------------------

def test_folds_hold_whole_people_every_image_once_and_keep_the_strata():
    person, multi, stratum = synthetic_people()
    fold_of = assign_folds(person, multi, 5)
    assert fold_of.shape == person.shape and set(fold_of) == set(range(5))  # every image in exactly one fold
    assert all(len(set(fold_of[person == p])) == 1 for p in np.unique(person)), "a person split across folds"
    for fold in range(5):
        train_idx, held_out = fold_indices(fold_of, fold)
        assert sorted([*train_idx, *held_out]) == list(range(len(person))) and not set(train_idx) & set(held_out)
        # 10 people per stratum over 5 folds: exactly 2 of each stratum per fold
        people = np.unique(person[held_out])
        assert np.bincount(stratum[people * 7], minlength=6).tolist() == [2] * 6


def test_folds_do_not_depend_on_the_task_or_the_seed(demo_dir, tmp_path):
    """trial.py stratifies on the 18-class label whatever --classification is, with FOLD_SEED, never --seed: the
    same call for every trial, so the same people per fold."""
    data = load_train(demo_dir)
    first = assign_folds(data.groups, data.task_labels("multi"), 3)
    assert (assign_folds(data.groups, data.task_labels("multi"), 3, FOLD_SEED) == first).all()
    assert not (assign_folds(data.groups, data.task_labels("multi"), 3, FOLD_SEED + 1) == first).all()
    for seed in (0, 42):
        for task in ("mask", "gender", "multihead"):
            assert parse_params(["--seed", str(seed), "--classification", task, "--folds", "3"], None).folds == 3
    _, data = load_data(parse_params(["--data_dir", str(demo_dir)], None))
    run = RunFolder(tmp_path, "exp", "run")
    kfold = [scheme_for(parse_params(["--folds", "3", "--val_ratio", ratio, "--seed", seed], None), data, run)
             for ratio, seed in (("0.2", "42"), ("0.5", "7"))]
    assert kfold[0].describe() == kfold[1].describe() == {"scheme": "kfold", "folds": 3, "fold_seed": FOLD_SEED}
    holdout = scheme_for(parse_params(["--val_ratio", "0.2", "--seed", "42"], None), data, run)
    assert holdout.describe() == {"scheme": "holdout", "val_ratio": 0.2, "seed": 42}


@pytest.mark.parametrize("folds", [0, 1, 61])
def test_impossible_fold_counts_are_refused(folds):
    person, multi, _ = synthetic_people()
    with pytest.raises(UserError, match="folds must be 1 .* or 2..60"):
        assign_folds(person, multi, folds)


@pytest.mark.parametrize("flags, message", [
    (["--folds", "0"], "folds must be in 1..100"),
    (["--folds", "2", "--checkpoint", "best"], "--checkpoint best keeps one model's weights"),
    (["--folds", "2", "--save_checkpoint_dir", "x"], "Population Based Training"),
])
def test_kfold_flag_checks(flags, message):
    with pytest.raises(UserError, match=message):
        parse_params(flags, None)


# --- steps, resume and the dump rule across folds ----------------------------------------------------------------

def test_steps_are_numbered_over_all_folds_and_a_resume_finds_its_fold():
    assert [step_number(f, e, 3) for f in (1, 2) for e in (1, 2, 3)] == [1, 2, 3, 4, 5, 6]
    assert resume_point(0, 3) == (1, 1)
    assert resume_point(2, 3) == (1, 3)   # mid-fold 1: its epoch 3 next
    assert resume_point(3, 3) == (2, 1)   # fold 1 done: fold 2 from a fresh model
    assert resume_point(6, 3) == (3, 1)   # every fold of a 2-fold run done: nothing left to train


def rows(passed: dict[int, list[bool]]) -> list[dict]:
    return [{"fold": fold, "fold_epoch": e, "fold_dump": p} for fold, flags in passed.items()
            for e, p in enumerate(flags, start=1)]


def test_an_epoch_is_dumped_only_when_it_passed_the_rule_in_every_fold():
    records = rows({1: [False, True, True, True], 2: [True, False, True, True], 3: [False, False, True, False]})
    candidates = fold_candidates(records)
    assert candidates == {1: {2, 3, 4}, 2: {1, 3, 4}, 3: {3}}
    assert dump_epochs(candidates, 3) == [3]
    assert dump_epochs(candidates, 2) == [3, 4]
    assert dump_epochs({1: {1, 2}}, 2) == [], "a fold that never ran dumps nothing"
    # The eval set is predicted only where a dump is still possible.
    assert keeps_eval(1, 2, True, {}) and not keeps_eval(1, 2, False, {})
    assert keeps_eval(2, 3, True, candidates) and not keeps_eval(2, 1, True, candidates)
    assert keeps_eval(3, 4, True, candidates) and not keeps_eval(3, 2, True, candidates)  # fold 2 failed epoch 2


# --- out-of-fold assembly and cross-validated scores -------------------------------------------------------------

def test_out_of_fold_puts_each_fold_s_rows_back_in_image_order():
    parts = [(np.array([3, 0]), np.array([[0.1, 0.9], [0.8, 0.2]])), (np.array([1, 2]), np.array([[0.6, 0.4],
                                                                                                   [0.3, 0.7]]))]
    np.testing.assert_allclose(out_of_fold(parts, 4), [[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    with pytest.raises(RuntimeError, match="cover 2 of 4 images once"):
        out_of_fold(parts[:1] + [(np.array([1, 1]), parts[1][1])], 4)


def test_cv_scores_by_hand():
    # 4 images, 2 classes: predictions 0, 1, 1, 1 against labels 0, 1, 0, 1 -> accuracy 3/4;
    # F1 class 0: tp 1, support 2, predicted 1 -> 2/3; class 1: tp 2, support 2, predicted 3 -> 4/5
    oof = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])
    scores = cv_scores(oof, np.array([0, 1, 0, 1]), {"multi": 2})
    assert scores == pytest.approx({"val_acc": 0.75, "val_f1": (2 / 3 + 4 / 5) / 2})


def test_cv_scores_of_a_multihead_run_score_each_head_from_the_marginals():
    joint = np.zeros((2, 18))
    joint[0, multi_label(2, 1, 0)] = 0.7  # image 0: mostly (not wear, female, <30), some (wear, female, <30)
    joint[0, multi_label(0, 1, 0)] = 0.3
    joint[1, multi_label(1, 0, 2)] = 1.0
    np.testing.assert_allclose(task_marginal(joint, "mask")[0], [0.3, 0, 0.7])
    labels = np.array([[2, 1, 1], [1, 0, 2]])  # image 0's true age is 1: its joint class is wrong, mask right
    scores = cv_scores(joint, labels, {"mask": 3, "gender": 2, "age": 3})
    assert scores["val_acc"] == 0.5 and scores["val_acc_mask"] == 1.0 and scores["val_acc_gender"] == 1.0
    assert scores["val_acc_age"] == 0.5


# --- a standalone K-fold trial: killed mid-fold, resumed, compared with an uninterrupted one -----------------------



def test_kfold_trial_killed_mid_fold_resumes_to_the_same_oof_csvs(demo_dir, tmp_path):
    folds, epochs = 2, 2
    common = ["--data_dir", str(demo_dir), "--epochs", str(epochs), "--folds", str(folds), *FAST]
    whole = trial(*common, "--output_dir", str(tmp_path / "whole"))
    cut = trial(*common, "--output_dir", str(tmp_path / "cut"))
    deadline = time.monotonic() + 400
    while not list((tmp_path / "cut").glob("standalone/*/metrics.jsonl")) and time.monotonic() < deadline:
        assert cut.poll() is None, cut.communicate()[1][-2000:]
        time.sleep(0.05)
    cut.send_signal(signal.SIGTERM)  # during fold 1's second epoch: a resume continues that fold from last.pt
    _, err = cut.communicate(timeout=60)
    assert cut.returncode == -signal.SIGTERM, err[-2000:]  # ended by the signal: NNI shows a stop, not a failure
    run = next((tmp_path / "cut" / "standalone").iterdir())
    assert not list(run.glob("*.csv")), "a trial killed mid-K-fold writes no CSV"
    assert (run / "stopped.json").is_file() and list((run / "folds").glob("fold1_epoch1.npz"))
    assert records(run)[-1]["epoch"] < folds * epochs

    resumed = trial("--resume", str(run))
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    out, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-2000:]
    reference = next((tmp_path / "whole" / "standalone").iterdir())

    steps = records(run)
    assert [(r["epoch"], r["fold"], r["fold_epoch"]) for r in steps] == [(1, 1, 1), (2, 1, 2), (3, 2, 1), (4, 2, 2)]
    assert [without_timing(r) for r in steps] == [without_timing(r) for r in records(reference)]
    summary = json.loads((run / "kfold.json").read_text())
    assert summary == json.loads((reference / "kfold.json").read_text())
    assert not (run / "folds").exists() and not (run / "stopped.json").exists()
    assert {p.name: p.read_bytes() for p in run.glob("*.csv")} == \
        {p.name: p.read_bytes() for p in reference.glob("*.csv")}

    # The OOF CSVs: every training image once, its true label, the scores kfold.json gives.
    data = load_train(demo_dir)
    params = json.loads((run / "params.json").read_text())
    assert params["validation"] == {"scheme": "kfold", "folds": 2, "fold_seed": FOLD_SEED}
    assert sum(summary["images_per_fold"]) == len(data.paths)
    eval_ids = pd.read_csv(demo_dir / "eval" / "info.csv")["ImageID"].tolist()
    assert [r["epoch"] for r in summary["epochs"] if r["dumped"]] == [1, 2]  # threshold 0: every epoch dumps
    for cv in summary["epochs"]:
        folds_at = [s for s in steps if s["fold_epoch"] == cv["epoch"]]
        tail = f"{cv['epoch']}_{cv['train_acc']:.4f}_{cv['train_loss']:.4f}_soft.csv"
        assert cv["train_acc"] == pytest.approx(np.mean([s["train_acc"] for s in folds_at]))
        valid = pd.read_csv(run / f"valid{tail}")
        assert valid["ImageID"].tolist() == data.paths, "out-of-fold rows: every training image, in order"
        assert valid["label"].tolist() == data.labels["multi"].tolist()
        check_probabilities(valid.iloc[:, 2:].to_numpy())
        predicted = valid.iloc[:, 2:].to_numpy().argmax(1)
        assert np.mean(predicted == valid["label"].to_numpy()) == pytest.approx(cv["val_acc"])
        submission = pd.read_csv(run / f"submission{tail}")
        assert submission["ImageID"].tolist() == eval_ids
        check_probabilities(submission.iloc[:, 1:].to_numpy())
    best = max(summary["epochs"], key=lambda r: r["val_acc"])
    assert summary["best_epoch"] == best["epoch"]
    # The sinks' final result (NNI's under nnictl, the log's standalone) is the cross-validated best epoch.
    assert f"best epoch {best['epoch']}: val_acc {best['val_acc']:.4f}" in out + err, "the final result: the CV score"


def test_nnictl_runs_a_kfold_multihead_trial(demo_dir, tmp_path):
    """Under nnictl: one trial with --folds 2 and classification multihead from the search space; NNI gets one
    intermediate result per step and the cross-validated final result."""

    from harness.experiment.config import load_config, with_overrides

    space = tmp_path / "space.json"
    space.write_text(json.dumps({"classification": {"_type": "choice", "_value": ["multihead"]}}))
    config = with_overrides(
        load_config(ROOT / "config.demo.yml"), ROOT, working_dir=tmp_path / "experiments", max_trials=1,
        trial_args=["--data_dir", str(demo_dir), "--epochs", "1", "--folds", "2", "--img_size", "32",
                    "--num_workers", "0", "--dump_threshold", "0", "--tensorboard", "false"])
    config["searchSpaceFile"] = str(space)
    config["trialConcurrency"] = 1  # one trial: a second request would find the one-value space exhausted
    experiment_id, status, trials, metrics = run_to_end(config, tmp_path)
    assert status == "DONE"
    assert [t["status"] for t in trials] == ["SUCCEEDED"]
    periodical = [json.loads(json.loads(m["data"])) for m in metrics if m["type"] == "PERIODICAL"]
    final = [json.loads(json.loads(m["data"])) for m in metrics if m["type"] == "FINAL"]
    assert [(p["epoch"], p["fold"], p["fold_epoch"]) for p in periodical] == [(1, 1, 1), (2, 2, 1)]
    assert all({"val_acc_mask", "val_f1_gender", "val_f1_age"} <= set(p) for p in periodical)
    run = next((tmp_path / "experiments" / experiment_id).glob(f"multihead_*_{trials[0]['trialJobId']}"))
    summary = json.loads((run / "kfold.json").read_text())
    assert len(final) == 1 and final[0]["default"] == summary["epochs"][0]["val_acc"]
    valid = pd.read_csv(next(run.glob("valid1_*_soft.csv")))
    assert valid.shape == (len(load_train(demo_dir).paths), 2 + 18)
