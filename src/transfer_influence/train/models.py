"""Source architectures.

A model is a *backbone* that maps images to a feature vector plus a linear *head*. Fixed-feature
transfer keeps the backbone and replaces the head, so the split is explicit in the module layout.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import InputError


class TransferModel(nn.Module):
    """A backbone (``embed``: images → feature vector) and a linear ``head`` on its features."""

    head: nn.Linear
    feature_dim: int

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class SmallCNN(TransferModel):
    """Three 3×3 conv blocks and one dense feature layer, sized for 28×28 grey images.

    The first two blocks pool *before* BatchNorm and ReLU (conv → max-pool → BN → ReLU), so that
    normalisation and activation run on a quarter of the pixels; with channels-last tensors this
    trains 2× faster on one CPU core than conv → BN → ReLU → pool in NCHW, and the study's
    quality is bounded by how many models it can afford.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        image_size: int = 28,
        channels: Sequence[int] = (16, 32, 16),
        feature_dim: int = 128,
    ) -> None:
        super().__init__()
        if len(channels) != 3:
            raise InputError(f"SmallCNN takes three channel widths, got {list(channels)}")
        c1, c2, c3 = channels
        self.backbone_convs = nn.Sequential(
            _conv_block(in_channels, c1, pool=True),
            _conv_block(c1, c2, pool=True),
            _conv_block(c2, c3, pool=False),
            nn.Flatten(),
        )
        spatial = image_size // 4
        self.features = nn.Sequential(nn.Linear(c3 * spatial * spatial, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's feature vector: what fixed-feature transfer trains a new head on."""
        return self.features(self.backbone_convs(x))


class MLP(TransferModel):
    """Two dense layers on the flattened image: a backbone with no convolution at all.

    It exists for the paper's cross-architecture check (App. E.5.2): are class influences measured
    with one architecture the ones to act on when the source model is another? An MLP shares no
    inductive bias with the CNN (no locality, no weight sharing), so agreement is not built in.
    """

    def __init__(
        self, num_classes: int, in_channels: int = 1, image_size: int = 28, hidden_dim: int = 256, feature_dim: int = 128
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * image_size * image_size, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _conv_block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def build_model(
    arch: str,
    num_classes: int,
    in_channels: int,
    image_size: int,
    channels: Sequence[int],
    feature_dim: int,
    hidden_dim: int = 256,
) -> TransferModel:
    if arch == "small_cnn":
        return SmallCNN(num_classes, in_channels, image_size, channels, feature_dim)
    if arch == "mlp":
        return MLP(num_classes, in_channels, image_size, hidden_dim, feature_dim)
    raise InputError(f"unknown model.arch {arch!r}; available: 'small_cnn', 'mlp'")
