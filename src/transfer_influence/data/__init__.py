"""Datasets: one :class:`ImageDataset` interface, loaders by name, and few-shot target splits.

Imports stay light (numpy only at import time; matplotlib, PIL, scikit-learn and mlxtend are
imported by the loader that needs them, and torch never), so that configuration code and worker
processes can import this package cheaply.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from transfer_influence.data.base import ImageDataset, concatenate
from transfer_influence.data.splits import TargetSplit, few_shot_split


# Registry name → (module, loader function), imported only when that dataset is loaded.
_LOADERS: dict[str, tuple[str, str]] = {
    "glyphs": ("glyphs", "load_glyphs"),
    "scrambled_glyphs": ("scrambled", "load_scrambled_glyphs"),
    "mnist5k": ("loaders", "load_mnist5k"),
    "digits": ("loaders", "load_digits28"),
    "fashion_mnist": ("loaders", "load_fashion_mnist"),
    "cifar10": ("formats", "load_cifar10"),
    "cifar100": ("formats", "load_cifar100"),
    "image_folder": ("formats", "load_image_folder"),
}


def loader_for(name: str) -> Callable[..., ImageDataset]:
    """The loader function behind a registry name."""
    try:
        module, function = _LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)}") from None
    return getattr(importlib.import_module(f"transfer_influence.data.{module}"), function)


#: Names accepted by :func:`load_dataset`.
DATASET_NAMES: tuple[str, ...] = tuple(_LOADERS)


def load_dataset(name: str, /, **options: Any) -> ImageDataset:
    """Load a dataset by registry name; ``options`` go to its loader unchanged.

    ``name`` is positional-only so that a loader's own ``name`` option (image_folder) passes through.

    glyphs -> :func:`~transfer_influence.data.glyphs.load_glyphs`,
    scrambled_glyphs -> :func:`~transfer_influence.data.scrambled.load_scrambled_glyphs`,
    mnist5k / digits / fashion_mnist -> :mod:`transfer_influence.data.loaders`,
    cifar10 / cifar100 / image_folder -> :mod:`transfer_influence.data.formats`.
    """
    loader = loader_for(name)
    _check_options(name, loader, options)
    return loader(**options)


def _check_options(name: str, loader: Callable[..., ImageDataset], options: dict[str, Any]) -> None:
    """Turn a misspelt or missing option into one clear error instead of a TypeError deep inside."""
    signature = inspect.signature(loader)
    try:
        signature.bind(**options)
    except TypeError as exc:
        accepted = ", ".join(signature.parameters)
        raise ValueError(f"dataset {name!r}: {exc}; its options are: {accepted}") from None


__all__ = [
    "DATASET_NAMES",
    "ImageDataset",
    "TargetSplit",
    "concatenate",
    "few_shot_split",
    "load_dataset",
]
