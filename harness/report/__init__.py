"""python -m harness.report EXPERIMENT_DIR: one self-contained HTML page about an experiment's run folders.

By stage: runs.py reads the run folders into plain records (pure, no plotting, no ensemble), figures.py draws the
PNGs with matplotlib, selection.py asks the ensemble package for its --select choice (the only module of harness/
that imports ensemble/), page.py writes the HTML, __main__.py wires them together."""
