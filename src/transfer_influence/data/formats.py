"""Loaders for standard on-disk image dataset formats, for users who bring their own data.

* CIFAR-10 / CIFAR-100 "python version" pickle batches, as distributed by their authors.
* An ImageNet-style folder tree: ``root/<class name>/<image>.png|jpg|jpeg``, classes sorted.
* :func:`resize` / :func:`to_grayscale_28`, so that an RGB dataset can feed the 1x28x28 models.

Nothing here downloads: point ``root`` at files you already have.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from transfer_influence.data.base import ImageDataset
from transfer_influence.data.loaders import first_per_class
from transfer_influence.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_CIFAR_SPLITS = ("train", "test", "all")


# --------------------------------------------------------------------------------------------
# CIFAR pickles


def _unpickle(path: Path) -> dict[str, Any]:
    """A CIFAR batch file as a dict with str keys (the originals are Python 2 pickles, bytes keys)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"CIFAR file {path} not found: extract the 'python version' archive "
            "(cifar-10-python.tar.gz / cifar-100-python.tar.gz) and point root at its folder"
        )
    with path.open("rb") as handle:
        try:
            content = pickle.load(handle, encoding="bytes")
        except Exception as exc:  # pickle raises many types on garbage
            raise InputError(f"{path}: not a CIFAR pickle batch ({exc})") from exc
    if not isinstance(content, dict):
        raise InputError(f"{path}: expected a dict, found {type(content).__name__}")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in content.items()}


def _names(values: Sequence[Any]) -> tuple[str, ...]:
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def _cifar_images(batch: dict[str, Any], path: Path) -> np.ndarray:
    """Rows of 3072 bytes (1024 red, 1024 green, 1024 blue, each row-major 32x32) as (N,3,32,32)."""
    data = np.asarray(batch.get("data"))
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise InputError(f"{path}: 'data' must be (N, 3072), found {data.shape}")
    return np.ascontiguousarray(data.astype(np.uint8).reshape(-1, 3, 32, 32))


def _resolve_root(root: str | Path, subfolder: str) -> Path:
    folder = Path(root)
    if (folder / subfolder).is_dir():
        return folder / subfolder  # the folder that holds the extracted archive
    if not folder.is_dir():
        raise FileNotFoundError(f"CIFAR folder {folder} does not exist")
    return folder


def _check_split(split: str) -> None:
    if split not in _CIFAR_SPLITS:
        raise InputError(f"split must be one of {_CIFAR_SPLITS}, got {split!r}")


def _assemble(
    name: str,
    parts: list[tuple[str, np.ndarray, np.ndarray]],
    class_names: tuple[str, ...],
    max_per_class: int | None,
) -> ImageDataset:
    images, labels, ids = [], [], []
    for split_name, x, y in parts:
        if x.shape[0] != y.shape[0]:
            raise InputError(f"{name}/{split_name}: {x.shape[0]} images but {y.shape[0]} labels")
        keep = first_per_class(y, max_per_class)
        images.append(x[keep])
        labels.append(y[keep])
        ids.append(np.array([f"{name}/{split_name}/{int(i):05d}" for i in keep]))
    return ImageDataset(
        name=name,
        images=np.concatenate(images),
        labels=np.concatenate(labels).astype(np.int64),
        class_names=class_names,
        example_ids=np.concatenate(ids),
    )


def load_cifar10(
    root: str | Path, split: str = "train", max_per_class: int | None = None
) -> ImageDataset:
    """CIFAR-10 from ``data_batch_1..5`` / ``test_batch`` / ``batches.meta`` as uint8 (N,3,32,32).

    ``root`` is the ``cifar-10-batches-py`` folder or the folder containing it. Example ids are
    ``cifar10/<split>/<index within split>``.
    """
    _check_split(split)
    folder = _resolve_root(root, "cifar-10-batches-py")
    class_names = _names(_unpickle(folder / "batches.meta")["label_names"])
    files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    parts = []
    for part in ("train", "test") if split == "all" else (split,):
        xs, ys = [], []
        for file_name in files[part]:
            batch = _unpickle(folder / file_name)
            xs.append(_cifar_images(batch, folder / file_name))
            ys.append(np.asarray(batch["labels"], dtype=np.int64))
        parts.append((part, np.concatenate(xs), np.concatenate(ys)))
    return _assemble("cifar10", parts, class_names, max_per_class)


def load_cifar100(
    root: str | Path,
    split: str = "train",
    label_mode: str = "fine",
    max_per_class: int | None = None,
) -> ImageDataset:
    """CIFAR-100 from ``train`` / ``test`` / ``meta`` as uint8 (N,3,32,32).

    ``label_mode`` "fine" (100 classes, ``fine_labels``) or "coarse" (20 superclasses).
    ``root`` is the ``cifar-100-python`` folder or the folder containing it.
    """
    _check_split(split)
    if label_mode not in ("fine", "coarse"):
        raise InputError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}")
    folder = _resolve_root(root, "cifar-100-python")
    class_names = _names(_unpickle(folder / "meta")[f"{label_mode}_label_names"])
    parts = []
    for part in ("train", "test") if split == "all" else (split,):
        batch = _unpickle(folder / part)
        labels = np.asarray(batch[f"{label_mode}_labels"], dtype=np.int64)
        parts.append((part, _cifar_images(batch, folder / part), labels))
    return _assemble("cifar100", parts, class_names, max_per_class)


# --------------------------------------------------------------------------------------------
# folder tree


def _convert(image: Any, size: int, grayscale: bool, keep_aspect: bool) -> np.ndarray:
    """A PIL image as (C, size, size) uint8: shorter side to ``size`` then centre crop (or stretch)."""
    from PIL import Image

    image = image.convert("L" if grayscale else "RGB")
    if keep_aspect:
        w, h = image.size
        scale = size / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    else:
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else np.transpose(array, (2, 0, 1))


def load_image_folder(
    root: str | Path,
    size: int = 32,
    grayscale: bool = False,
    keep_aspect: bool = True,
    max_per_class: int | None = None,
    name: str | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> ImageDataset:
    """An ImageNet-style tree ``root/<class>/**/<image>`` as uint8 (N, C, size, size).

    Classes are the sorted sub-folder names (hidden ones ignored), images sorted by path within a
    class, so labels and order do not depend on the file system. ``keep_aspect`` resizes the
    shorter side and centre-crops; otherwise images are stretched. Example ids are
    ``<name>/<class>/<path within the class folder>``.
    """
    from PIL import Image

    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    if size < 1:
        raise InputError(f"size must be positive, got {size}")
    dataset_name = name or "image_folder"
    suffixes = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    class_dirs = sorted(
        (d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.name,
    )
    if not class_dirs:
        raise InputError(f"{folder} has no class sub-folders (expected root/<class>/<image>)")
    images: list[np.ndarray] = []
    labels: list[int] = []
    ids: list[str] = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(
            p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
        )
        if not files:
            raise InputError(
                f"class folder {class_dir} has no {sorted(suffixes)} images; remove it or add some"
            )
        if max_per_class is not None:
            files = files[:max_per_class]
        for path in files:
            try:
                with Image.open(path) as image:
                    images.append(_convert(image, size, grayscale, keep_aspect))
            except OSError as exc:
                raise InputError(f"{path}: cannot be read as an image ({exc})") from exc
            labels.append(label)
            ids.append(f"{dataset_name}/{class_dir.name}/{path.relative_to(class_dir).as_posix()}")
    return ImageDataset(
        name=dataset_name,
        images=np.stack(images),
        labels=np.asarray(labels, dtype=np.int64),
        class_names=tuple(d.name for d in class_dirs),
        example_ids=np.asarray(ids),
    )


# --------------------------------------------------------------------------------------------
# conversions


def resize(
    dataset: ImageDataset, size: int, channels: int | None = None, name: str | None = None
) -> ImageDataset:
    """The same examples at ``size`` x ``size`` (anti-aliased) with ``channels`` 1 or 3.

    RGB to grey uses the ITU-R 601 luma weights (as PIL's "L"); grey to RGB repeats the channel.
    Labels, class names and example ids are unchanged, so results join across the two versions.
    """
    from PIL import Image

    c, h, w = dataset.image_shape
    target_c = c if channels is None else channels
    if target_c not in (1, 3) or c not in (1, 3):
        raise InputError(f"only 1 or 3 channels are supported (have {c}, asked {target_c})")
    if size < 1:
        raise InputError(f"size must be positive, got {size}")
    out = np.empty((len(dataset), target_c, size, size), np.uint8)
    mode = "L" if target_c == 1 else "RGB"
    for i, image in enumerate(dataset.images):
        pil = Image.fromarray(image[0] if c == 1 else np.transpose(image, (1, 2, 0)))
        pil = pil.convert(mode)
        if (h, w) != (size, size):
            pil = pil.resize((size, size), Image.Resampling.LANCZOS)
        array = np.asarray(pil, dtype=np.uint8)
        out[i] = array[None] if target_c == 1 else np.transpose(array, (2, 0, 1))
    return ImageDataset(
        name=name or dataset.name,
        images=out,
        labels=dataset.labels,
        class_names=dataset.class_names,
        example_ids=dataset.example_ids,
    )


def to_grayscale_28(dataset: ImageDataset, name: str | None = None) -> ImageDataset:
    """The dataset as 1x28x28 grey images, the input shape of the digit models."""
    return resize(dataset, 28, 1, name=name)
