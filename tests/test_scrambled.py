"""Scrambled glyphs (a planted harmful source component) and the packaged ``demo_harm`` config.

Renders a few junk classes of a few images from matplotlib's bundled fonts only, so these tests are
fast and pass on a machine without system fonts; the demo_harm source is built with its rendering
options shrunk and a small fake Fashion-MNIST, never trained.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from transfer_influence.cli import main
from transfer_influence.data import DATASET_NAMES, ImageDataset, concatenate, load_dataset
from transfer_influence.data.glyphs import bundled_font_dir, load_glyphs
from transfer_influence.data.scrambled import RENDER_SEED_OFFSET, junk_class_names, shown_chars
from transfer_influence.errors import InputError
from transfer_influence.study.config import load_config, packaged_config, parse_config
from transfer_influence.study.design import design_subset_size
from transfer_influence.study.views import load_spec
from tests.test_data_loaders import fake_fashion

BUNDLED = str(bundled_font_dir())
FONTS = {"font_paths": [BUNDLED], "max_fonts": 6}
DIGITS = set("0123456789")


def scrambled(tmp_path: Path, **options: Any) -> ImageDataset:
    settings: dict[str, Any] = {"classes": 4, "images_per_class": 40, "seed": 0, "cache_dir": tmp_path, **FONTS}
    settings.update(options)
    return load_dataset("scrambled_glyphs", **settings)


# ------------------------------------------------------------------------------------- loader


def test_registered_and_shaped_like_the_other_sources(tmp_path: Path) -> None:
    assert "scrambled_glyphs" in DATASET_NAMES
    data = scrambled(tmp_path, classes=3, images_per_class=25)
    assert data.images.dtype == np.uint8 and data.images.shape == (75, 1, 28, 28)
    assert data.class_names == ("junk00", "junk01", "junk02")
    assert np.array_equal(np.bincount(data.labels), [25, 25, 25])
    assert np.all(np.diff(data.labels) >= 0), "examples come in class order"
    assert len(set(data.example_ids.tolist())) == len(data)
    assert data.images.reshape(len(data), -1).max(axis=1).min() > 100, "every image shows a glyph"


def test_class_names_are_zero_padded_to_sort_in_label_order() -> None:
    assert junk_class_names(20)[0] == "junk00" and junk_class_names(20)[-1] == "junk19"
    names = junk_class_names(101)
    assert names[0] == "junk000" and names[-1] == "junk100" and list(names) == sorted(names)


def test_deterministic_from_the_seed_and_independent_of_the_cache(tmp_path: Path) -> None:
    first = scrambled(tmp_path / "a")
    again = scrambled(tmp_path / "b")
    cached = scrambled(tmp_path / "a")
    for other in (again, cached):
        assert np.array_equal(first.images, other.images)
        assert np.array_equal(first.labels, other.labels)
        assert first.example_ids.tolist() == other.example_ids.tolist()
        assert first.fingerprint() == other.fingerprint()


def test_labels_are_scrambled_every_class_mixes_many_chars(tmp_path: Path) -> None:
    data = scrambled(tmp_path, classes=5, images_per_class=60)
    chars = shown_chars(data)
    assert set(chars.tolist()) == DIGITS
    for k, name in enumerate(data.class_names):
        counts = Counter(chars[data.labels == k].tolist())
        assert len(counts) >= 7, f"{name} holds only {sorted(counts)}"
        assert max(counts.values()) <= 0.3 * 60, f"{name} is mostly one char: {counts}"
    # The ids name the class and the glyph id, whose char token is what the image shows.
    assert all(i.startswith(f"scrambled/{data.class_names[l]}/glyphs/") for i, l in zip(data.example_ids, data.labels))


def test_ids_name_the_char_each_image_really_shows(tmp_path: Path) -> None:
    data = scrambled(tmp_path, classes=2, images_per_class=30)
    per_char = -(-60 // 10)
    rendered = load_glyphs(
        classes="digits", images_per_class=per_char, seed=RENDER_SEED_OFFSET, cache_dir=tmp_path, **FONTS
    )
    by_id = {str(i): image for i, image in zip(rendered.example_ids, rendered.images)}
    for example_id, image in zip(data.example_ids, data.images):
        glyph_id = str(example_id).split("/", 2)[2]
        assert np.array_equal(by_id[glyph_id], image)


def test_images_are_new_renderings_not_the_regular_glyph_source(tmp_path: Path) -> None:
    # 4 x 50 scrambled images are rendered as 20 per digit: the regular source's exact request at seed 0,
    # so only the seed offset can make them differ.
    data = scrambled(tmp_path, classes=4, images_per_class=50, seed=0)
    regular = load_glyphs(classes="digits", images_per_class=20, seed=0, cache_dir=tmp_path, **FONTS)
    regular_images = {image.tobytes() for image in regular.images}
    shared = sum(image.tobytes() in regular_images for image in data.images)
    assert shared == 0
    # Same fonts all the same: both draw from the same faces.
    faces = {str(i).split("/")[4] for i in data.example_ids}
    assert faces <= {str(i).split("/")[2] for i in regular.example_ids}


@pytest.mark.parametrize(
    "change",
    [{"seed": 1}, {"classes": 5}, {"images_per_class": 41}, {"chars": ["0", "1", "7"]}],
)
def test_fingerprint_changes_with_every_option(tmp_path: Path, change: dict[str, Any]) -> None:
    assert scrambled(tmp_path).fingerprint() != scrambled(tmp_path, **change).fingerprint()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_classes": 5}, "its options are"),
        ({"classes": 0}, "number of junk classes"),
        ({"classes": "alnum"}, "number of junk classes"),
        ({"classes": True}, "number of junk classes"),
        ({"images_per_class": 0}, "images_per_class"),
        ({"seed": -1}, "seed"),
        ({"chars": ["7"]}, "at least 2 characters"),
        ({"chars": "hexdigits"}, "unknown glyph class set"),
    ],
)
def test_bad_options_are_refused_before_any_rendering(options: dict[str, Any], message: str) -> None:
    # Font paths that do not exist: reaching the renderer would raise FileNotFoundError instead.
    with pytest.raises(ValueError, match=message):
        load_dataset("scrambled_glyphs", font_paths=["/nonexistent/fonts"], **options)


# ------------------------------------------------------------------------------- demo_harm


def test_demo_harm_is_the_demo_plus_twenty_scrambled_classes() -> None:
    harm = load_config(packaged_config("demo_harm"))
    demo = load_config(packaged_config("demo"))
    assert harm.name == "demo_harm" and harm.num_models == 1800
    assert (harm.design.kind, harm.design.alpha) == ("partition", 0.1)
    assert harm.analysis.estimator == "ridge"
    assert harm.source.components[:-1] == demo.source.components
    planted = harm.source.components[-1]
    assert planted.dataset == "scrambled_glyphs" and planted.options["classes"] == 20
    same_elsewhere = ("target", "design", "model", "train", "transfer", "baselines", "analysis", "seed")
    assert all(getattr(harm, part) == getattr(demo, part) for part in same_elsewhere)
    assert design_subset_size("partition", 92, 0.1) == 9


def test_demo_harm_source_has_92_classes(tmp_path: Path) -> None:
    raw = load_config(packaged_config("demo_harm")).model_dump(mode="json")
    fake_fashion(tmp_path / "fashion")
    for component in raw["source"]["components"]:
        options = component["options"]
        if component["dataset"] == "fashion_mnist":
            options["root"] = str(tmp_path / "fashion")
        else:
            options.update(images_per_class=12, max_fonts=3, font_paths=[BUNDLED], cache_dir=str(tmp_path))
    config = parse_config(raw)
    source = concatenate([load_spec(c) for c in config.source.components], name="mixed_source")
    assert source.num_classes == 92
    assert source.class_names[:62][-1] == "z" and source.class_names[72:] == junk_class_names(20)
    junk = source.take(np.flatnonzero(source.labels >= 72))
    assert len(junk) == 20 * 12 and set(shown_chars(junk).tolist()) == DIGITS


def test_demo_variant_harm_runs_the_packaged_demo_harm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    chosen: list[str] = []

    def record(config, *_args, **_kwargs):  # stands in for training: only the choice of config matters
        chosen.append(config.name)
        raise InputError("stopped before training")

    monkeypatch.setattr("transfer_influence.pipeline.run.run_study", record)
    assert main(["demo", "--variant", "harm", "--out", str(tmp_path / "d"), "--quiet"]) == 2
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet"]) == 2
    assert chosen == ["demo_harm", "demo"]
    config = packaged_config("demo")
    assert main(["demo", "--variant", "harm", "--config", str(config), "--out", str(tmp_path / "d")]) == 2
    assert "not both" in capsys.readouterr().err and len(chosen) == 2
