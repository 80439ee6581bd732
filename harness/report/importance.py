"""Which hyperparameters mattered, by Optuna's importance evaluators, from the trials' own records: each run's
params.json (what it trained with) and its best score in metrics.jsonl become a finished Optuna trial
(optuna.trial.create_trial, added to an in-memory study with study.add_trials); no Optuna study drives the search.

Two evaluators, both Optuna's: fANOVA (Hutter et al. 2014: a random forest over the trials, the share of the
score's variance each hyperparameter explains; seeded, so the same runs give the same numbers) and PED-ANOVA
(Watanabe et al. 2023: how differently a hyperparameter is distributed among the top trials than among all; the
one optuna-dashboard uses, for speed). Scores of different tasks are not comparable, so each task is judged on its
own; a stopped trial counts with its best score before the stop (an assessor stops the trials its rungs judge
poor, which is part of what a hyperparameter did)."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.report.runs import Run, param_value, score

MIN_TRIALS = 5     # fewer scored trials than this: no importance (a forest over 4 points says nothing)
SEED = 0           # fANOVA's forest: fixed, so a redrawn report shows the same numbers
EVALUATORS = ("fANOVA", "PED-ANOVA")


@dataclass(frozen=True)
class Importance:
    task: str
    trials: int                               # scored trials it was computed from
    by_evaluator: dict[str, dict[str, float]]  # evaluator -> hyperparameter -> importance (each sums to 1)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def category(value: Any) -> str | int | float | bool | None:
    """A value Optuna accepts as a category (lists and dicts as their JSON text)."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else json.dumps(value, sort_keys=True)


def distribution(values: Sequence[Any]) -> Any:
    """The distribution a hyperparameter's values came from, as far as the values tell: numbers spanning 20x or more
    a log range (learning rates), other numbers a linear one, anything else categories."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if all(_number(v) for v in values):
        low, high = min(values), max(values)
        log = low > 0 and high / low >= 20
        if all(isinstance(v, int) for v in values):
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(float(low), float(high), log=log)
    return CategoricalDistribution(sorted({category(v) for v in values}, key=lambda c: (str(type(c)), str(c))))


def study_of(runs: Sequence[Run], keys: Sequence[str], metric: str) -> Any:
    """An in-memory Optuna study holding one finished trial per scored run (maximising the score)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scored = [run for run in runs if score(run, metric) is not None]
    distributions = {key: distribution([param_value(run, key) for run in scored]) for key in keys}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=SEED))
    study.add_trials([optuna.trial.create_trial(
        params={key: _value(param_value(run, key), distributions[key]) for key in keys},
        distributions=distributions, value=float(score(run, metric))) for run in scored])
    return study


def _value(value: Any, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return category(value)
    return int(value) if isinstance(dist, IntDistribution) else float(value)


def importance(runs: Sequence[Run], keys: Sequence[str], metric: str, task: str) -> Importance | None:
    """Both evaluators over the runs of one task, for the hyperparameters that vary among them; None when there are
    fewer than MIN_TRIALS scored runs or nothing varies."""
    import optuna

    scored = [run for run in runs if score(run, metric) is not None]
    varying = [key for key in keys if len({json.dumps(param_value(run, key), sort_keys=True, default=str)
                                           for run in scored}) > 1]
    if len(scored) < MIN_TRIALS or not varying:
        return None
    study = study_of(scored, varying, metric)
    evaluators = {"fANOVA": optuna.importance.FanovaImportanceEvaluator(seed=SEED),
                  "PED-ANOVA": optuna.importance.PedAnovaImportanceEvaluator()}
    found = {}
    for name, evaluator in evaluators.items():
        values = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=True)
        found[name] = {key: float(values.get(key, 0.0)) for key in varying}
    return Importance(task, len(scored), found)
