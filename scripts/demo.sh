#!/usr/bin/env bash
# The main job: an NNI experiment (config.demo.yml) on the synthetic demo data, or on yours with --data_dir DIR.
# Trials use the GPU when there is one, else the CPU. It waits for the end, lists the soft CSVs, and leaves the
# web UI up (pass --stop to stop it). Other flags go to `python -m harness.experiment` (--port, --max_trials, ...);
# after `--`, trial.py flags (e.g. -- --epochs 10).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh

given_data=false
for arg in "$@"; do
  [ "$arg" = "--" ] && break
  case "$arg" in --data_dir|--data_dir=*) given_data=true ;; esac
done
extra=()
if [ "$given_data" = false ]; then
  if [ ! -f data/demo/train/train.csv ]; then
    python -m harness.demo_data --out data/demo
  fi
  echo "No --data_dir given: using the synthetic demo data set in data/demo (python -m harness.demo_data)."
  extra=(--data_dir data/demo)
fi
# config.demo.yml runs two trials at once: each gets half the cores (trial.py flags after -- can override it).
threads=$(( $(nproc) / 2 ))
[ "$threads" -ge 1 ] || threads=1
options=(); trial_flags=(); after_dashes=false
for arg in "$@"; do
  if [ "$after_dashes" = false ] && [ "$arg" = "--" ]; then after_dashes=true; continue; fi
  if [ "$after_dashes" = true ]; then trial_flags+=("$arg"); else options+=("$arg"); fi
done
exec python -m harness.experiment --config config.demo.yml "${extra[@]}" "${options[@]}" \
  -- --cpu_threads "$threads" "${trial_flags[@]}"
