"""NNI plumbing, one module per job: the experiment driver (`python -m harness.experiment`, __main__.py), staging
its config (config.py), driving nnictl (nnictl.py), NNI's REST API (rest.py), following the trials (follower.py),
reading NNI's logs (logs.py), the trial's side of NNI (runtime.py) and the fixed tuners (tuners.py).

Importing this package imports nothing: a trial loads only runtime.py, and only under NNI."""
