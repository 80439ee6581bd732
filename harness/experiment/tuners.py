"""NNI 3.0 tuners fixed so that experiments run to their end: Hyperband and BOHB (config.hyperband.yml,
config.bohb.yml), and TPE with trials side by side (config.yml, config.demo.yml).

Both dispatchers name their parameter sets with strings such as '0-1_0_0' (bracket, round, index), but the
resume bookkeeping they inherit from nni.recoverable.Recoverable compares every id with the largest *int* id of a
resumed experiment: `'0-1_0_0' <= -1` raises TypeError on the first metric a trial reports, the dispatcher dies,
and the experiment never ends. Recoverable itself skips non-int ids when it recovers them (recover_parameter_id),
so none of these string ids can ever have come from a previous experiment: they are new by construction.

NNI 3.0's TPE, fixed so that trials can run side by side (config.yml, config.demo.yml: trialConcurrency > 1).
The local training service hands the parameter sets to the trials in the order the trials ask for one, not in the
order the manager assigned them: two trials that start together can swap sets. A trial that trains the set it
got reports its results with that set's id, but NNI tells the tuner that it ended with the id the manager
assigned. TPE's trial_end then forgets the other trial's still running set, and when that
trial's final result arrives, `self._running_params.pop(parameter_id)` raises KeyError, the dispatcher dies and the
experiment never ends (seen with 2 trials at once on the demo). Every set TPE generated stays in `self._params`,
so the fixed tuner takes it from there. A trial now trains the set NNI records for it and reports under that id
(harness/experiment/runtime.py), so both ids agree; this stays as a guard for a trial that could not read its
record (and the remote service with reuseMode false, where it cannot).

Loaded by NNI as custom tuners (`tuner: {codeDirectory: ., className: harness.tuners.Hyperband}`); BOHB imports
ConfigSpace and statsmodels (pinned in requirements.txt) only when its class is used."""
from __future__ import annotations

from typing import Any

from nni.algorithms.hpo.hyperband_advisor import Hyperband as _NniHyperband
from nni.algorithms.hpo.tpe_tuner import TpeTuner as _NniTpe


def created_in_previous_experiment(param_id: Any, recovered_max_param_id: int) -> bool:
    """Recoverable's rule, kept for NNI's own int ids; string ids (the brackets') are never recovered ones."""
    return isinstance(param_id, int) and not isinstance(param_id, bool) and param_id <= recovered_max_param_id


class Hyperband(_NniHyperband):
    def is_created_in_previous_exp(self, param_id: Any) -> bool:
        return created_in_previous_experiment(param_id, self.recovered_max_param_id)


class TPE(_NniTpe):
    def receive_trial_result(self, parameter_id: Any, parameters: Any, value: Any, **kwargs: Any) -> None:
        # NNI's own method pops the set from _running_params, where a swapped trial_end may have removed it: put
        # it back from _params (every generated set) for that pop, and let NNI's code do the rest.
        if parameter_id not in self._running_params and parameter_id in self._params:
            self._running_params[parameter_id] = self._params[parameter_id]
        super().receive_trial_result(parameter_id, parameters, value, **kwargs)


def __getattr__(name: str) -> Any:
    # BOHB's module imports ConfigSpace at import time: only a BOHB experiment should need it.
    if name == "BOHB":
        from nni.algorithms.hpo.bohb_advisor.bohb_advisor import BOHB as _NniBOHB

        class BOHB(_NniBOHB):
            def is_created_in_previous_exp(self, param_id: Any) -> bool:
                return created_in_previous_experiment(param_id, self.recovered_max_param_id)

        globals()["BOHB"] = BOHB
        return BOHB
    raise AttributeError(name)
