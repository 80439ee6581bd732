"""The package layout's one rule: arrows point down. models/ never imports harness/, and nothing in harness/ imports
models/ (trial.py, the wiring, imports both)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package, forbidden", [("models", "harness"), ("harness", "models")])
def test_no_import_runs_back_up(package, forbidden):
    offenders = [str(path.relative_to(ROOT)) for path in sorted((ROOT / package).rglob("*.py"))
                 if forbidden in imported_packages(path)]
    assert not offenders, f"{', '.join(offenders)} import {forbidden}/"
