"""The suite's measures, in the order --report prints them."""
from __future__ import annotations

from benchmarks.runner import Measure
from benchmarks.trial_speed.accuracy import Accuracy
from benchmarks.trial_speed.allocator import Allocator
from benchmarks.trial_speed.cache import Cache
from benchmarks.trial_speed.contention import Contention
from benchmarks.trial_speed.epochs import Epochs
from benchmarks.trial_speed.flops import Flops
from benchmarks.trial_speed.optimizer import Optimizer
from benchmarks.trial_speed.options import Options
from benchmarks.trial_speed.overhead import Overhead
from benchmarks.trial_speed.precision import PrecisionTable
from benchmarks.trial_speed.startup import Startup
from benchmarks.trial_speed.timm_train import TimmTrain

MEASURES: list[Measure] = [Cache(), Overhead(), PrecisionTable(), Optimizer(), Startup(), Allocator(), Accuracy(),
                           Epochs(), TimmTrain(), Flops(), Options(), Contention()]
