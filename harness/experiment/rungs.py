"""Asynchronous successive halving's rule and record, as pure functions and plain data (no NNI, no torch): the ASHA
assessor (harness/experiment/assessors.py) decides with them, the report reads what it recorded.

The rule (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020, in its stopping form, as
Ray Tune's AsyncHyperBandScheduler): rungs at r, r*eta, r*eta^2 ... epochs. When a trial's results reach a rung, its
score there (its best result up to that epoch, the measure its final result uses) is compared with the scores of
every trial that reached the rung before it:

    m = the trials recorded at the rung, this one included
    it continues when fewer than ceil(m / eta) of the others scored strictly higher (the top 1/eta, rounded up,
    ties to the newcomer), or when fewer than `grace_period` trials were there before it (1: the first trial at
    a rung always continues)

and it is recorded at the rung either way. Nothing waits: a rung judges each trial against the trials that got
there first, so an early trial is judged against few and a late one against many (Li et al.'s trade-off for no
brackets). A trial whose results jump past several rungs at once (a resumed one) is judged at each in turn."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.outputs.reading import read_json

STATE = "asha.json"          # in NNI's checkpoint folder (<experiment>/checkpoint), which `nnictl resume` hands back
MAX_RUNGS = 16               # eta 2 from 1 epoch: rungs up to 32,768 epochs


@dataclass(frozen=True)
class Verdict:
    """One trial judged at one rung."""
    trial: str
    rung: int                 # epochs
    score: float              # its best result up to the rung (maximised; a minimised metric is negated)
    place: int                # 1 = best among the trials recorded at the rung, this one included
    reached: int              # trials recorded at the rung, this one included
    kept: int                 # how many places continue: ceil(reached / eta), or all within the grace period
    continues: bool


def rung_epochs(eta: int, min_resource: int = 1, max_resource: int | None = None,
                rungs: Sequence[int] | None = None) -> list[int]:
    """The rungs in epochs: `rungs` as given (increasing), or min_resource * eta**k below max_resource (the trials'
    planned epochs: a rung at the last epoch would stop nothing worth saving)."""
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise UserError(f"ASHA's eta is {eta!r}, expected an integer of at least 2")
    if rungs is not None:
        found = list(rungs)
        if not found or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in found) or \
                found != sorted(set(found)) or len(found) > MAX_RUNGS:
            raise UserError(f"ASHA's rungs are {rungs!r}, expected 1 to {MAX_RUNGS} increasing positive epochs")
        return found
    if isinstance(min_resource, bool) or not isinstance(min_resource, int) or min_resource < 1:
        raise UserError(f"ASHA's min_resource is {min_resource!r}, expected a positive number of epochs")
    if max_resource is not None and (isinstance(max_resource, bool) or not isinstance(max_resource, int)
                                     or max_resource <= min_resource):
        raise UserError(f"ASHA's max_resource is {max_resource!r}, expected the trials' epochs, above min_resource "
                        f"{min_resource}")
    limit = max_resource if max_resource is not None else min_resource * eta ** MAX_RUNGS
    found = [min_resource * eta ** k for k in range(MAX_RUNGS) if min_resource * eta ** k < limit]
    return found


def judge(trial: str, rung: int, score: float, earlier: Sequence[float], eta: int, grace_period: int) -> Verdict:
    """The promotion rule (module docstring) for `score` at `rung`, given the scores `earlier` trials recorded
    there. NaN scores as the worst."""
    score = -math.inf if math.isnan(score) else score
    reached = len(earlier) + 1
    kept = reached if len(earlier) < grace_period else math.ceil(reached / eta)
    place = 1 + sum(other > score for other in earlier)
    return Verdict(trial, rung, score, place, reached, kept, place <= kept)


@dataclass
class Rungs:
    """The record: every rung's scores by trial, and every stop, in the order they happened."""
    eta: int
    epochs: list[int]
    grace_period: int = 1
    sign: float = 1.0         # -1 when the metric is minimised: scores are kept negated, so higher is better
    recorded: dict[int, dict[str, float]] = field(default_factory=dict)
    stops: list[dict[str, Any]] = field(default_factory=list)

    def advance(self, trial: str, history: Sequence[float]) -> list[Verdict]:
        """Judges `trial` (its results so far, maximised) at every rung it has reached and was not yet judged at,
        lowest first, stopping at the first rung it fails; returns the verdicts (the last one failed if any did)."""
        verdicts = []
        for rung in self.epochs:
            table = self.recorded.setdefault(rung, {})
            if rung > len(history) or trial in table:
                continue
            verdict = judge(trial, rung, max(history[:rung]), list(table.values()), self.eta, self.grace_period)
            table[trial] = verdict.score
            verdicts.append(verdict)
            if not verdict.continues:
                self.stops.append(stop_record(verdict, len(history), self.sign))
                break
        return verdicts

    def to_dict(self) -> dict[str, Any]:
        return {"eta": self.eta, "rungs": self.epochs, "grace_period": self.grace_period, "sign": self.sign,
                "recorded": {str(rung): scores for rung, scores in self.recorded.items()}, "stops": self.stops}


def stop_record(verdict: Verdict, steps: int, sign: float = 1.0) -> dict[str, Any]:
    """A stop as asha.json keeps it and assessor_stops.jsonl adds it to the shared fields (harness/experiment/
    stops.py): `step` is the results the trial had reported, `score` as the trial reported it."""
    return {"trial": verdict.trial, "step": steps, "assessor": "ASHA", "rung": verdict.rung,
            "score": verdict.score * sign, "place": verdict.place, "of": verdict.reached, "kept": verdict.kept}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def rungs_from(data: Any, path: Path) -> Rungs:
    """The record read back (asha.json), every field type-checked; a UserError naming the file otherwise."""
    problem = None
    if not isinstance(data, dict) or not isinstance(data.get("rungs"), list) or not isinstance(
            data.get("recorded"), dict) or not isinstance(data.get("stops"), list):
        problem = "expected an object with rungs, recorded and stops"
    else:
        try:
            recorded = {int(rung): {str(t): float(s) for t, s in scores.items() if _number(s)}
                        for rung, scores in data["recorded"].items()}
            return Rungs(int(data["eta"]), [int(r) for r in data["rungs"]], int(data.get("grace_period", 1)),
                         -1.0 if data.get("sign") == -1 else 1.0, recorded,
                         [s for s in data["stops"] if isinstance(s, dict) and valid_stop(s)])
        except (TypeError, ValueError, AttributeError, KeyError):
            problem = "a rung, trial or score of the wrong type"
    raise UserError(f"{path}: not an ASHA record ({problem})")


def valid_stop(stop: dict[str, Any]) -> bool:
    """An ASHA stop: a trial id, and its step, rung and score as numbers (a Medianstop stop has no rung)."""
    return isinstance(stop.get("trial"), str) and all(_number(stop.get(key)) for key in ("step", "rung", "score"))


def read_rungs(checkpoint_dir: Path) -> Rungs | None:
    """The experiment's ASHA record (<experiment>/checkpoint/asha.json); None when it has none."""
    path = Path(checkpoint_dir) / STATE
    return rungs_from(read_json(path, "ASHA record"), path) if path.is_file() else None


def stop_reason(stop: dict[str, Any]) -> str:
    """The stop's reason, as assessor_stops.jsonl, the follower and stopped.json give it: 'ASHA at the 3-epoch rung
    (after epoch 3): best default 0.6120, 3rd of 4 there (the top 2 continue)'"""
    place = stop.get("place")
    where = (f", {ordinal(place)} of {stop.get('of')} there (the top {stop.get('kept')} continue)"
             if _number(place) and _number(stop.get("of")) else "")
    return (f"ASHA at the {stop['rung']}-epoch rung (after epoch {stop['step']}): best default "
            f"{stop['score']:.4f}{where}")


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
