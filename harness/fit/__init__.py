"""Training a run: one fit setup builds each split's model, optimiser, loaders and predictor from the parameters
(setup.py); one epoch loop trains every split a validation scheme yields (loop.py); each technique acts through
hooks called in one stated order (hooks.py). `trial.py` wires them; docs/layout.md says where a new technique goes."""
