"""The start-up of timm's own train.py, as a reference for a trial's: the same imports and the same steps up to the
first optimiser step, written against timm's public API (timm's script itself is not part of this project).

    python benchmarks/timm_style_first_step.py DATA_DIR [--model resnet18] [--img_size 32] [--batch_size 32]
                                               [--workers 1]

DATA_DIR is an ImageFolder (one subfolder per class); benchmarks/bench_trial_speed.py makes one of symlinks to the
same photos the trial reads. Run under benchmarks/first_step.py, which stops it at the first step. Left out of
train.py's path: distributed set-up, EMA, checkpoint saver and logging to files, none of which runs before the
first step of a single-process run anyway."""
from __future__ import annotations

import argparse
import logging
import os
import time  # noqa: F401  (train.py's imports, kept so that both start-ups load the same modules)
from contextlib import suppress  # noqa: F401

import torch  # noqa: F401
import torch.nn as nn  # noqa: F401
import torchvision.utils  # noqa: F401
import yaml  # noqa: F401
from timm.data import create_dataset, create_loader, resolve_data_config
from timm.loss import LabelSmoothingCrossEntropy
from timm.models import create_model
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import setup_default_logging


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img_size", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    setup_default_logging()
    logging.getLogger("train").info("training %s", args.model)
    classes = len([d for d in os.listdir(args.data_dir) if os.path.isdir(os.path.join(args.data_dir, d))])
    model = create_model(args.model, pretrained=False, num_classes=classes)
    data_config = resolve_data_config({"input_size": (3, args.img_size, args.img_size)}, model=model)
    optimizer = create_optimizer_v2(model, opt="adam", lr=1e-3, weight_decay=0.0)
    scheduler, _ = create_scheduler_v2(optimizer, sched="cosine", num_epochs=1)
    dataset = create_dataset("", root=args.data_dir, split="train", is_training=True, batch_size=args.batch_size)
    loader = create_loader(dataset, input_size=data_config["input_size"], batch_size=args.batch_size,
                           is_training=True, use_prefetcher=False, interpolation="random",
                           mean=data_config["mean"], std=data_config["std"], num_workers=args.workers,
                           crop_pct=data_config["crop_pct"], hflip=0.5, color_jitter=0.4)
    criterion = LabelSmoothingCrossEntropy(smoothing=0.1)
    model.train()
    for images, targets in loader:
        loss = criterion(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()  # benchmarks/first_step.py ends the process here


if __name__ == "__main__":
    main()
