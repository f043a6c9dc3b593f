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


class BasicBlock(nn.Module):
    """Two 3×3 convolutions and an identity (or 1×1 projection) shortcut: ResNet-18/34's block."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carrying the stride, as torchvision's "ResNet v1.5"), 1×1 expand ×4."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _projection(cin: int, cout: int, stride: int) -> nn.Module:
    """The shortcut: identity when shapes agree, else a strided 1×1 convolution and BatchNorm."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


RESNET_LAYOUTS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}
"""Block type and blocks per stage of He et al. (2016), as in torchvision's ``resnet18`` / ``resnet50``."""

STEMS = ("cifar", "imagenet")


def resolve_stem(stem: str, image_size: int) -> str:
    """'auto' picks the CIFAR stem below 96 px: the ImageNet stem divides a 32×32 image by 4 before
    the first block, which leaves a 1×1 map at the last stage and costs ~20 points of accuracy."""
    if stem == "auto":
        return "cifar" if image_size < 96 else "imagenet"
    if stem not in STEMS:
        raise InputError(f"unknown model.stem {stem!r}; available: 'auto', 'cifar', 'imagenet'")
    return stem


class ResNet(TransferModel):
    """ResNet-18 / ResNet-50 (He et al. 2016), written out so that torchvision is not needed.

    The layout and initialisation follow torchvision's (so the ImageNet-stem ResNet-18 with 1000
    classes has its 11,689,512 parameters); ``stem='cifar'`` swaps the 7×7/2 convolution and max-pool
    for one 3×3/1 convolution, the usual choice for 32×32 inputs. ``embed`` is the globally
    average-pooled output of the last stage (512 or 2048 features), what the paper's transfer uses.
    """

    def __init__(self, arch: str, num_classes: int, in_channels: int = 3, stem: str = "imagenet") -> None:
        super().__init__()
        if arch not in RESNET_LAYOUTS:
            raise InputError(f"unknown ResNet {arch!r}; available: {', '.join(map(repr, RESNET_LAYOUTS))}")
        block, depths = RESNET_LAYOUTS[arch]
        self.stem = _stem(in_channels, stem)
        stages: list[nn.Module] = []
        cin = 64
        for index, (width, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            blocks = []
            for b in range(depth):
                blocks.append(block(cin, width, stride=2 if index > 0 and b == 0 else 1))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = cin
        self.head = nn.Linear(cin, num_classes)
        self._initialise()

    def _initialise(self) -> None:
        """He (fan-out) initialisation of convolutions, BatchNorm at scale 1 and shift 0, as torchvision."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x)))


def _stem(in_channels: int, stem: str) -> nn.Sequential:
    if stem == "imagenet":
        return nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
    if stem == "cifar":
        return nn.Sequential(nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
    raise InputError(f"unknown ResNet stem {stem!r}; available: 'cifar', 'imagenet'")


ARCHITECTURES = ("small_cnn", "mlp", *RESNET_LAYOUTS)


def build_model(
    arch: str,
    num_classes: int,
    in_channels: int,
    image_size: int,
    channels: Sequence[int],
    feature_dim: int,
    hidden_dim: int = 256,
    stem: str = "auto",
) -> TransferModel:
    """The source model of ``model.arch``; ResNets ignore ``channels``, ``feature_dim`` and
    ``hidden_dim`` (their widths are the standard ones), the others ignore ``stem``."""
    if arch == "small_cnn":
        return SmallCNN(num_classes, in_channels, image_size, channels, feature_dim)
    if arch == "mlp":
        return MLP(num_classes, in_channels, image_size, hidden_dim, feature_dim)
    if arch in RESNET_LAYOUTS:
        return ResNet(arch, num_classes, in_channels, resolve_stem(stem, image_size))
    raise InputError(f"unknown model.arch {arch!r}; available: {', '.join(map(repr, ARCHITECTURES))}")
