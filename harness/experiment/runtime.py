"""The trial's side of NNI, imported only when NNI started the trial.

`import nni` costs about 2 s of a trial's start-up on a 2-core CPU (NNI 3.0 loads scipy.stats for its search-space
types and pandas for json_tricks; measured with `python -X importtime`, README "Speed"). A standalone trial
(`python trial.py ...`, the tests, the benchmarks) needs none of it: NNI itself treats a process without NNI_EXP_ID
as standalone (nni/trial.py: experiment id 'STANDALONE'), so the same variable decides here, before anything of
nni is imported."""
from __future__ import annotations

import datetime
import os
import warnings
from typing import Any


def under_nni() -> bool:
    """True in a process NNI's training service started (it sets NNI_EXP_ID, as nni/trial.py reads it)."""
    return bool(os.environ.get("NNI_EXP_ID"))


def next_parameters() -> dict[str, Any]:
    """The tuner's parameters for this trial; {} standalone."""
    if not under_nni():
        return {}
    import nni

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*without runtime.*")
        return nni.get_next_parameter() or {}


def trial_identity() -> tuple[str, str]:
    """(experiment id, trial id) from NNI; a standalone run gets 'standalone' and a time-stamped trial id."""
    if not under_nni():
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        return "standalone", f"{stamp}-{os.getpid()}"
    import nni

    return nni.get_experiment_id(), nni.get_trial_id()


def sequence_id() -> int:
    """NNI's "Trial No." (0 standalone, as NNI says)."""
    if not under_nni():
        return 0
    import nni

    return nni.get_sequence_id()


def parameter_set_id() -> int | str | None:
    """The id of the parameter set this trial received, the one its results are reported under (None standalone,
    and for a set added by hand in the web UI). NNI 3.0's local service can hand two trials that start together
    each other's sets, and its web UI then shows the set it meant, not this one: params.json records both."""
    if not under_nni():
        return None
    import nni.trial

    received = nni.trial._params  # NNI 3.0 (its last release) keeps the whole record there, id included
    return received.get("parameter_id") if received else None
