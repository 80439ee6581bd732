"""The yardstick's plain run: what a competitor without the harness writes in a few dozen lines with timm's default
recipe (its train.py defaults: SGD with Nesterov momentum at lr 0.1 x batch / 256, weight decay 2e-5, label
smoothing 0.1, cosine schedule with warmup; RandomResizedCrop, flip and colour jitter from timm.data.create_transform),
trained on every training image for as many epochs as fit a wall-clock budget, then predicting the held-out images.

    python -m benchmarks.plain_timm --data data/real/face-mask --minutes 15 --out bench_out/plain.csv
                                    [--model resnet18] [--img_size 64] [--batch_size 32] [--seed 0] [--threads 2]

The images are decoded once into memory (shorter side 1.15 x img_size), inside the budget (as the harness decodes
its image cache once); the epochs are chosen
from the time of the first 20 training steps, so the schedule ends within the budget. bf16 autocast and
channels_last where the CPU has bf16 units (as timm's train.py --amp --amp-dtype bfloat16 --channels-last)."""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from harness.data.layouts import load_eval, load_train
from harness.train.precision import cpu_has_native_bf16

CALIBRATION_STEPS = 20


def preload(paths: list[Path], side: int) -> list[Image.Image]:
    images = []
    for path in paths:
        with Image.open(path) as image:
            image.draft("RGB", (side, side))  # a JPEG decodes at the smallest scale still above the target
            image = image.convert("RGB")
            scale = side / min(image.size)
            images.append(image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                       Image.BILINEAR))
    return images


class Photos(torch.utils.data.Dataset):
    def __init__(self, images: list[Image.Image], labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), int(self.labels[index])


def train(args: argparse.Namespace, started: float) -> pd.DataFrame:
    import timm
    from timm.data import create_transform
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    train_set, eval_set = load_train(args.data), load_eval(args.data)
    labels = train_set.labels["multi"]
    side = round(args.img_size * 1.15)
    images = preload([train_set.root / p for p in train_set.paths], side)
    data = Photos(images, labels, create_transform(args.img_size, is_training=True))
    loader = torch.utils.data.DataLoader(data, args.batch_size, shuffle=True, drop_last=True, num_workers=2,
                                         persistent_workers=True)
    model = timm.create_model(args.model, pretrained=False, num_classes=len(train_set.class_names["multi"]))
    bf16 = cpu_has_native_bf16()
    model = model.to(memory_format=torch.channels_last) if bf16 else model
    optimizer = create_optimizer_v2(model, "sgd", lr=0.1 * args.batch_size / 256, weight_decay=2e-5, momentum=0.9)
    criterion = LabelSmoothingCrossEntropy(0.1)

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = criterion(model(inputs.contiguous(memory_format=torch.channels_last) if bf16 else inputs),
                             targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.train()
    calibration = time.perf_counter()
    batches = iter(loader)
    for _ in range(min(CALIBRATION_STEPS, len(loader))):
        step(*next(batches))
    per_epoch = (time.perf_counter() - calibration) / min(CALIBRATION_STEPS, len(loader)) * len(loader)
    left = args.minutes * 60 - (time.perf_counter() - started) - 2 * per_epoch * 0.15  # prediction's share
    epochs = max(1, math.floor(left / per_epoch))
    scheduler, _ = create_scheduler_v2(optimizer, "cosine", num_epochs=epochs, warmup_epochs=min(5, epochs // 4),
                                       warmup_lr=1e-5)
    for epoch in range(epochs):
        scheduler.step(epoch)
        for inputs, targets in loader:
            step(inputs, targets)
    print(f"trained {epochs} epochs of {len(data)} images ({per_epoch:.0f} s each, calibrated)")
    return predict(model, eval_set, args, bf16)


@torch.inference_mode()
def predict(model: torch.nn.Module, eval_set, args: argparse.Namespace, bf16: bool) -> pd.DataFrame:
    from timm.data import create_transform

    transform = create_transform(args.img_size, is_training=False)
    images = preload([eval_set.root / i for i in eval_set.image_ids], round(args.img_size * 1.15))
    model.eval()
    probs = []
    for start in range(0, len(images), 64):
        batch = torch.stack([transform(image) for image in images[start:start + 64]])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            probs.append(torch.softmax(model(batch).float(), 1))
    probs = torch.cat(probs).numpy()
    frame = pd.DataFrame(probs, columns=[str(k) for k in range(probs.shape[1])])
    frame.insert(0, "ImageID", eval_set.image_ids)
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plain_timm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    frame = train(args, started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {args.out} after {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
