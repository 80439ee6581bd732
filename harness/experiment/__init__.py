"""NNI plumbing, one module per job: the experiment driver (`python -m harness.experiment`, __main__.py), staging
its config (config.py), driving nnictl (nnictl.py), NNI's REST API (rest.py), following the trials (follower.py)
to their end (ending.py), reading NNI's logs (logs.py), the trial's side of NNI (runtime.py), the fixed tuners
(tuners.py) and the assessors that record their stops (assessors.py, stops.py).

Importing this package imports nothing: a trial loads runtime.py (with rest.py) and stops.py, which import nni only
when NNI started the trial."""
