"""Algorithm A: train a source model on the classes of one subset.

Training reads mini-batches by indexing tensors already in memory. A ``DataLoader`` adds per-batch
collation and Python overhead that costs a large share of the time of a model this small (see
``bench/models_per_minute.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Fixed pixel normalisation (MNIST statistics): every model sees the same input scale, whichever
# subset of classes it was trained on.
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081


def to_float_images(images_u8: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, C, H, W) → normalised float32 tensor."""
    x = torch.from_numpy(np.ascontiguousarray(images_u8)).to(device=device, dtype=torch.float32)
    return (x / 255.0 - PIXEL_MEAN) / PIXEL_STD


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: TrainSettings,
    generator: torch.Generator,
    amp: bool = False,
) -> float:
    """Adam with a one-cycle learning rate; returns the mean loss of the last epoch."""
    n = images.shape[0]
    steps_per_epoch = math.ceil(n / settings.batch_size)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, foreach=True
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch
    )
    use_amp = amp and images.device.type == "cuda"
    model.train()
    last_epoch_loss = float("nan")
    for _ in range(settings.epochs):
        order = torch.randperm(n, generator=generator).to(images.device)
        total = torch.zeros((), device=images.device)
        for start in range(0, n, settings.batch_size):
            batch = order[start : start + settings.batch_size]
            with torch.autocast(images.device.type, enabled=use_amp, dtype=torch.bfloat16):
                loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.detach() * batch.numel()
        last_epoch_loss = float(total) / n
    return last_epoch_loss


@torch.inference_mode()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024) -> float:
    model.eval()
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        logits = model(images[start : start + batch_size])
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    return correct / max(1, images.shape[0])
