"""A user's own source trainer and ``nn.Module``, named in a config as
``train.trainer: "examples/own_trainer.py:make_trainer"``.

The study calls ``make_trainer(config, data, device)`` once per worker process, then
``trainer.train(subset)`` for every run: ``subset.train_set()`` holds the run's source images with
labels renumbered ``0..subset.num_classes-1``. ``train`` returns the backbone (images → features);
the study fits the transfer head on its features and records the target outputs as for its own
models. With ``subset.pretrain`` False (the random-initialisation baseline) the backbone comes back
untrained. Seeding from ``subset.seed`` keeps a study deterministic.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from transfer_influence.train.trainers import SourceSubset, TrainedSource

__version__ = "1.0"


class OwnNet(nn.Module):
    """Any architecture: here two convolutions and a feature layer, with a classifier for the source."""

    def __init__(self, in_channels: int, num_classes: int, feature_dim: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(16 * 16, feature_dim), nn.ReLU(),
        )
        self.classifier = nn.Linear(feature_dim, max(num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class OwnTrainer:
    """Plain Adam on the subset, for ``config.train.epochs`` epochs of ``config.train.batch_size``."""

    def __init__(self, epochs: int, batch_size: int, lr: float) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr

    def train(self, subset: SourceSubset) -> TrainedSource:
        channels = subset.data.source_train.image_shape[0]
        net = OwnNet(channels, subset.num_classes).to(subset.device)
        if not subset.pretrain:
            return TrainedSource(net.features)
        images, labels = subset.tensors(subset.train_set())
        optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
        generator = torch.Generator().manual_seed(subset.seed)
        net.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(labels), generator=generator).to(subset.device)
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                optimizer.zero_grad()
                nn.functional.cross_entropy(net(images[batch]), labels[batch]).backward()
                optimizer.step()
        return TrainedSource(net.features, _accuracy(net, *subset.tensors(subset.holdout_set())))


@torch.inference_mode()
def _accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    if len(labels) == 0:
        return math.nan
    net.eval()
    return float((net(images).argmax(1) == labels).float().mean())


def make_trainer(config, data, device) -> OwnTrainer:  # type: ignore[no-untyped-def]
    """The factory the config names: read what it needs from the study's config."""
    return OwnTrainer(config.train.epochs, config.train.batch_size, config.train.lr)
