"""Digit targets, Fashion-MNIST IDX files and the dataset registry."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

import transfer_influence.data as data_pkg
from transfer_influence.data import ImageDataset, load_dataset
from transfer_influence.data.loaders import (
    DEFAULT_FASHION_ROOT,
    FASHION_CLASSES,
    IDXFormatError,
    first_per_class,
    load_digits28,
    load_fashion_mnist,
    load_mnist5k,
    read_idx,
    upscale_digit,
)

# ----------------------------------------------------------------------------------- IDX files


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file as the format spec lays it out, written independently of the parser."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(dtype).tobytes()


def write_idx(path: Path, array: np.ndarray, code: int = 0x08, gz: bool = False) -> Path:
    raw = idx_bytes(array, code)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_uint8(tmp_path: Path, gz: bool) -> None:
    array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    path = write_idx(tmp_path / ("images.gz" if gz else "images"), array, gz=gz)
    parsed = read_idx(path)
    assert parsed.dtype == np.uint8 and parsed.shape == (3, 4, 5)
    assert np.array_equal(parsed, array)


def test_idx_other_dtypes_are_big_endian(tmp_path: Path) -> None:
    ints = np.array([1, -2, 70000], dtype=np.int32)
    assert np.array_equal(read_idx(write_idx(tmp_path / "i", ints, 0x0C)), ints)
    floats = np.array([[0.5, -1.25]], dtype=np.float32)
    assert np.array_equal(read_idx(write_idx(tmp_path / "f", floats, 0x0D)), floats)


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    array = np.ones((2, 2), np.uint8)
    path = tmp_path / "no-gz-suffix"
    path.write_bytes(gzip.compress(idx_bytes(array, 0x08)))
    assert np.array_equal(read_idx(path), array)


def test_corrupt_magic_is_a_clear_error(tmp_path: Path) -> None:
    raw = bytearray(idx_bytes(np.zeros((2, 2), np.uint8), 0x08))
    raw[0] = 0x12
    path = tmp_path / "bad"
    path.write_bytes(bytes(raw))
    with pytest.raises(IDXFormatError, match="magic"):
        read_idx(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda raw: raw[:-1], "need 4 data bytes"),
        (lambda raw: raw[:2] + b"\x42" + raw[3:], "unknown IDX data type 0x42"),
        (lambda raw: raw[:3], "too short"),
    ],
)
def test_malformed_idx_files_are_rejected(tmp_path: Path, mutate, message: str) -> None:
    path = tmp_path / "bad"
    path.write_bytes(mutate(idx_bytes(np.zeros((2, 2), np.uint8), 0x08)))
    with pytest.raises(ValueError, match=re.escape(message)):
        read_idx(path)


# ------------------------------------------------------------------------------ Fashion-MNIST


def fake_fashion(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train files gzipped, test files raw: both spellings must be found."""
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    train_y = np.tile(np.arange(10, dtype=np.uint8), 3)
    test_x = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    test_y = np.arange(10, dtype=np.uint8)[::-1].copy()
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte.gz", train_x, gz=True)
    write_idx(root / "train-labels-idx1-ubyte.gz", train_y, gz=True)
    write_idx(root / "t10k-images-idx3-ubyte", test_x)
    write_idx(root / "t10k-labels-idx1-ubyte", test_y)
    return train_x, train_y, test_x, test_y


def test_fashion_from_idx_files(tmp_path: Path) -> None:
    train_x, train_y, test_x, test_y = fake_fashion(tmp_path)
    train = load_fashion_mnist(tmp_path)
    assert train.images.shape == (30, 1, 28, 28) and train.images.dtype == np.uint8
    assert np.array_equal(train.images[:, 0], train_x)
    assert np.array_equal(train.labels, train_y.astype(np.int64))
    assert train.class_names == FASHION_CLASSES and train.class_names[0] == "T-shirt/top"
    assert train.example_ids[7] == "fashion_mnist/train/00007"
    test = load_fashion_mnist(tmp_path, split="test")
    assert np.array_equal(test.images[:, 0], test_x) and test.example_ids[0] == "fashion_mnist/test/00000"
    both = load_fashion_mnist(tmp_path, split="all")
    assert len(both) == 40 and len(set(both.example_ids.tolist())) == 40


def test_fashion_max_per_class_keeps_the_first_in_file_order(tmp_path: Path) -> None:
    fake_fashion(tmp_path)
    subset = load_fashion_mnist(tmp_path, max_per_class=2)
    assert len(subset) == 20
    assert subset.example_ids.tolist() == [f"fashion_mnist/train/{i:05d}" for i in range(20)]


def test_missing_fashion_folder_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(tmp_path / "absent")
    message = str(info.value)
    assert "sudo apt-get install dataset-fashion-mnist" in message and "root=" in message


def test_missing_fashion_file_names_the_fix(tmp_path: Path) -> None:
    fake_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path, split="test")


def test_fashion_rejects_mismatched_files_and_bad_split(tmp_path: Path) -> None:
    fake_fashion(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(IDXFormatError):
        load_fashion_mnist(tmp_path, split="test")
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist(tmp_path, split="validation")


def test_real_fashion_mnist_when_installed() -> None:
    if not (DEFAULT_FASHION_ROOT / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    test = load_fashion_mnist(split="test")
    assert test.images.shape == (10000, 1, 28, 28)
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert 60 < test.images.mean() < 90  # Fashion-MNIST's mean pixel is about 73


# ------------------------------------------------------------------------------ digit targets


def test_mnist5k() -> None:
    mnist = load_mnist5k()
    assert mnist.images.shape == (5000, 1, 28, 28) and mnist.images.dtype == np.uint8
    assert np.bincount(mnist.labels).tolist() == [500] * 10
    assert mnist.class_names == tuple("0123456789")
    assert mnist.example_ids[42] == "mnist5k/00042"
    assert mnist.images.max() == 255
    few = load_mnist5k(max_per_class=3)
    assert len(few) == 30 and np.bincount(few.labels).tolist() == [3] * 10
    first_zero = np.flatnonzero(mnist.labels == 0)[:3]
    assert np.array_equal(few.images[:3], mnist.images[first_zero])


def test_digits28_is_mnist_like() -> None:
    digits = load_digits28()
    assert digits.images.shape == (1797, 1, 28, 28) and digits.images.dtype == np.uint8
    assert digits.class_names == tuple("0123456789") and digits.name == "digits"
    image = digits.images[:, 0].astype(np.float64)
    assert (image.max(axis=(1, 2)) == 255).all()
    rows = np.flatnonzero(image.sum(axis=(0, 2)))
    cols = np.flatnonzero(image.sum(axis=(0, 1)))
    assert rows.min() >= 1 and rows.max() <= 26 and cols.min() >= 1 and cols.max() <= 26
    weights = image.sum(axis=(1, 2))
    cy = (image.sum(axis=2) * np.arange(28)).sum(axis=1) / weights
    assert abs(cy.mean() - 14) < 0.3


def test_upscale_digit_fits_the_20_pixel_box() -> None:
    tall = np.zeros((8, 8))
    tall[0:8, 3:5] = 16  # a "1": 8 tall, 2 wide
    image = upscale_digit(tall)
    rows, cols = np.nonzero(image)
    assert rows.max() - rows.min() + 1 == 20
    assert cols.max() - cols.min() + 1 < 12
    assert upscale_digit(np.zeros((8, 8))).max() == 0


def test_first_per_class() -> None:
    labels = np.array([2, 0, 2, 1, 0, 2, 0])
    assert first_per_class(labels, 2).tolist() == [0, 1, 2, 3, 4]
    assert first_per_class(labels, None).tolist() == list(range(7))
    with pytest.raises(ValueError):
        first_per_class(labels, 0)


# ----------------------------------------------------------------------------------- registry


def test_registry_loads_by_name_and_lists_names_on_error(tmp_path: Path) -> None:
    fake_fashion(tmp_path)
    fashion = load_dataset("fashion_mnist", root=tmp_path, split="test")
    assert isinstance(fashion, ImageDataset) and len(fashion) == 10
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    for name in ("glyphs", "mnist5k", "digits", "fashion_mnist", "cifar10", "cifar100", "image_folder"):
        assert name in str(info.value)
    assert set(data_pkg.DATASET_NAMES) == {
        "glyphs", "scrambled_glyphs", "mnist5k", "digits", "fashion_mnist", "cifar10", "cifar100", "image_folder"
    }


def test_registry_glyphs(tmp_path: Path) -> None:
    from transfer_influence.data.glyphs import bundled_font_dir

    glyphs = load_dataset(
        "glyphs", classes="digits", images_per_class=2, font_paths=[bundled_font_dir()],
        cache_dir=tmp_path,
    )
    assert len(glyphs) == 20 and glyphs.class_names == tuple("0123456789")


def test_data_package_never_imports_torch() -> None:
    folder = Path(data_pkg.__file__).parent
    for source in folder.glob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+torch", source.read_text(), re.M), source
