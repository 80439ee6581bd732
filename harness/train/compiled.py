"""torch.compile for training (`--compile`): inductor fuses each model's elementwise work (normalisation,
activations, their gradients) into generated kernels around oneDNN's convolutions on a CPU, cuDNN's on a GPU.

It costs a compilation before the first step (the training graph) and before the first validation (the eval
graph), paid once per process: inductor's cache on disk makes a later trial of the same model and sizes compile
much faster. `auto` compiles only GPU trials of at least COMPILE_FROM_EPOCHS epochs, so that short trials (the
tests', the demo's) never compile, and never on a CPU: there resnet18 at 224 px took 60 s to compile and its next
epoch ran at 0.94x the eager one's rate (docs/speed.md, "Against timm's own train.py"). The default is `off` until a
GPU's gain is measured. nn.Module.compile compiles in place, so the weights' names (checkpoints, resume, PBT,
predict.py) do not change."""
from __future__ import annotations

from torch import nn

COMPILE_MODES = ("auto", "on", "off")
# Not measured on a GPU yet: a first guess at the epochs that pay for the compilation (benchmarks.trial_speed options).
COMPILE_FROM_EPOCHS = 10


def wants_compile(mode: str, epochs: int, device_type: str) -> bool:
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    return mode == "on" or (mode == "auto" and device_type == "cuda" and epochs >= COMPILE_FROM_EPOCHS)


def compile_model(model: nn.Module) -> nn.Module:
    """The same module, its forward compiled (a shape it has not seen compiles again, e.g. a last smaller batch)."""
    model.compile(dynamic=False)
    return model
