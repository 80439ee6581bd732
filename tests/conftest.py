"""Shared fixtures: a small demo data set in the contest's layout, and an isolated cache and hub per test run."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Set before any test module is collected: huggingface_hub reads HF_HUB_OFFLINE once, when timm first imports it
# (collection does), and online it retries a missing network for most of a minute before giving up.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
# One thread of torch arithmetic per process (this one and every trial it starts), before torch is imported: on a
# machine whose cores other work keeps busy, two threads per trial ran a 64 px epoch 10x slower than one (their
# barriers wait for a preempted thread; docs/speed.md), and the tests' 32 px models gain nothing from a second.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def isolated_environment(tmp_path_factory):
    """No test reads or writes the user's caches, and hub lookups fail at once instead of retrying a network."""
    saved = dict(os.environ)
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """24 people x 7 photos and 40 eval images, at a quarter of the contest's resolution to keep tests quick."""
    from harness.data.demo import generate

    return generate(tmp_path_factory.mktemp("data") / "demo", people=24, eval_images=40, width=96, height=128,
                    seed=3)
