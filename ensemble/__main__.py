from ensemble.cli import run

run()
