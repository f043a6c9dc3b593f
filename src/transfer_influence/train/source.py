"""Algorithm A: train a source model on the classes of one subset.

Small sources are trained by indexing tensors already on the device (``TensorBatches``): a
``DataLoader`` adds per-batch collation and Python overhead that costs a large share of the time of a
model this small (see ``bench/models_per_minute.py``). Large sources (ImageNet folders at native
resolution) do not fit on the device; ``LoaderBatches`` streams the same batches as uint8 from host
memory through DataLoader worker processes and pinned memory, so the GPU does not wait on the CPU.
Augmentation (``crop_flip``) runs on the device, on whole batches, in both paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Fixed pixel normalisation (MNIST statistics): every model sees the same input scale, whichever
# subset of classes it was trained on.
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081

CROP_RATIO = (3 / 4, 4 / 3)
"""Aspect-ratio range of RandomResizedCrop (torchvision's default)."""


def to_float_images(images_u8: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, C, H, W) → normalised float32 tensor."""
    if isinstance(images_u8, np.ndarray):
        images_u8 = torch.from_numpy(np.ascontiguousarray(images_u8))
    x = images_u8.to(device=device, dtype=torch.float32, non_blocking=True)
    return (x / 255.0 - PIXEL_MEAN) / PIXEL_STD


@dataclass(frozen=True)
class TrainSettings:
    """One training loop's settings. The defaults are the demo's recipe (Adam, one-cycle rate)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    optimizer: str = "adam"
    momentum: float = 0.9
    nesterov: bool = False
    lr_schedule: str = "one_cycle"
    lr_peak_epoch: float = 2.0
    label_smoothing: float = 0.0
    augment: str = "none"
    crop_scale: tuple[float, float] = (0.08, 1.0)
    frozen_batchnorm: bool = False
    """Keep every BatchNorm layer in eval mode: running statistics neither used from the batch nor updated."""


class Batches(Protocol):
    """Training examples that yield (float images on the device, labels on the device) in a given order."""

    def __len__(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


class TensorBatches:
    """Normalised images already on the training device: a batch is one index operation."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = order.to(self.images.device)
        for start in range(0, order.numel(), batch_size):
            batch = order[start : start + batch_size]
            yield self.images[batch], self.labels[batch]


class _IndexedImages(torch.utils.data.Dataset):
    """Hands a whole batch (a list of row numbers) out at once, as uint8: one copy per batch, no collation."""

    def __init__(self, images_u8: np.ndarray, labels: np.ndarray) -> None:
        self.images_u8 = images_u8
        self.labels = labels

    def __len__(self) -> int:
        return int(self.images_u8.shape[0])

    def __getitem__(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = np.sort(np.asarray(rows))
        position = np.argsort(np.argsort(np.asarray(rows)))
        images = self.images_u8[index][position]  # sorted reads are sequential on a memory map
        return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(self.labels[index][position])


class LoaderBatches:
    """uint8 images in host memory (or a memory map), streamed by DataLoader workers into pinned memory
    and converted to float on the device: the same batches, in the same order, as ``TensorBatches``."""

    def __init__(
        self,
        images_u8: np.ndarray,
        labels: np.ndarray,
        device: torch.device,
        workers: int,
        memory_format: torch.memory_format = torch.contiguous_format,
        rows: np.ndarray | None = None,
    ) -> None:
        """``rows``: the examples to train on (all when None), read in place: a subset of a large
        source is never copied."""
        self.dataset = _IndexedImages(images_u8, np.asarray(labels, dtype=np.int64))
        self.rows = np.arange(len(self.dataset)) if rows is None else np.asarray(rows, dtype=np.int64)
        self._device = device
        self.workers = workers
        self.memory_format = memory_format

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def device(self) -> torch.device:
        return self._device

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rows = self.rows[order.cpu().numpy()].tolist()
        plan = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
        loader = torch.utils.data.DataLoader(
            self.dataset,
            sampler=plan,
            batch_size=None,
            num_workers=self.workers,
            pin_memory=self._device.type == "cuda",
            prefetch_factor=4 if self.workers > 0 else None,
            persistent_workers=False,
        )
        for images_u8, labels in loader:
            images = to_float_images(images_u8, self._device).contiguous(memory_format=self.memory_format)
            yield images, labels.to(self._device, non_blocking=True)


def triangular_rate(step: int, steps_per_epoch: int, peak_epoch: float, epochs: int) -> float:
    """The paper's cyclic rate as a fraction of its peak: linear from 0 at step 0 to 1 at ``peak_epoch``,
    then linear to 0 at the end of ``epochs`` (FFCV's ``np.interp([0, peak, epochs], [0, 1, 0])``)."""
    position = step / steps_per_epoch
    peak = min(peak_epoch, float(epochs))
    if position <= peak:
        return position / peak
    return max(0.0, (epochs - position) / (epochs - peak))


def random_resized_crop_flip(
    images: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = CROP_RATIO,
) -> torch.Tensor:
    """RandomResizedCrop back to the input size and a random horizontal flip, for a whole batch at once.

    Crop boxes and flips are drawn on the CPU from ``generator`` (so a seed gives the same crops on
    any device) and applied on the images' device by one bilinear ``grid_sample``. Unlike
    torchvision, which retries a box that does not fit 10 times, a too-wide or too-tall box is
    clipped to the image, which keeps the draw a fixed number of random numbers per image.
    """
    n = images.shape[0]
    u = torch.rand(n, 5, generator=generator, dtype=torch.float64)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_ratio = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    centre_x = (1 - width) * (2 * u[:, 2] - 1)
    centre_y = (1 - height) * (2 * u[:, 3] - 1)
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0).to(torch.float64)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = centre_y
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.contiguous(memory_format=_memory_format_of(images))


def _memory_format_of(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else torch.contiguous_format


def _optimizer(parameters: list[nn.Parameter], settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=settings.lr,
            momentum=settings.momentum,
            nesterov=settings.nesterov and settings.momentum > 0,
            weight_decay=settings.weight_decay,
            foreach=True,
        )
    return torch.optim.Adam(parameters, lr=settings.lr, weight_decay=settings.weight_decay, foreach=True)


def learning_rate_schedule(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per batch: one-cycle (the demo's) or the paper's triangular cyclic rate."""
    if settings.lr_schedule == "triangular":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: triangular_rate(step, steps_per_epoch, settings.lr_peak_epoch, settings.epochs),
        )
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch
    )


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode (call after ``model.train()``)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def train_classifier(
    model: nn.Module,
    images: torch.Tensor | Batches,
    labels: torch.Tensor | None,
    settings: TrainSettings,
    generator: torch.Generator,
    amp: bool = False,
) -> float:
    """Train the parameters of ``model`` that require gradients; returns the mean loss of the last epoch.

    ``images`` is a tensor on the device (with ``labels``) or any ``Batches``. The batch order is drawn
    from ``generator`` before the batches are read, so every ``Batches`` sees the same batches.
    """
    data = images if labels is None else TensorBatches(images, labels)
    device = data.device
    n = len(data)
    steps_per_epoch = math.ceil(n / settings.batch_size)
    optimizer = _optimizer([p for p in model.parameters() if p.requires_grad], settings)
    schedule = learning_rate_schedule(optimizer, settings, steps_per_epoch)
    use_amp = amp and device.type == "cuda"
    model.train()
    if settings.frozen_batchnorm:
        freeze_batchnorm(model)
    last_epoch_loss = float("nan")
    for _ in range(settings.epochs):
        order = torch.randperm(n, generator=generator)
        total = torch.zeros((), device=device)
        for x, y in data.batches(order, settings.batch_size):
            if settings.augment == "crop_flip":
                x = random_resized_crop_flip(x, generator, settings.crop_scale)
            with torch.autocast(device.type, enabled=use_amp, dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y, label_smoothing=settings.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.detach() * y.numel()
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
