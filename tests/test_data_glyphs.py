"""Glyph source: font discovery rules, MNIST-like rendering, determinism and the cache.

Renders only a few classes x a few images from matplotlib's bundled fonts (passed explicitly), so
these tests are fast and pass on a machine without any system fonts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.data import glyphs
from transfer_influence.data.glyphs import (
    bundled_font_dir,
    discover_fonts,
    face_problem,
    faces_used,
    load_glyphs,
    resolve_classes,
)

BUNDLED = bundled_font_dir()
CLASSES = ["0", "7", "A", "g", "?"]


def small(tmp_path: Path, **kwargs: object):
    options = dict(
        classes=CLASSES, images_per_class=10, seed=0, font_paths=[BUNDLED], cache_dir=tmp_path
    )
    options.update(kwargs)
    return load_glyphs(**options)  # type: ignore[arg-type]


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    weights = image.astype(np.float64)
    total = weights.sum()
    rows, cols = np.indices(image.shape)
    return float((rows * weights).sum() / total), float((cols * weights).sum() / total)


# ------------------------------------------------------------------------------------- classes


def test_class_presets_have_the_documented_sizes_and_order() -> None:
    assert resolve_classes("digits") == tuple("0123456789")
    assert len(resolve_classes("upper")) == 26 and len(resolve_classes("lower")) == 26
    alnum = resolve_classes("alnum")
    assert len(alnum) == 62 and alnum[:11] == tuple("0123456789A") and alnum[-1] == "z"
    with_symbols = resolve_classes("alnum+symbols")
    assert with_symbols[:62] == alnum and {"+", "-", "=", "?", "@", "/"} <= set(with_symbols)


@pytest.mark.parametrize("bad", ["abc", ["A", "AB"], ["A", "A"], [], [" "]])
def test_bad_class_specs_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        resolve_classes(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- fonts


def test_bundled_symbol_and_math_fonts_are_rejected() -> None:
    usable = {Path(p).name for p in discover_fonts([BUNDLED])}
    for text_face in ("DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "STIXGeneral.ttf", "cmr10.ttf"):
        assert text_face in usable
    for symbol_face in (
        "cmex10.ttf",
        "cmsy10.ttf",
        "LastResortHE-Regular.ttf",
        "STIXSizOneSymReg.ttf",
        "STIXNonUni.ttf",
        "DejaVuSansDisplay.ttf",
    ):
        assert symbol_face not in usable
    assert len(usable) >= 15


def test_face_problem_explains_the_rejection() -> None:
    assert face_problem(BUNDLED / "DejaVuSans.ttf") is None
    assert face_problem(BUNDLED / "cmex10.ttf") == "symbol/math font"
    assert face_problem(BUNDLED / "DejaVuSansDisplay.ttf") == "lacks some of 0-9 A-Z a-z"


def test_glyph_name_check_catches_letters_mapped_to_symbols_without_the_deny_list() -> None:
    # cmsy10 maps "a" to a turnstile: the name check alone must catch it.
    font = glyphs._open_font(BUNDLED / "cmsy10.ttf")
    index = font.get_char_index(ord("a"))
    assert index != 0 and not glyphs._glyph_name_fits(font, "a", index)
    dejavu = glyphs._open_font(BUNDLED / "DejaVuSans.ttf")
    assert glyphs._glyph_name_fits(dejavu, "a", dejavu.get_char_index(ord("a")))


def test_discovery_is_ordered_by_face_deduplicated_and_can_be_limited(tmp_path: Path) -> None:
    # The same face twice (a copy under another name) counts once.
    copy = tmp_path / "zz-copy-of-DejaVuSans.ttf"
    copy.write_bytes((BUNDLED / "DejaVuSans.ttf").read_bytes())
    fonts = discover_fonts([BUNDLED, copy])
    names = [face.name for face in glyphs._usable_faces([BUNDLED, copy], None)]
    assert names == sorted(names) and len(names) == len(set(names)) == len(fonts)
    assert (str(copy) in fonts) != (str(BUNDLED / "DejaVuSans.ttf") in fonts)
    limited = discover_fonts([BUNDLED], max_fonts=3)
    assert len(limited) == 3 and set(limited) <= set(discover_fonts([BUNDLED]))


def copy_fonts_in_two_layouts(
    tmp_path: Path, extra_in_first: dict[str, bytes] | None = None
) -> tuple[Path, Path]:
    """The bundled fonts split into two groups, copied twice so that sorting by path interleaves
    them differently: ``a/aaa_fonts`` + ``a/zzz_fonts`` and ``b/zzz_fonts`` + ``b/aaa_fonts``.
    ``extra_in_first`` files go with the first group (``DejaVuSans.ttf`` is in the second)."""
    files = sorted(BUNDLED.glob("*.ttf"))
    groups = (files[0::2], files[1::2])
    layouts = {"a": ("aaa_fonts", "zzz_fonts"), "b": ("zzz_fonts", "aaa_fonts")}
    for copy, folders in layouts.items():
        for group, folder in zip(groups, folders):
            target = tmp_path / copy / folder
            target.mkdir(parents=True)
            for font in group:
                shutil.copyfile(font, target / font.name)
        for name, content in (extra_in_first or {}).items():
            (tmp_path / copy / folders[0] / name).write_bytes(content)
    return tmp_path / "a", tmp_path / "b"


@pytest.mark.parametrize("max_fonts", [None, 5])
def test_same_fonts_at_other_paths_give_the_same_dataset(
    tmp_path: Path, max_fonts: int | None
) -> None:
    copy_a, copy_b = copy_fonts_in_two_layouts(tmp_path / "fonts")
    options = dict(classes=["0", "A", "g"], images_per_class=12, seed=0, max_fonts=max_fonts)
    a = load_glyphs(font_paths=[copy_a], cache_dir=tmp_path / "cache_a", **options)  # type: ignore[arg-type]
    b = load_glyphs(font_paths=[copy_b], cache_dir=tmp_path / "cache_b", **options)  # type: ignore[arg-type]
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.example_ids, b.example_ids)
    assert a.fingerprint() == b.fingerprint()


def test_duplicate_face_choice_does_not_depend_on_paths(tmp_path: Path) -> None:
    # Two different files of one face (DejaVuSans): which one is used must not follow the folders.
    original = (BUNDLED / "DejaVuSans.ttf").read_bytes()
    other_version = original + bytes(16)
    copy_a, copy_b = copy_fonts_in_two_layouts(tmp_path, {"DejaVuSans-other.ttf": other_version})
    twins = {"DejaVuSans.ttf", "DejaVuSans-other.ttf"}
    chosen_a = [Path(p).name for p in discover_fonts([copy_a]) if Path(p).name in twins]
    chosen_b = [Path(p).name for p in discover_fonts([copy_b]) if Path(p).name in twins]
    assert len(chosen_a) == 1 and chosen_a == chosen_b


def test_missing_font_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        discover_fonts([tmp_path / "nope"])


def test_unicase_detection() -> None:
    assert not glyphs.is_unicase(glyphs._open_font(BUNDLED / "DejaVuSans.ttf"))
    humor = Path("/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf")
    if not humor.exists():
        pytest.skip("fonts-humor-sans not installed")
    assert glyphs.is_unicase(glyphs._open_font(humor))


# ------------------------------------------------------------------------------------ rendering


def test_images_are_mnist_like(tmp_path: Path) -> None:
    data = small(tmp_path)
    assert data.images.shape == (50, 1, 28, 28) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int64
    assert data.class_names == tuple(CLASSES)
    assert np.array_equal(data.labels, np.repeat(np.arange(5), 10))
    for image in data.images[:, 0]:
        assert image.max() == 255  # full contrast, white on black
        assert image[0, 0] == 0 and image[-1, -1] == 0
        rows, cols = np.nonzero(image)
        assert rows.max() - rows.min() + 1 <= 23 and cols.max() - cols.min() + 1 <= 23
        cy, cx = centre_of_mass(image)
        assert 11 <= cy <= 17 and 11 <= cx <= 17  # centred, up to the +-2 px shift


def test_example_ids_name_class_face_and_index(tmp_path: Path) -> None:
    data = small(tmp_path, classes=["A", "/"])
    first = data.example_ids[0].split("/")
    assert first[0] == "glyphs" and first[1] == "A" and first[3] == "0000"
    assert all(i.startswith("glyphs/slash/") for i in data.example_ids[10:])
    assert len(set(data.example_ids.tolist())) == len(data)
    # Faces are cycled: 10 images of a class come from 10 different faces.
    assert len({i.split("/")[2] for i in data.example_ids[:10]}) == 10
    usable_names = {face.name for face in glyphs._usable_faces([BUNDLED], None)}
    assert set(faces_used(data)) <= usable_names


def test_same_seed_same_images_other_seed_other_images(tmp_path: Path) -> None:
    a = small(tmp_path / "a")
    b = small(tmp_path / "b")
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.example_ids, b.example_ids)
    c = small(tmp_path / "c", seed=1)
    assert not np.array_equal(a.images, c.images)


def test_a_class_renders_the_same_whatever_classes_come_with_it(tmp_path: Path) -> None:
    alone = small(tmp_path / "a", classes=["g"])
    together = small(tmp_path / "b")
    assert np.array_equal(alone.images, together.images[together.labels == 3])


def test_face_lacking_a_glyph_is_skipped_for_that_character(tmp_path: Path) -> None:
    fonts = [BUNDLED / "DejaVuSans.ttf", BUNDLED / "cmr10.ttf"]  # cmr10 has no Cyrillic
    data = load_glyphs(["A", "Ж"], images_per_class=6, font_paths=fonts, cache_dir=tmp_path)
    faces_a = {i.split("/")[2] for i in data.example_ids[data.labels == 0]}
    faces_zhe = {i.split("/")[2] for i in data.example_ids[data.labels == 1]}
    assert faces_a == {"DejaVuSans", "Cmr10"}
    assert faces_zhe == {"DejaVuSans"}


def test_character_no_face_has_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no usable font face"):
        load_glyphs(["\u4e00"], images_per_class=2, font_paths=[BUNDLED], cache_dir=tmp_path)


def test_no_usable_face_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no usable font face found"):
        load_glyphs(["A"], images_per_class=2, font_paths=[BUNDLED / "cmex10.ttf"], cache_dir=tmp_path)


def test_augmentation_stays_within_its_ranges() -> None:
    font = glyphs._open_font(BUNDLED / "DejaVuSans.ttf")
    plain = glyphs.render_glyph(font, "I")
    rows, _ = np.nonzero(plain)
    assert rows.max() - rows.min() + 1 == 20  # the 20 px box, as in MNIST
    smaller = glyphs.render_glyph(font, "I", scale=0.8)
    rows, _ = np.nonzero(smaller)
    assert rows.max() - rows.min() + 1 == 16
    bolder = glyphs.render_glyph(font, "I", stroke=2)
    thinner = glyphs.render_glyph(font, "I", stroke=-1)
    assert (bolder > 127).sum() > (plain > 127).sum() > (thinner > 127).sum()
    shifted = glyphs.render_glyph(font, "o", shift=(2, -2))
    cy0, cx0 = centre_of_mass(glyphs.render_glyph(font, "o"))
    cy1, cx1 = centre_of_mass(shifted)
    assert cy1 - cy0 == pytest.approx(2, abs=0.01) and cx1 - cx0 == pytest.approx(-2, abs=0.01)
    rotated = glyphs.render_glyph(font, "I", angle=12.0)
    assert not np.array_equal(rotated, plain)


# -------------------------------------------------------------------------------------- cache


def test_cache_hit_returns_identical_data_without_rendering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = small(tmp_path)
    files = list((tmp_path / "glyphs").glob("*.npz"))
    assert len(files) == 1
    assert not list((tmp_path / "glyphs").glob("*.tmp"))  # atomic write leaves no temp file

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered although cached")

    monkeypatch.setattr(glyphs, "_render_class", fail)
    monkeypatch.setattr(glyphs, "_usable_faces", fail)  # not even the font inspection runs
    second = small(tmp_path)
    assert np.array_equal(first.images, second.images)
    assert np.array_equal(first.labels, second.labels)
    assert np.array_equal(first.example_ids, second.example_ids)
    assert first.class_names == second.class_names
    assert first.fingerprint() == second.fingerprint()


def test_cache_key_changes_with_parameters(tmp_path: Path) -> None:
    small(tmp_path)
    small(tmp_path, seed=3)
    small(tmp_path, images_per_class=4)
    assert len(list((tmp_path / "glyphs").glob("*.npz"))) == 3


def test_same_fonts_at_other_paths_share_one_cache_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_a, copy_b = copy_fonts_in_two_layouts(tmp_path / "fonts")
    first = load_glyphs(["A", "7"], images_per_class=4, font_paths=[copy_a], cache_dir=tmp_path)

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered although the same fonts are cached")

    monkeypatch.setattr(glyphs, "_render_class", fail)
    second = load_glyphs(["A", "7"], images_per_class=4, font_paths=[copy_b], cache_dir=tmp_path)
    assert len(list((tmp_path / "glyphs").glob("*.npz"))) == 1
    assert np.array_equal(first.images, second.images)
    assert np.array_equal(first.example_ids, second.example_ids)


def test_cache_key_follows_font_content(tmp_path: Path) -> None:
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    font = fonts / "DejaVuSans.ttf"
    font.write_bytes((BUNDLED / "DejaVuSans.ttf").read_bytes())
    small(tmp_path, font_paths=[fonts], classes=["A"], images_per_class=2)
    # Same size, other bytes (a changed font file): a new entry, not the old pixels.
    content = bytearray(font.read_bytes())
    content[-1] ^= 0xFF
    font.write_bytes(bytes(content))
    small(tmp_path, font_paths=[fonts], classes=["A"], images_per_class=2)
    assert len(list((tmp_path / "glyphs").glob("*.npz"))) == 2


def test_damaged_cache_file_is_rebuilt(tmp_path: Path) -> None:
    first = small(tmp_path)
    (cache_file,) = (tmp_path / "glyphs").glob("*.npz")
    cache_file.write_bytes(b"not a zip file")
    again = small(tmp_path)
    assert np.array_equal(first.images, again.images)


def test_default_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRANSFER_INFLUENCE_CACHE", str(tmp_path / "cache"))
    assert glyphs.default_cache_dir() == tmp_path / "cache"
    load_glyphs(["1"], images_per_class=2, font_paths=[BUNDLED])
    assert list((tmp_path / "cache" / "glyphs").glob("*.npz"))


def test_truncated_cache_zip_is_rebuilt(tmp_path: Path) -> None:
    first = small(tmp_path)
    (cache_file,) = (tmp_path / "glyphs").glob("*.npz")
    cache_file.write_bytes(cache_file.read_bytes()[:100])  # starts like a zip, then stops
    again = small(tmp_path)
    assert np.array_equal(first.images, again.images)
