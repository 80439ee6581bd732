"""MixUp and CutMix on training batches (`--mixup ALPHA`, `--cutmix ALPHA`, `--mix_prob P`), by timm's Mixup.

timm mixes a whole batch with its reverse (image i with image B-1-i) by one lambda drawn per batch; with both
alphas above 0 it picks CutMix or MixUp with probability 0.5 each; with probability 1 - mix_prob it leaves the
batch as it is. Its randomness is numpy's global generator, which checkpoints save, so a resumed run mixes as an
uninterrupted one.

The mixed targets are probabilities, per head: lam * onehot(y_i) + (1 - lam) * onehot(y_{B-1-i}). timm mixes one
label space; a model with several heads gets them from timm's target over the heads' joint labels (their mixed
radix index), summed down to each head: the marginal of a mixture of two one-hots is the mixture of their
marginals, so every head sees the same lambda and the same partner.

timm needs an even batch: of an odd batch the first B-1 images are mixed and the last one is left as it is (its
target stays one-hot), so no batch size turns mixing off."""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch

Heads = Mapping[str, int]


def mixing_enabled(mixup: float, cutmix: float, mix_prob: float) -> bool:
    """timm's Mixup refuses to run with both alphas 0; a probability of 0 would mix nothing either."""
    return (mixup > 0 or cutmix > 0) and mix_prob > 0


def mixable(batch: int) -> int:
    """How many images of a batch timm can mix: the largest even number not above it."""
    return batch - batch % 2


def joint_labels(targets: torch.Tensor, heads: Heads) -> torch.Tensor:
    """[B, heads] labels -> [B] index of the combination (the first head most significant)."""
    joint = torch.zeros(len(targets), dtype=torch.long, device=targets.device)
    for h, classes in enumerate(heads.values()):
        joint = joint * classes + targets[:, h]
    return joint


def head_marginals(joint: torch.Tensor, heads: Heads) -> dict[str, torch.Tensor]:
    """[B, prod K] probabilities over the joint labels -> task -> [B, K_task]."""
    grid = joint.reshape(len(joint), *heads.values())
    axes = range(1, len(heads) + 1)
    return {task: grid.sum(dim=tuple(a for a in axes if a != h)) if len(heads) > 1 else grid
            for h, task in zip(axes, heads)}


def dominant_labels(targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """[B, heads]: each head's most probable class of its mixed target (train accuracy under mixing)."""
    return torch.stack([target.argmax(1) for target in targets.values()], dim=1)


class BatchMixer:
    def __init__(self, heads: Heads, mixup: float, cutmix: float, mix_prob: float) -> None:
        from timm.data import Mixup

        if not mixing_enabled(mixup, cutmix, mix_prob):
            raise ValueError("BatchMixer needs mixup or cutmix above 0 and mix_prob above 0")
        self.heads = dict(heads)
        self.joint_classes = math.prod(self.heads.values())
        self.mix = Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=mix_prob, label_smoothing=0.0,
                         num_classes=self.joint_classes)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """images [B, C, H, W] (changed in place), targets [B, heads] -> (images, task -> [B, K] probabilities)."""
        joint = torch.nn.functional.one_hot(joint_labels(targets, self.heads), self.joint_classes).float()
        even = mixable(len(images))
        if even:
            # timm mixes the view in place: the batch's own first `even` images and their targets.
            _, joint[:even] = self.mix(images[:even], joint_labels(targets[:even], self.heads))
        return images, head_marginals(joint, self.heads)

    def mix_probabilities(self, images: torch.Tensor, targets: dict[str, torch.Tensor]
                          ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Soft targets mixed with the images: each head's rows lam * t_i + (1 - lam) * t_{B-1-i}, lam drawn and
        applied to the images by timm as for hard labels (its batch mode: one lam per batch)."""
        even = mixable(len(images))
        if not even:
            return images, targets
        lam = self.mix._mix_batch(images[:even])  # timm's own draw and image mixing, without its one-hot targets
        mixed = {}
        for task, rows in targets.items():
            rows = rows.clone()
            rows[:even] = lam * rows[:even] + (1 - lam) * rows[:even].flip(0)
            mixed[task] = rows
        return images, mixed
