"""Measures run by name, from the repository's root:

    python -m benchmarks.trial_speed MEASURE ...     how fast a trial runs (cache, precision, timm's train.py...)
    python -m benchmarks.demo                        the demo experiment end to end, against an earlier commit
    python -m benchmarks.search                      which tuner spends a CPU budget best
    python -m benchmarks.ensemble                    python -m ensemble on contest-sized inputs
    python -m benchmarks.contest_techniques          each contest technique off and on, on the demo data
    python -m benchmarks.technique_costs             what SAM's step and each TTA policy cost
    python -m benchmarks.blends                      the ensemble's blends on K-fold demo trials
    python -m benchmarks.real_photos                 contest techniques on a real photo set's held-out part
    python -m benchmarks.yardstick                   the harness's whole path against plain_timm's in one budget

runner.py is the suites' runner (a Measure per figure, chosen by name); common.py holds what several measures
share; step_clock.py times a training script's optimiser steps from outside it. Figures land in benchmarks/*.json
(docs/speed.md quotes them)."""
