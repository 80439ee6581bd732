"""How fast a trial runs, one measure per module, run by name: `python -m benchmarks.trial_speed MEASURE ...`.

Every figure comes from runs taking turns (the order reversed every other round), so that drift in a shared
machine's speed falls on every side alike; figures are medians with their ranges, ratios the medians of the pairs'
ratios. `--report FILE` prints the tables of a figures file (benchmarks/trial_speed_cpu.json: docs/speed.md quotes
it)."""
