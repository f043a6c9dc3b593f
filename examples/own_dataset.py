"""A user's own dataset loader, named in a config as ``dataset: "examples/own_dataset.py:load_digits"``.

Any function returning ``transfer_influence.data.ImageDataset`` works: uint8 images ``(N, C, H, W)``,
integer labels, class names and one stable id per example. This one wraps scikit-learn's 8×8 digits
(upscaled to 28×28, the glyph source's shape) and keeps a fixed train/test split by position, as a
user's own data with its own test split would come.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits as _sklearn_digits

from transfer_influence.data import ImageDataset

__version__ = "1.0"

SPLITS = ("train", "test")


def load_digits(split: str = "train", max_per_class: int | None = None) -> ImageDataset:
    """The first two thirds of scikit-learn's digits (``train``) or the last third (``test``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    bunch = _sklearn_digits()
    pixels = np.asarray(bunch.images, dtype=np.float64) / 16.0 * 255.0
    cut = 2 * len(pixels) // 3
    rows = np.arange(cut) if split == "train" else np.arange(cut, len(pixels))
    if max_per_class is not None:
        labels = bunch.target[rows]
        rows = np.concatenate([rows[labels == c][:max_per_class] for c in range(10)])
        rows.sort()
    big = np.kron(pixels[rows], np.ones((3, 3)))  # 8×8 → 24×24
    images = np.pad(big, ((0, 0), (2, 2), (2, 2))).round().astype(np.uint8)[:, None]
    return ImageDataset(
        name=f"own_digits/{split}",
        images=images,
        labels=bunch.target[rows].astype(np.int64),
        class_names=tuple(str(d) for d in range(10)),
        example_ids=np.array([f"own_digits/{int(i):04d}" for i in rows]),
    )
