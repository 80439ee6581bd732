"""The package layout's rules: arrows point down, and no module imports a command-line module.

    models/      imports nothing of ours
    harness/     imports neither models/ nor ensemble/ (trial.py and predict.py, the wiring, import models/);
                 its report/ alone may import ensemble/'s library modules, to show what the ensemble would choose
    ensemble/    imports harness/'s torch-free parts, never models/ or the training stages"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The programs users type: nothing imports them (tests aside), so a module never drags a CLI's parsing along.
COMMAND_LINE = {"ensemble.cli", "ensemble.__main__", "harness.experiment.__main__", "harness.report.__main__",
                "harness.demo_data", "harness.real_photos", "trial", "predict", "distill"}
TRAINING_STAGES = ("harness.train", "harness.fit", "harness.validation", "harness.experiment", "harness.report")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def sources(package: str, skip: str | None = None) -> list[Path]:
    return [path for path in sorted((ROOT / package).rglob("*.py"))
            if skip is None or not path.is_relative_to(ROOT / skip)]


def offenders(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path.relative_to(ROOT)} imports {name}" for path in paths for name in sorted(imported_modules(path))
            if name.split(".")[0] in forbidden or name.startswith(tuple(f"{f}." for f in forbidden if "." in f))
            or name in forbidden]


@pytest.mark.parametrize("package, skip, forbidden", [
    ("models", None, ("harness", "ensemble")),
    ("harness", "harness/report", ("models", "ensemble")),
    ("harness/report", None, ("models",)),
    ("ensemble", None, ("models", *TRAINING_STAGES)),
])
def test_no_import_runs_back_up(package, skip, forbidden):
    found = offenders(sources(package, skip), forbidden)
    assert not found, "; ".join(found)


@pytest.mark.parametrize("package", ["harness", "ensemble", "models"])
def test_no_module_imports_a_command_line_module(package):
    """A package's own __main__.py runs its command line, and is the only one that may import it."""
    found = [f"{path.relative_to(ROOT)} imports {name}" for path in sources(package) if path.name != "__main__.py"
             for name in imported_modules(path) if name in COMMAND_LINE]
    assert not found, "; ".join(found)


@pytest.mark.parametrize("module", ["ensemble.cli", "harness.report.runs", "harness.outputs.reading"])
def test_reading_results_needs_no_torch(module):
    """The ensemble and the report run on a machine that only has the results."""
    done = subprocess.run([sys.executable, "-c", f"import sys, {module}; print('torch' in sys.modules)"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr[-2000:]
