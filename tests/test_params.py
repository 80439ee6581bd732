import json
import re
from pathlib import Path

import pytest
import yaml

from harness.data.labels import CLASSIFICATIONS
from harness.errors import UserError
from harness.params import FLAG_TYPES, UNTUNABLE, TrialParams, build_parser, merge_parameters, parse_params
from harness.train.losses import LOSSES
from harness.train.optim import OPTIMIZERS
from models import is_known

ROOT = Path(__file__).resolve().parents[1]
SEARCH_SPACES = sorted(ROOT.glob("search_space*.json"))
# Where each search-space key's values must resolve.
RESOLVERS = {"model": is_known, "criterion": lambda value: all(part in LOSSES for part in value.split("+")),
             "classification": CLASSIFICATIONS.__contains__,
             "optimizer": OPTIMIZERS.__contains__}


def choices(space_file: Path):
    space = json.loads(space_file.read_text())
    for key, spec in space.items():
        if spec["_type"] == "choice":
            for value in spec["_value"]:
                yield key, value


def configs_using(space_file: Path) -> list[Path]:
    return [c for c in sorted(ROOT.glob("config*.yml"))
            if yaml.safe_load(c.read_text()).get("searchSpaceFile") == space_file.name]


@pytest.mark.parametrize("space_file", SEARCH_SPACES, ids=lambda p: p.name)
def test_every_search_space_key_is_a_flag(space_file):
    space = json.loads(space_file.read_text())
    assert set(space) <= set(FLAG_TYPES)
    configs = configs_using(space_file)
    assert configs, f"no config uses {space_file.name}"
    # What the search space leaves out (PBT's space holds only what may change while weights carry over) the
    # config's trialCommand must fix, so that every trial knows its model, loss, task and batch.
    for config in configs:
        command = yaml.safe_load(config.read_text())["trialCommand"].split()
        flags = {word[2:] for word in command if word.startswith("--")}
        missing = {"batch_size", "model", "criterion", "classification"} - set(space) - flags
        assert not missing, f"{config.name}: {sorted(missing)} neither searched nor set in trialCommand"


@pytest.mark.parametrize("space_file, key, value",
                         [(f, k, v) for f in SEARCH_SPACES for k, v in choices(f)],
                         ids=lambda x: x.name if isinstance(x, Path) else str(x))
def test_every_search_space_value_resolves_and_merges(space_file, key, value):
    if key in RESOLVERS:
        assert RESOLVERS[key](value), f"{key}={value!r} resolves to nothing"
    merged = parse_params([], {key: value})
    assert getattr(merged, key) == value


def test_the_original_search_space_is_kept():
    space = json.loads((ROOT / "search_space.json").read_text())
    assert space["batch_size"]["_value"] == [8, 16, 32]
    assert set(space["model"]["_value"]) == {"Efficientnet_b6", "Efficientnet_b4", "ecaresnet50t", "seresnet152d",
                                             "dm_nfnet_f0"}
    assert set(space["criterion"]["_value"]) == {"focal", "label_smoothing", "cross_entropy", "f1"}
    # multihead joined the original four (issue 11): its 18-class CSVs and scores compare with multi's
    assert set(space["classification"]["_value"]) == {"mask", "gender", "age", "multi", "multihead"}
    assert space["lr"]["_type"] == "loguniform"


def test_a_search_space_may_choose_a_loss_mix_and_its_weights():
    params = parse_params([], {"criterion": "focal+f1", "loss_weights": "0.6,0.4"})
    assert (params.criterion, params.loss_weights) == ("focal+f1", "0.6,0.4")
    with pytest.raises(UserError, match="loss_weights '0.6' has 1 weight for the 2 parts of criterion 'focal[+]f1'"):
        parse_params(["--criterion", "focal+f1", "--loss_weights", "0.6"], None)


def test_nni_values_override_flags():
    params = parse_params(["--batch_size", "8", "--lr", "0.1", "--epochs", "3"], {"batch_size": 32, "lr": 0.002})
    assert (params.batch_size, params.lr, params.epochs) == (32, 0.002, 3)


def test_standalone_without_nni_uses_the_flags():
    params = parse_params(["--model", "ecaresnet50t", "--pretrained", "false"], None)
    assert params.model == "ecaresnet50t" and params.pretrained is False
    assert params.dump_threshold == 0.9


def test_integral_floats_from_quniform_become_ints():
    assert parse_params([], {"batch_size": 16.0}).batch_size == 16


@pytest.mark.parametrize("tuned, message", [
    ({"learning_rate": 0.1}, "search-space key 'learning_rate' is not a trial.py flag"),
    ({"batch_size": "16"}, "batch_size must be an integer, got '16' (str)"),
    ({"batch_size": 16.5}, "batch_size must be an integer, got 16.5"),
    ({"lr": "fast"}, "lr must be a finite number"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"model": 3}, "model must be a string"),
    ({"criterion": "mse"}, "unknown criterion 'mse': expected one of cross_entropy"),
    ({"classification": "race"}, "classification must be one of"),
    ({"optimizer": "lion"}, "optimizer must be one of"),
    ({"batch_size": 0}, "batch_size must be at least 2"),
    ({"batch_size": 1}, "batch_size must be at least 2 (BatchNorm cannot train on batches of one image)"),
    ({"seed": -1}, "seed must be in 0..4294967295 (numpy's seeds are 32-bit), got -1"),
    # Upper bounds: values that would exhaust the machine or break a library (issue 25).
    ({"seed": 2**32}, "seed must be in 0..4294967295 (numpy's seeds are 32-bit), got 4294967296"),
    ({"batch_size": 10**25}, "batch_size must be at least 2 (BatchNorm cannot train on batches of one image) and at "
                             "most 4096, got 10000000000000000000000000"),
    ({"img_size": 100000}, "img_size must be in 16..2048, got 100000"),
    ({"epochs": 10**6}, "epochs must be in 1..10000, got 1000000"),
    ({"num_workers": 1000}, "num_workers must be in 0..64, got 1000"),
    ({"cpu_threads": 10**6}, "cpu_threads must be in 0..1024 (0: one per core), got 1000000"),
    ({"folds": 10**4}, "folds must be in 1..100, got 10000"),
    ({"budget_unit": -1}, "budget_unit must be in (0, 1000], got -1.0"),
    ({"budget_unit": -1, "TRIAL_BUDGET": 3}, "budget_unit must be in (0, 1000], got -1.0"),
    ({"val_ratio": 1.0}, "val_ratio must be in [0, 1)"),
    ({"pretrained": "maybe"}, "pretrained must be true or false"),
])
def test_bad_parameters_fail_with_one_clear_line(tuned, message):
    with pytest.raises(UserError) as caught:
        parse_params([], tuned)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("key", ["data_dir", "output_dir", "cache_dir", "weights", "device"])
def test_paths_and_the_device_cannot_come_from_nni(key):
    """NNI's REST API is unauthenticated: a trial added through it must not choose where a trial reads or writes."""
    with pytest.raises(UserError, match=f"search-space key '{key}' cannot come from NNI: paths and the device are "
                                        f"set in the config's trialCommand \\(--{key}\\)"):
        parse_params([], {key: "/etc"})
    assert parse_params([f"--{key}", "cpu" if key == "device" else "/tmp/x"], None)  # the command line may


@pytest.mark.parametrize("argv, message", [(["--lr", "inf"], "lr must be a finite number, got inf"),
                                           (["--weight_decay", "nan"], "weight_decay must be a finite number"),
                                           (["--seed", "-1"], "seed must be in 0..4294967295"),
                                           (["--batch_size", str(10**25)], "batch_size must be at least 2"),
                                           (["--budget_unit", "-0.5"], "budget_unit must be in (0, 1000]")])
def test_non_finite_and_negative_flags_are_refused(argv, message):
    with pytest.raises(UserError, match=re.escape(message)):
        parse_params(argv, None)


@pytest.mark.parametrize("payload", [[1, 2], "batch_size", 3])
def test_a_parameter_set_that_is_not_an_object_is_one_line(payload):
    """NNI's REST API takes any JSON as a trial's parameters: a list arrives as the trial's whole set."""
    with pytest.raises(UserError, match=f"NNI's parameters must be a JSON object of search-space keys, got a "
                                        f"{type(payload).__name__}"):
        parse_params([], payload)


def test_every_search_space_key_is_tunable():
    for name in ("search_space.json", "search_space.demo.json"):
        space = json.loads((ROOT / name).read_text())
        assert not set(space) & UNTUNABLE


@pytest.mark.parametrize("text, expected", [("true", True), ("False", False), ("1", True), ("no", False)])
def test_bool_flags(text, expected):
    assert parse_params(["--pretrained", text, "--cache", text], None).pretrained is expected


def test_bad_flag_values_stop_argparse(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--pretrained", "perhaps"])
    assert "pretrained must be true or false" in capsys.readouterr().err


def test_defaults_live_in_one_place():
    parser_defaults = vars(build_parser().parse_args([]))
    assert parser_defaults == TrialParams().to_dict()
    assert merge_parameters(parser_defaults, {}) == TrialParams()


# Mixing, class imbalance, weight averaging (README: "Contest techniques").
@pytest.mark.parametrize("tuned, message", [
    ({"mixup": -0.1}, "mixup must be 0 or more (0: off), got -0.1"),
    ({"cutmix": -1}, "cutmix must be 0 or more"),
    ({"mix_prob": 1.5}, "mix_prob must be in [0, 1], got 1.5"),
    ({"class_weights": "balanced"}, "class_weights must be one of none, inverse, sqrt_inverse, got 'balanced'"),
    ({"sampler": "uniform"}, "sampler must be one of none, weighted"),
    ({"old_age": 30}, "old_age must be in 31..100"),
    ({"old_age": 58.5}, "old_age must be an integer"),
    ({"ema_decay": 1.0}, "ema_decay must be in [0, 1) (0: off), got 1.0"),
])
def test_technique_values_out_of_range_fail_with_one_line(tuned, message):
    with pytest.raises(UserError) as caught:
        parse_params([], tuned)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_techniques_are_off_by_default():
    params = parse_params([], None)
    assert (params.mixup, params.cutmix, params.class_weights, params.sampler, params.old_age, params.ema_decay) == \
        (0.0, 0.0, "none", "none", 60, 0.0)
