"""Blend the soft CSVs of many trials into one submission: per-task soft voting, multi-class marginals, and
validation-driven member selection (python -m ensemble --help)."""
