"""CIFAR pickle batches and ImageNet-style folders, on small files written here in those formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transfer_influence.data import ImageDataset, load_dataset
from transfer_influence.data.formats import (
    load_cifar10,
    load_cifar100,
    load_image_folder,
    resize,
    to_grayscale_28,
)

# -------------------------------------------------------------------------------------- CIFAR


def cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def dump(path: Path, content: dict) -> None:
    with path.open("wb") as handle:
        pickle.dump(content, handle, protocol=2)


def write_cifar10(root: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Like the original archive: bytes keys and bytes label names (Python 2 pickles)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
             b"dog", b"frog", b"horse", b"ship", b"truck"]
    dump(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": 4})
    batches = {}
    for i, file_name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        rows = cifar_rows(4, i)
        labels = [(i + j) % 10 for j in range(4)]
        dump(folder / file_name, {b"batch_label": b"x", b"labels": labels, b"data": rows,
                                  b"filenames": [b"f.png"] * 4})
        batches[file_name] = (rows, labels)
    return batches


def test_cifar10_pickles(tmp_path: Path) -> None:
    batches = write_cifar10(tmp_path)
    train = load_cifar10(tmp_path)  # the folder containing cifar-10-batches-py
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == np.uint8
    assert train.class_names[0] == "airplane" and train.class_names[9] == "truck"
    expected = np.concatenate([batches[f"data_batch_{k}"][1] for k in range(1, 6)])
    assert np.array_equal(train.labels, expected)
    rows, _ = batches["data_batch_1"]
    # Row layout: 1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major.
    assert np.array_equal(train.images[0, 0], rows[0, :1024].reshape(32, 32))
    assert np.array_equal(train.images[1, 2], rows[1, 2048:].reshape(32, 32))
    assert train.example_ids[5] == "cifar10/train/00005"
    test = load_cifar10(tmp_path / "cifar-10-batches-py", split="test")
    assert np.array_equal(test.images[3, 1], batches["test_batch"][0][3, 1024:2048].reshape(32, 32))
    both = load_cifar10(tmp_path, split="all")
    assert len(both) == 24 and both.example_ids[-1] == "cifar10/test/00003"


def test_cifar10_missing_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_cifar10(tmp_path, split="val")


def write_cifar100(root: Path) -> tuple[np.ndarray, list[int], list[int]]:
    """str keys this time (a re-pickled copy): both spellings must load."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    dump(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                           "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    rows = cifar_rows(6, 7)
    fine = [99, 0, 5, 5, 42, 0]
    coarse = [19, 0, 1, 1, 8, 0]
    dump(folder / "train", {"data": rows, "fine_labels": fine, "coarse_labels": coarse})
    dump(folder / "test", {"data": rows[:2], "fine_labels": fine[:2], "coarse_labels": coarse[:2]})
    return rows, fine, coarse


def test_cifar100_fine_and_coarse(tmp_path: Path) -> None:
    rows, fine, coarse = write_cifar100(tmp_path)
    data = load_dataset("cifar100", root=tmp_path)
    assert data.num_classes == 100 and data.class_names[99] == "fine99"
    assert data.labels.tolist() == fine
    assert np.array_equal(data.images[4].reshape(-1), rows[4])
    grouped = load_cifar100(tmp_path, label_mode="coarse", split="all")
    assert grouped.num_classes == 20 and grouped.labels.tolist() == coarse + coarse[:2]
    limited = load_cifar100(tmp_path, max_per_class=1)
    assert limited.labels.tolist() == [99, 0, 5, 42]


def test_cifar_garbage_is_rejected(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a CIFAR pickle"):
        load_cifar100(tmp_path)


# --------------------------------------------------------------------------------- image folder


def write_tree(root: Path) -> None:
    colours = {"cat": (255, 0, 0), "ant": (0, 255, 0), "dog": (0, 0, 255)}
    for name, colour in colours.items():
        (root / name).mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (40, 20 + k * 30), colour).save(root / name / f"img{k}.png")
    Image.new("RGB", (16, 16), (255, 255, 255)).save(root / "dog" / "extra.jpg", quality=95)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()


def test_image_folder_tree(tmp_path: Path) -> None:
    write_tree(tmp_path)
    data = load_image_folder(tmp_path, size=8)
    assert data.class_names == ("ant", "cat", "dog")  # sorted, hidden folder ignored
    assert data.images.shape == (7, 3, 8, 8) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert data.example_ids[2] == "image_folder/cat/img0.png"
    assert data.example_ids[4] == "image_folder/dog/extra.jpg"
    assert data.images[2].reshape(3, -1).mean(axis=1).tolist() == [255.0, 0.0, 0.0]
    assert data.images[0, 1].min() == 255 and data.images[0, 0].max() == 0
    assert abs(int(data.images[4].min()) - 255) <= 3  # white JPEG


def test_image_folder_grayscale_and_options(tmp_path: Path) -> None:
    write_tree(tmp_path)
    grey = load_dataset("image_folder", root=tmp_path, size=28, grayscale=True, name="toys",
                        max_per_class=1)
    assert grey.images.shape == (3, 1, 28, 28) and grey.name == "toys"
    # PIL's luma: L = (299 R + 587 G + 114 B) / 1000
    # ant is green, cat red; the first dog file by name is the white extra.jpg.
    assert grey.images[:2, 0, 5, 5].tolist() == [150, 76] and grey.images[2].min() >= 252
    assert grey.example_ids[0].startswith("toys/ant/")


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_image_folder(tmp_path / "absent")
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .* images"):
        load_image_folder(tmp_path)


# -------------------------------------------------------------------------------- conversions


def rgb_dataset() -> ImageDataset:
    images = np.zeros((2, 3, 32, 32), np.uint8)
    images[0, 0] = 255  # red
    images[1, 1] = 200  # green
    return ImageDataset("rgb", images, np.array([0, 1]), ("r", "g"), np.array(["rgb/0", "rgb/1"]))


def test_to_grayscale_28() -> None:
    grey = to_grayscale_28(rgb_dataset())
    assert grey.images.shape == (2, 1, 28, 28) and grey.images.dtype == np.uint8
    assert grey.images[0].min() == grey.images[0].max() == 76  # 255 * 0.299
    assert grey.images[1].min() == grey.images[1].max() == 117  # 200 * 0.587
    assert grey.example_ids.tolist() == ["rgb/0", "rgb/1"] and grey.class_names == ("r", "g")


def test_resize_grey_to_rgb_and_validation() -> None:
    grey = to_grayscale_28(rgb_dataset())
    rgb = resize(grey, 16, 3)
    assert rgb.images.shape == (2, 3, 16, 16)
    assert (rgb.images[0] == 76).all()
    with pytest.raises(ValueError):
        resize(grey, 16, 2)
