"""NNI 3.0's Hyperband and BOHB, fixed so that an experiment runs to its end (config.hyperband.yml, config.bohb.yml).

Both dispatchers name their parameter sets with strings such as '0-1_0_0' (bracket, round, index), but the
resume bookkeeping they inherit from nni.recoverable.Recoverable compares every id with the largest *int* id of a
resumed experiment: `'0-1_0_0' <= -1` raises TypeError on the first metric a trial reports, the dispatcher dies,
and the experiment never ends. Recoverable itself skips non-int ids when it recovers them (recover_parameter_id),
so none of these string ids can ever have come from a previous experiment: they are new by construction.

Loaded by NNI as custom tuners (`tuner: {codeDirectory: ., className: harness.tuners.Hyperband}`); BOHB imports
ConfigSpace and statsmodels (pinned in requirements.txt) only when its class is used."""
from __future__ import annotations

from typing import Any

from nni.algorithms.hpo.hyperband_advisor import Hyperband as _NniHyperband


def created_in_previous_experiment(param_id: Any, recovered_max_param_id: int) -> bool:
    """Recoverable's rule, kept for NNI's own int ids; string ids (the brackets') are never recovered ones."""
    return isinstance(param_id, int) and not isinstance(param_id, bool) and param_id <= recovered_max_param_id


class Hyperband(_NniHyperband):
    def is_created_in_previous_exp(self, param_id: Any) -> bool:
        return created_in_previous_experiment(param_id, self.recovered_max_param_id)


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
