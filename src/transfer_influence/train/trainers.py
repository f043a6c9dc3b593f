"""The source-trainer protocol: the one place a worker gets the backbone it transfers.

A worker builds its trainer once, from ``train.trainer`` (``"package.module:factory"``, called as
``factory(config, data, device)``) or, when that is unset, the built-in trainer of ``model.arch``.
For each run it hands the trainer the run's source subset and gets back the backbone — an
``nn.Module`` from normalised images ``(N, C, H, W)`` to features ``(N, D)`` — which the study then
transfers to every target exactly as it transfers its own models. Both kinds of trainer meet the same
protocol, so a user's ``nn.Module`` enters a study without the study knowing anything about it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ..data import ImageDataset
from ..data.plugins import resolve
from ..errors import InputError
from ..study.config import StudyConfig
from ..study.views import StudyData
from .models import TransferModel
from .source import to_float_images


@dataclass(frozen=True)
class SourceSubset:
    """One run's share of the source: the training rows it may learn from and their classes.

    ``classes[k]`` is the source class a model's label ``k`` stands for; ``pretrain`` is False for the
    random-initialisation baseline, whose backbone must come back untrained. ``seed`` is the run's
    seed (torch's global generator is already seeded with it).
    """

    data: StudyData
    rows: np.ndarray
    classes: np.ndarray
    seed: int
    pretrain: bool
    device: torch.device

    @property
    def num_classes(self) -> int:
        return int(self.classes.size)

    def _renumber(self, dataset: ImageDataset, rows: np.ndarray) -> ImageDataset:
        remap = np.full(dataset.num_classes, -1, dtype=np.int64)
        remap[self.classes] = np.arange(self.classes.size)
        return ImageDataset(
            name=dataset.name,
            images=dataset.images[rows],
            labels=remap[dataset.labels[rows]],
            class_names=tuple(dataset.class_names[c] for c in self.classes),
            example_ids=dataset.example_ids[rows],
        )

    def train_set(self) -> ImageDataset:
        """The subset's training images (uint8) with labels renumbered 0..num_classes-1."""
        return self._renumber(self.data.source_train, self.rows)

    def holdout_set(self) -> ImageDataset:
        """The held-out images of the subset's classes, labelled as ``train_set``, for source accuracy."""
        holdout = self.data.source_holdout
        return self._renumber(holdout, np.flatnonzero(np.isin(holdout.labels, self.classes)))

    def tensors(self, dataset: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
        """A dataset's images as the normalised float tensor the transfer step feeds the backbone,
        and its labels, both on the run's device."""
        return to_float_images(dataset.images, self.device), torch.from_numpy(dataset.labels).to(self.device)


@dataclass
class TrainedSource:
    """What a trainer returns: the backbone, and its accuracy on the subset's holdout (NaN: not measured)."""

    backbone: nn.Module
    source_accuracy: float = math.nan


@runtime_checkable
class SourceTrainer(Protocol):
    """Train (or, for ``pretrain=False``, only initialise) a backbone on one run's source subset."""

    def train(self, subset: SourceSubset) -> TrainedSource | nn.Module: ...


TrainerFactory = Callable[[StudyConfig, StudyData, torch.device], SourceTrainer]


class FeatureBackbone(TransferModel):
    """A user's backbone seen as the study's models are: ``embed`` is its forward pass, and the
    placeholder head (replaced by every transfer) has the width its features have."""

    def __init__(self, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # type: ignore[no-any-return]


def as_transfer_model(trained: TrainedSource | nn.Module, sample: torch.Tensor, where: str) -> tuple[TransferModel, float]:
    """The trainer's result as a model the transfer step takes, with its source accuracy; anything
    but a backbone giving (N, D) features is refused naming the trainer."""
    if isinstance(trained, TrainedSource) and isinstance(trained.backbone, nn.Module):
        result = trained
    elif isinstance(trained, nn.Module):
        result = TrainedSource(trained)
    else:
        raise InputError(f"train.trainer {where!r} returned a {type(trained).__name__}; return a TrainedSource or an nn.Module")
    if isinstance(result.backbone, TransferModel):
        return result.backbone, float(result.source_accuracy)
    backbone = result.backbone.to(sample.device)
    backbone.eval()
    with torch.inference_mode():
        features = backbone(sample[:1])
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise InputError(
            f"train.trainer {where!r}: the backbone must map images (N, C, H, W) to features (N, D), got {shape}"
        )
    return FeatureBackbone(backbone, int(features.shape[1])).to(sample.device), float(result.source_accuracy)


def plugin_trainer(config: StudyConfig, data: StudyData, device: torch.device) -> SourceTrainer:
    """The trainer ``train.trainer`` names, checked to meet the protocol before the first run."""
    path = str(config.train.trainer)
    factory: TrainerFactory = resolve(path, "train.trainer")
    trainer = factory(config, data, device)
    if not isinstance(trainer, SourceTrainer):
        raise InputError(
            f"train.trainer {path!r} returned a {type(trainer).__name__} without a train(subset) method; the factory "
            "must return an object whose train(subset) gives the trained backbone"
        )
    return trainer


def check_trainer(config: StudyConfig, data: StudyData) -> None:
    """Build ``train.trainer``'s trainer once on the CPU in the calling process, so that a factory
    that fails or returns no trainer is one clear error before a study directory or worker exists
    (a worker process failing to start would only say that it died)."""
    if config.train.trainer:
        plugin_trainer(config, data, torch.device("cpu"))
