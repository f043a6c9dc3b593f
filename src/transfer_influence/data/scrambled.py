"""Scrambled glyphs: source classes with a planted harm, for testing whether acting on influences helps.

A careless scrape can give classes whose labels carry no information: each "class" is a random mix
of images of unrelated things. Added to a source, such classes teach a backbone to tell apart labels
that cannot be told apart, which should hurt transfer; removing exactly them is a known good edit,
so a study with them in its source can check whether the influences find them and whether removing
what the influences rank lowest recovers the loss.

The images are digit glyphs (by default) rendered with :func:`~transfer_influence.data.glyphs.load_glyphs`
at a seed shifted by :data:`RENDER_SEED_OFFSET`, so they are new renderings of the same fonts, never
copies of the regular glyph source's images. They are pooled, shuffled with a seeded generator and
dealt into ``classes`` junk classes (``junk00``, ``junk01`` ...), so every junk class holds a random
mix of all the characters. Example ids keep the glyph id, which names the character an image really
shows: ``scrambled/junk03/glyphs/7/DejaVuSans/0042`` (see :func:`shown_chars`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from transfer_influence.data.base import ImageDataset
from transfer_influence.data.glyphs import load_glyphs, resolve_classes
from transfer_influence.errors import InputError

#: Added to ``seed`` before rendering, so that the scrambled images are other renderings (other
#: rotations, scales, shifts, strokes, face order) than a regular glyph source with the same seed.
RENDER_SEED_OFFSET = 1_000_003
#: Seed stream of the shuffle that deals images into junk classes (independent of the rendering).
_SCRAMBLE_STREAM = 0x5C4A
ID_PREFIX = "scrambled"


def junk_class_names(classes: int) -> tuple[str, ...]:
    """``junk00`` ... in label order; zero-padded so that names sort in label order."""
    width = max(2, len(str(classes - 1)))
    return tuple(f"junk{k:0{width}d}" for k in range(classes))


def shown_chars(dataset: ImageDataset) -> np.ndarray:
    """The character token each scrambled image really shows, read from its example id.

    Tokens are those of glyph ids: the character itself for letters and digits, a spelled-out name
    for symbols (``slash``).
    """
    parts = [str(i).split("/") for i in dataset.example_ids]
    bad = [p for p in parts if len(p) < 5 or p[0] != ID_PREFIX or p[2] != "glyphs"]
    if bad:
        raise ValueError(f"not scrambled glyph ids: {'/'.join(bad[0])!r} ...")
    return np.array([p[3] for p in parts])


def _check_options(classes: object, images_per_class: object, seed: object, chars: tuple[str, ...]) -> None:
    """One clear error per bad option, before any rendering."""
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise InputError(
            f"scrambled_glyphs: classes is the number of junk classes, a positive integer, got {classes!r}; "
            "the characters drawn are set by chars"
        )
    if not isinstance(images_per_class, int) or isinstance(images_per_class, bool) or images_per_class < 1:
        raise InputError(f"scrambled_glyphs: images_per_class must be a positive integer, got {images_per_class!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"scrambled_glyphs: seed must be a non-negative integer, got {seed!r}")
    if len(chars) < 2:
        raise InputError(
            f"scrambled_glyphs: chars must hold at least 2 characters to mix, got {list(chars)}"
        )


def load_scrambled_glyphs(
    classes: int = 20,
    images_per_class: int = 150,
    seed: int = 0,
    chars: str | Sequence[str] = "digits",
    font_paths: Sequence[str | Path] | None = None,
    cache_dir: str | Path | None = None,
    max_fonts: int | None = None,
) -> ImageDataset:
    """``classes`` junk classes of ``images_per_class`` glyph images each, labels scrambled.

    ``chars``: the characters rendered, a glyph preset (``digits``, the default) or a list of single
    characters; every junk class is a random mix of them. ``font_paths``, ``cache_dir`` and
    ``max_fonts`` are passed to :func:`~transfer_influence.data.glyphs.load_glyphs` (the renderings
    are cached there; the shuffle is cheap and redone). Deterministic given the options.

    Returns uint8 images (N, 1, 28, 28) in class order, with ids ``scrambled/<junk class>/<glyph id>``.
    """
    resolved = resolve_classes(chars)
    _check_options(classes, images_per_class, seed, resolved)
    total = classes * images_per_class
    rendered = load_glyphs(
        classes=list(resolved),
        images_per_class=math.ceil(total / len(resolved)),
        seed=seed + RENDER_SEED_OFFSET,
        font_paths=font_paths,
        cache_dir=cache_dir,
        max_fonts=max_fonts,
    )
    rng = np.random.default_rng([_SCRAMBLE_STREAM, seed])
    chosen = rng.permutation(len(rendered))[:total].reshape(classes, images_per_class)
    chosen.sort(axis=1)  # within a junk class, keep the rendering order: easier to read
    names = junk_class_names(classes)
    order = chosen.reshape(-1)
    labels = np.repeat(np.arange(classes, dtype=np.int64), images_per_class)
    ids = np.array(
        [f"{ID_PREFIX}/{names[label]}/{rendered.example_ids[i]}" for label, i in zip(labels, order)]
    )
    return ImageDataset(
        name="scrambled_glyphs",
        images=np.ascontiguousarray(rendered.images[order]),
        labels=labels,
        class_names=names,
        example_ids=ids,
    )
