"""The few calls of NNI's REST API (the web UI's own) that following an experiment needs, and the decoding of what
it returns: NNI keeps parameters and metrics as JSON strings inside JSON, and nothing it sends is trusted to have
the shape this code expects (a malformed entry reads as absent)."""
from __future__ import annotations

import http.client
import json
import time
import urllib.request
from typing import Any

TIMEOUT = 10  # seconds per request: a manager that stopped answering must not hang the follower
API = "/api/v1/nni"


class NniRest:
    def __init__(self, port: int, host: str = "127.0.0.1", base: str | None = None) -> None:
        self.base = base or f"http://{host}:{port}{API}"

    @classmethod
    def at(cls, base: str) -> NniRest:
        """The API at a base URL (http://host:port[/prefix]/api/v1/nni), as a trial derives it."""
        return cls(0, base=base)

    def get(self, path: str, timeout: float = TIMEOUT) -> Any:
        with urllib.request.urlopen(f"{self.base}/{path}", timeout=timeout) as response:
            return json.load(response)

    def status(self) -> dict[str, Any]:
        found = self.get("check-status")
        return found if isinstance(found, dict) else {}

    def trials(self) -> list[dict[str, Any]]:
        return [t for t in _list(self.get("trial-jobs")) if isinstance(t.get("trialJobId"), str)]

    def trial(self, trial_id: str) -> dict[str, Any]:
        found = self.get(f"trial-jobs/{urllib.request.quote(trial_id, safe='')}")
        return found if isinstance(found, dict) else {}

    def metrics(self) -> list[dict[str, Any]]:
        return [m for m in _list(self.get("metric-data")) if isinstance(m.get("trialJobId"), str)]

    def experiment(self) -> dict[str, Any]:
        found = self.get("experiment")
        return found if isinstance(found, dict) else {}


def _list(found: Any) -> list[dict[str, Any]]:
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


def decoded(text: Any) -> Any:
    """A value NNI stored as JSON, possibly JSON inside a JSON string (its metrics are); None when unreadable."""
    for _ in range(2):
        if not isinstance(text, str):
            return text
        try:
            text = json.loads(text)
        except ValueError:
            return None
    return text


def parameter_record(trial: dict[str, Any]) -> dict[str, Any]:
    """The manager's record of the parameter set it meant for a trial: {parameter_id, parameter_source,
    parameters, parameter_index}; {} when it has none."""
    entries = trial.get("hyperParameters")
    record = decoded(entries[0]) if isinstance(entries, list) and entries else None
    return record if isinstance(record, dict) and isinstance(record.get("parameters"), dict) else {}


def parameters_of(trial: dict[str, Any]) -> dict[str, Any]:
    return parameter_record(trial).get("parameters", {})


def parameter_id_of(record: dict[str, Any]) -> int | str | None:
    """A parameter record's id: an int (NNI's tuners), a string (Hyperband's and BOHB's '0-1_0_0') or None (a set
    added in the web UI); anything else reads as None."""
    found = record.get("parameter_id")
    return found if isinstance(found, (int, str)) and not isinstance(found, bool) else None


def trial_record(rest: NniRest, trial_id: str, within: float, every: float = 0.2) -> tuple[dict[str, Any], str]:
    """(the manager's parameter record of this trial, ''), or ({}, why not) when it could not be had within
    `within` seconds. The manager writes its record just after it spawns the trial, and until then answers HTTP
    200 with an empty body: such answers, and any other unreadable one, are asked again every `every` seconds."""
    deadline = time.monotonic() + within
    why = "no answer"
    while True:
        try:
            found = rest.get(f"trial-jobs/{urllib.request.quote(trial_id, safe='')}",
                             timeout=max(0.5, min(TIMEOUT, deadline - time.monotonic())))
            record = parameter_record(found) if isinstance(found, dict) and found.get("trialJobId") == trial_id else {}
            if record and (record.get("parameter_id") is None or parameter_id_of(record) is not None):
                return record, ""
            why = "no record of this trial yet" if not found else "a record without a parameter set"
        except ValueError:
            why = "an empty answer (no record of this trial yet)"
        except (OSError, http.client.HTTPException) as error:  # urllib's errors are OSErrors
            why = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
        if time.monotonic() + every > deadline:
            return {}, why
        time.sleep(every)


def metric_default(data: Any) -> float | None:
    """The tuner's number of a reported metric: its 'default', or the metric itself when it is a number."""
    value = decoded(data)
    value = value.get("default") if isinstance(value, dict) else value
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def final_default(trial: dict[str, Any]) -> float | None:
    entries = trial.get("finalMetricData")
    if isinstance(entries, list) and entries and isinstance(entries[0], dict):
        return metric_default(entries[0].get("data"))
    return None
