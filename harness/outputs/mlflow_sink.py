"""--mlflow_uri: the trial's records in MLflow, where many competitors keep their runs. One MLflow run per trial,
named after its run folder, in the MLflow experiment named after the NNI experiment id ('standalone' outside NNI);
params.json as the run's params (nested values as JSON text); each epoch's numbers as metrics at step = epoch. A
run resumed (nnictl resume, --resume) continues its MLflow run, found by the run folder's path in a tag; a run
stopped by a signal (an assessor, nnictl stop) ends as KILLED.

MLflow is optional (`pip install mlflow-skinny`, pinned in requirements-dev.txt) and imported only when the flag is
set. A file:// URI is MLflow's local file store, which MLflow 3 keeps in maintenance mode and refuses unless
MLFLOW_ALLOW_FILE_STORE is set: the sink sets it for file:// URIs (no server, nothing but files, readable by
`mlflow ui --backend-store-uri` or MlflowClient)."""
from __future__ import annotations

import atexit
import json
import os
import time
from pathlib import Path
from typing import Any

from harness.errors import UserError, one_line
from harness.outputs.reading import PARAMS, read_params

FOLDER_TAG = "harness.run_folder"
MAX_PARAM_VALUE = 6000  # characters: MLflow's limit for a param's value
SKIPPED_PARAMS = ("argv", "nni_parameters")  # the command line and NNI's copy repeat the flags


def param_values(params: dict[str, Any]) -> dict[str, str]:
    """params.json as MLflow params: text, nested values as JSON, each cut to MLflow's limit."""
    values = {}
    for key, value in params.items():
        if key in SKIPPED_PARAMS:
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        values[key] = text[:MAX_PARAM_VALUE]
    return values


def epoch_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The record's numbers (not 'epoch', which is the step, nor flags such as 'dumped')."""
    return {key: float(value) for key, value in record.items()
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)}


class MlflowSink:
    """An EpochSink (harness/outputs/sinks.py): epoch(record), close(best)."""

    def __init__(self, uri: str, run_folder: Path) -> None:
        try:
            from mlflow.entities import Param, RunStatus
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UserError("--mlflow_uri needs MLflow: pip install mlflow-skinny (requirements-dev.txt pins it)") \
                from None
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.finished, self.killed = RunStatus.to_string(RunStatus.FINISHED), RunStatus.to_string(RunStatus.KILLED)
        self.closed = False
        params = read_params(Path(run_folder) / PARAMS)
        try:
            self.client = MlflowClient(tracking_uri=uri)
            experiment = self.experiment(str(params.get("experiment_id") or "standalone"))
            self.run_id, resumed = self.run_of(experiment, Path(run_folder))
            if not resumed:
                self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in param_values(params).items()])
        except MlflowException as error:
            raise UserError(f"--mlflow_uri {uri}: {one_line(error)}") from None
        atexit.register(self.end_if_open)  # a stopped trial never reaches close()

    def experiment(self, name: str) -> str:
        """The MLflow experiment's id, made if missing; trials that start together may both try to make it."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:
            return self.client.get_experiment_by_name(name).experiment_id

    def run_of(self, experiment: str, folder: Path) -> tuple[str, bool]:
        """(the MLflow run of this run folder, whether it existed: a resumed trial)."""
        path = str(folder.resolve()).replace("'", "\\'")
        existing = self.client.search_runs([experiment], filter_string=f"tags.`{FOLDER_TAG}` = '{path}'",
                                           max_results=1)
        if existing:
            self.client.update_run(existing[0].info.run_id, status="RUNNING")
            return existing[0].info.run_id, True
        run = self.client.create_run(experiment, run_name=folder.name, tags={FOLDER_TAG: str(folder.resolve())})
        return run.info.run_id, False

    def epoch(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, int(record["epoch"]))
                                                    for key, value in epoch_metrics(record).items()])

    def close(self, best: dict[str, Any] | None) -> None:
        self.client.set_terminated(self.run_id, self.finished)
        self.closed = True

    def end_if_open(self) -> None:
        if not self.closed:
            self.client.set_terminated(self.run_id, self.killed)
            self.closed = True
