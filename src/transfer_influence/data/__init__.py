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
from transfer_influence.data.plugins import is_import_path, resolve
from transfer_influence.data.splits import TargetSplit, few_shot_split
from transfer_influence.errors import InputError, close_matches, unknown_name_error


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
    """The loader function behind a registry name (an ``InputError`` with the close names if none),
    or the user's loader a ``"package.module:function"`` name imports."""
    if is_import_path(name):
        return resolve(name, "dataset")
    try:
        module, function = _LOADERS[name]
    except KeyError:
        raise unknown_name_error("dataset", name, DATASET_NAMES) from None
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
    loader = check_dataset(name, options)
    dataset = loader(**options)
    if not isinstance(dataset, ImageDataset):
        raise InputError(
            f"dataset {name!r} returned a {type(dataset).__name__}; a loader must return "
            "transfer_influence.data.ImageDataset (uint8 images (N, C, H, W), labels, class names, example ids)"
        )
    return dataset


def check_dataset(name: str, options: dict[str, Any]) -> Callable[..., ImageDataset]:
    """The loader of ``name`` once its name and option names are known good: a config is checked
    with this when it is read, so that a misspelt dataset or option is one clear ``InputError``
    (with the close names) before any study directory exists or any data is loaded."""
    loader = loader_for(name)
    signature = inspect.signature(loader)
    accepted = [p for p, parameter in signature.parameters.items() if parameter.kind is not parameter.VAR_KEYWORD]
    takes_any = any(parameter.kind is parameter.VAR_KEYWORD for parameter in signature.parameters.values())
    for option in options:
        if option not in accepted and not takes_any:
            guesses = close_matches(option, accepted)
            guess = f"; did you mean {' or '.join(map(repr, guesses))}?" if guesses else ""
            raise InputError(f"dataset {name!r}: unknown option {option!r}{guess}; its options are: {', '.join(accepted)}")
    try:
        signature.bind(**options)
    except TypeError as exc:
        raise InputError(f"dataset {name!r}: {exc}; its options are: {', '.join(accepted)}") from None
    return loader


__all__ = [
    "DATASET_NAMES",
    "check_dataset",
    "ImageDataset",
    "TargetSplit",
    "concatenate",
    "few_shot_split",
    "load_dataset",
]
