"""Rendered character glyphs: a source dataset made offline from the fonts on the machine.

Each class is one character (``"A"``, ``"a"``, ``"0"`` ...). Images are made the way MNIST was made:
the glyph is drawn white on black, scaled so that its longer side fits a 20x20 box, and placed in a
28x28 field so that its centre of mass sits in the middle. A seeded augmentation (rotation, scale,
shift, stroke width) and cycling over many font faces give each class the within-class variety that
a handwriting dataset has, so that a model pre-trained on glyphs transfers to handwritten digits.

Which fonts are used (the rule):

* A *face* is usable when it is a scalable Latin text face: its family/PostScript/file name is not on
  the symbol/math deny list (:data:`_DENY_PATTERN`), and it maps every one of ``0-9 A-Z a-z`` to 62
  distinct, non-empty glyphs whose names (when the font carries glyph names) are the standard ones
  (``"A"``, ``"zero"`` or ``"uni0041"`` ...). This rejects fonts whose Latin code points hold other
  shapes (matplotlib's ``cmsy10``/``cmex10``, the ``STIXSize*``/``STIXNonUnicode`` fonts, the
  ``LastResort`` font that maps everything to one box) and partial fonts, so that every alphanumeric
  class is drawn from the same set of faces. Faces with the same PostScript name are one face (the
  file with the smallest content hash is kept), so a font that is both bundled and installed counts
  once.
* Order: faces are ordered by name, then by the sha256 of the font file, never by path. matplotlib's
  bundled fonts live inside the virtual environment, so paths (and how they interleave with the
  system fonts) change with where the project is checked out; names and contents do not. Which
  face draws which image, the ``max_fonts`` subset and the cache key all follow this order, so the
  same fonts give the same dataset wherever the project or the fonts are.
* Per character: a usable face is used for a class only when it has that character (mapped, with a
  fitting glyph name, and drawing some ink). For letters and digits that holds for every usable face;
  for symbols (``"alnum+symbols"``) or other characters, faces lacking the glyph are skipped.
  One more per-character rule: *unicase* faces, whose lowercase letters are drawn as capitals (the
  all-caps handwriting fonts such as Humor Sans), are skipped for lowercase classes, because after
  box normalisation their "a" is the same image as their "A" and would be label noise. A face is
  unicase when its x-height letters are nearly as tall as its ascender letters (ratio of median
  heights >= :data:`UNICASE_RATIO`; normal faces measure 0.6-0.77, unicase ones 0.88-1.16).

Rendering uses :class:`matplotlib.ft2font.FT2Font` directly (no figures), so 62 x 150 images take
a few seconds; results are cached as ``.npz`` keyed by every input that can change them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from transfer_influence.data.base import ImageDataset
from transfer_influence.data.loaders import center_by_mass
from transfer_influence.errors import InputError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.ft2font import FT2Font

#: Bumped whenever a change to this module changes the pixels, so old caches are not reused.
RENDERER_VERSION = "glyphs-render-v4"

IMAGE_SIZE = 28
#: Longer side of the glyph before augmentation scaling, as in MNIST (20x20 box in a 28x28 field).
BOX_SIZE = 20
#: Rendering size in pixels per em; big enough that stroke changes and down-scaling stay smooth.
_RENDER_PX = 64
#: Small size for the quick "does this glyph draw any ink" check.
_CHECK_PX = 24

#: x-height / ascender-height ratio from which a face counts as unicase (see module doc).
UNICASE_RATIO = 0.85
_X_HEIGHT_LETTERS = "aemnrsuvwxz"
_ASCENDER_LETTERS = "bdhkl"

ROTATION_DEGREES = 12.0
SCALE_RANGE = (0.8, 1.1)
MAX_SHIFT = 2
#: Stroke change in render pixels (negative: erosion, thinner; positive: dilation, bolder).
STROKE_STEPS = (-1, 0, 1, 2)
STROKE_PROBS = (0.2, 0.4, 0.25, 0.15)

SYMBOLS = "+-=?!#%&@$*/()"
CLASS_SETS: dict[str, str] = {
    "digits": string.digits,
    "upper": string.ascii_uppercase,
    "lower": string.ascii_lowercase,
    "alnum": string.digits + string.ascii_uppercase + string.ascii_lowercase,
    "alnum+symbols": string.digits + string.ascii_uppercase + string.ascii_lowercase + SYMBOLS,
}
_ALNUM = CLASS_SETS["alnum"]

#: Standard (Adobe Glyph List) names of the ASCII characters we know how to check.
_SYMBOL_NAMES: dict[str, tuple[str, ...]] = {
    "+": ("plus",),
    "-": ("hyphen", "hyphenminus", "minus"),
    "=": ("equal",),
    "?": ("question",),
    "!": ("exclam",),
    "#": ("numbersign",),
    "%": ("percent",),
    "&": ("ampersand",),
    "@": ("at",),
    "$": ("dollar",),
    "*": ("asterisk",),
    "/": ("slash",),
    "(": ("parenleft",),
    ")": ("parenright",),
}
_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: Glyph names that carry no meaning, so cannot be judged: unnamed or CID-keyed fonts, and the
#: ``uni%08x`` (glyph index) names matplotlib makes up for fonts without a ``post`` name table.
_UNNAMED = re.compile(r"(glyph|g|cid|index|gid)?\d+|uni[0-9a-f]{8}|\.notdef|", re.IGNORECASE)

#: Families that put non-letter shapes on Latin code points, or are not text faces at all (the
#: Linux Biolinum "Keyboard" face draws every letter inside a key cap).
_DENY_PATTERN = re.compile(
    r"symbol|sym\b|sym[-_]|stixsize|nonuni|math|dingbat|emoji|wingding|webding|icons?\b|"
    r"awesome|lastresort|last ?resort|^cmex|^cmsy|opensymbol|keyboard",
    re.IGNORECASE,
)

FONT_SUFFIXES = (".ttf", ".otf")
#: Where Debian (and users) put fonts; the TeX tree is where ``fonts-texgyre`` installs its faces.
SYSTEM_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.fonts",
    "~/.local/share/fonts",
    "/usr/share/texmf/fonts/opentype",
)


# --------------------------------------------------------------------------------------------
# classes


def resolve_classes(classes: str | Sequence[str]) -> tuple[str, ...]:
    """The class characters, in label order, from a preset name or an explicit list."""
    if isinstance(classes, str):
        if classes not in CLASS_SETS:
            raise InputError(
                f"unknown glyph class set {classes!r}; use one of {sorted(CLASS_SETS)} "
                "or an explicit list of single characters"
            )
        return tuple(CLASS_SETS[classes])
    chars = tuple(classes)
    bad = [c for c in chars if not isinstance(c, str) or len(c) != 1 or c.isspace()]
    if bad or not chars:
        raise InputError(f"glyph classes must be single visible characters, got {bad or chars!r}")
    duplicated = sorted({c for c in chars if chars.count(c) > 1})
    if duplicated:
        raise InputError(f"glyph classes repeat {duplicated}")
    return chars


def _char_token(char: str) -> str:
    """A path-safe name for a character, used in example ids (``"/"`` must not split an id)."""
    if char.isascii() and char.isalnum():
        return char
    names = _SYMBOL_NAMES.get(char)
    return names[0] if names else f"U+{ord(char):04X}"


# --------------------------------------------------------------------------------------------
# fonts


def bundled_font_dir() -> Path:
    """matplotlib's own TrueType fonts: present wherever the package is, so tests can rely on them."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def candidate_font_files(
    font_paths: Sequence[str | Path] | None = None, include_system: bool = True
) -> list[Path]:
    """Every ``.ttf``/``.otf`` file under the given files/folders (default: bundled + system).

    Sorted by path and without duplicate targets, so the listing does not depend on directory
    listing order. ``.ttc`` collections are skipped. Faces and the cache key are ordered by face
    name and content (:func:`font_digest`) instead, since paths depend on the checkout location.
    """
    if font_paths is None:
        roots: list[Path] = [bundled_font_dir()]
        if include_system:
            roots += [Path(os.path.expanduser(d)) for d in SYSTEM_FONT_DIRS]
    else:
        roots = [Path(os.path.expanduser(str(p))) for p in font_paths]
        missing = [str(p) for p in roots if not p.exists()]
        if missing:
            raise FileNotFoundError(f"font paths do not exist: {missing}")
    found: dict[str, Path] = {}
    for root in roots:
        for path in _walk_font_files(root):
            found.setdefault(os.path.realpath(path), path)
    return sorted(found.values(), key=str)


def _walk_font_files(root: Path) -> Iterable[Path]:
    if root.is_file():
        if root.suffix.lower() in FONT_SUFFIXES:
            yield root
        return
    if not root.is_dir():
        return
    for folder, _dirs, files in os.walk(root, followlinks=True):
        for name in files:
            if Path(name).suffix.lower() in FONT_SUFFIXES:
                yield Path(folder) / name


#: Content hashes already computed in this process, by (real path, size, mtime in ns): hashing
#: every candidate font (about 270 files, 73 MB on a Debian machine with common font packages)
#: costs 0.05-0.1 s, which every load would otherwise pay again.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def font_digest(path: str | Path) -> str:
    """sha256 of a font file's bytes: what identifies a font wherever it is installed."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        hasher = hashlib.sha256()
        with open(real, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(chunk)
        digest = _DIGESTS[key] = hasher.hexdigest()
    return digest


def _open_font(path: str | Path, px: int = _RENDER_PX) -> "FT2Font":
    from matplotlib.ft2font import FT2Font

    font = FT2Font(str(path))
    font.set_size(px, 72)  # 72 dpi: point size == pixels per em
    return font


def _glyph_name_fits(font: "FT2Font", char: str, index: int) -> bool:
    """Whether the glyph at ``index`` is named like ``char`` (unnamed glyphs get the benefit)."""
    try:
        name = font.get_glyph_name(index)
    except Exception:  # fonts without a post table may refuse
        return True
    if _UNNAMED.fullmatch(name or ""):
        return True
    base = name.split(".")[0]
    code = ord(char)
    if base.lower() in {f"uni{code:04x}", f"u{code:04x}", f"u{code:05x}"}:
        return True
    if char.isascii() and char.isalpha():
        expected: tuple[str, ...] = (char,)
    elif char.isascii() and char.isdigit():
        digit = _DIGIT_NAMES[int(char)]
        expected = (digit, digit + "oldstyle", digit + "lining")
    elif char in _SYMBOL_NAMES:
        expected = _SYMBOL_NAMES[char]
    else:
        return True  # a character we have no standard name for: cannot judge, trust the cmap
    return base in expected


def _has_ink(font: "FT2Font", char: str) -> bool:
    font.set_text(char, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    image = np.asarray(font.get_image())
    return bool(image.size) and int(image.max()) >= 64


def face_problem(path: str | Path) -> str | None:
    """Why a font file is not a usable Latin text face, or None when it is (see module doc)."""
    return _inspect_face(path)[0]


def _inspect_face(path: str | Path) -> tuple[str | None, str]:
    """(problem or None, face name) for one font file, opening it once."""
    try:
        font = _open_font(path, _CHECK_PX)
    except Exception as exc:  # unreadable or unsupported file
        return f"cannot be read ({exc.__class__.__name__})", Path(path).stem
    name = _face_name(font, path)
    if not font.scalable:
        return "not scalable", name
    names = " ".join([font.family_name or "", font.postscript_name or "", Path(path).stem])
    if _DENY_PATTERN.search(names):
        return "symbol/math font", name
    indices = [font.get_char_index(ord(c)) for c in _ALNUM]
    if 0 in indices:
        return "lacks some of 0-9 A-Z a-z", name
    if len(set(indices)) < len(_ALNUM):
        return "maps several letters/digits to one glyph", name
    if not all(_glyph_name_fits(font, c, i) for c, i in zip(_ALNUM, indices)):
        return "Latin code points hold non-letter glyphs", name
    if not all(_has_ink(font, c) for c in "Aa08"):
        return "draws empty glyphs", name
    return None, name


def _ink_height(font: "FT2Font", char: str) -> int:
    font.set_text(char, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    image = np.asarray(font.get_image())
    return int(np.count_nonzero(image.max(axis=1) >= 64))


def is_unicase(font: "FT2Font") -> bool:
    """Whether the face draws its lowercase letters as capitals (see module doc, UNICASE_RATIO)."""
    x_height = np.median([_ink_height(font, c) for c in _X_HEIGHT_LETTERS])
    ascender = np.median([_ink_height(font, c) for c in _ASCENDER_LETTERS])
    return bool(ascender > 0 and x_height / ascender >= UNICASE_RATIO)


def _face_name(font: "FT2Font", path: str | Path) -> str:
    """The PostScript name (stable across installs), made safe for example ids."""
    name = font.postscript_name or ""
    if name in {"", "unknown", "UNAVAILABLE"}:
        name = Path(path).stem
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


@dataclass(frozen=True)
class _Face:
    path: str
    name: str
    digest: str


def _one_per_face(candidates: Iterable[_Face]) -> list[_Face]:
    """One file per face name, ordered by (name, content hash): no path decides order or choice.

    The same face installed twice (bundled and system DejaVu, say) keeps the file with the smallest
    hash; identical copies differ only in path, and pick the first path, which draws the same pixels.
    """
    chosen: dict[str, _Face] = {}
    for face in sorted(candidates, key=lambda f: (f.name, f.digest, f.path)):
        chosen.setdefault(face.name, face)
    return list(chosen.values())


def _usable_faces(
    font_paths: Sequence[str | Path] | None, max_fonts: int | None
) -> list[_Face]:
    if max_fonts is not None and max_fonts < 1:
        raise InputError(f"max_fonts must be positive, got {max_fonts}")
    candidates: list[_Face] = []
    for path in candidate_font_files(font_paths):
        problem, name = _inspect_face(path)
        if problem is None:
            candidates.append(_Face(str(path), name, font_digest(path)))
    faces = _one_per_face(candidates)
    if max_fonts is not None:
        if len(faces) > max_fonts:
            # Evenly spaced rather than the first few, so a small subset still spans families.
            keep = np.unique(np.linspace(0, len(faces) - 1, max_fonts).round().astype(int))
            faces = [faces[i] for i in keep]
    return faces


def discover_fonts(
    font_paths: Sequence[str | Path] | None = None, max_fonts: int | None = None
) -> list[str]:
    """Paths of the usable font faces (one per face), in face-name order (see the module doc).

    ``font_paths`` are files or folders to search instead of the default locations (matplotlib's
    bundled fonts plus the system font folders). ``len(discover_fonts())`` is how many faces the
    default glyph source draws from.
    """
    return [face.path for face in _usable_faces(font_paths, max_fonts)]


def faces_used(dataset: ImageDataset) -> list[str]:
    """The font face names a glyph dataset actually contains (read from its example ids)."""
    return sorted({str(i).split("/")[2] for i in dataset.example_ids})


# --------------------------------------------------------------------------------------------
# rendering


def _stable_int(*parts: object) -> int:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _crop(image: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(image.max(axis=1))
    cols = np.flatnonzero(image.max(axis=0))
    if rows.size == 0:
        return image[:0, :0]
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y) <= radius * radius + radius  # a rounded square: a fatter disk


def _change_stroke(glyph: np.ndarray, step: int) -> np.ndarray:
    """Thicken (dilate) or thin (erode) the strokes; thinning that would erase the glyph is skipped."""
    if step == 0:
        return glyph
    from scipy import ndimage

    padded = np.pad(glyph, abs(step) + 1)
    footprint = _disk(abs(step))
    if step > 0:
        return ndimage.grey_dilation(padded, footprint=footprint)
    thinner = ndimage.grey_erosion(padded, footprint=footprint)
    if thinner.max() < 128 or thinner.sum(dtype=np.int64) < 0.4 * glyph.sum(dtype=np.int64):
        return padded  # hairline faces: keep them drawable
    return thinner


def _fit_box(glyph: np.ndarray, scale: float) -> np.ndarray:
    """Resize so the longer side is ``BOX_SIZE * scale`` pixels (aspect kept, anti-aliased)."""
    from PIL import Image

    h, w = glyph.shape
    target = BOX_SIZE * scale
    factor = target / max(h, w)
    size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
    resized = np.asarray(Image.fromarray(glyph).resize(size, Image.Resampling.LANCZOS), np.float32)
    peak = resized.max()
    if peak > 0:
        resized *= 255.0 / peak  # thin faces end up as bright as bold ones, as in MNIST
    return resized


def render_glyph(
    font: "FT2Font",
    char: str,
    angle: float = 0.0,
    scale: float = 1.0,
    shift: tuple[int, int] = (0, 0),
    stroke: int = 0,
) -> np.ndarray:
    """One MNIST-like 28x28 uint8 image of ``char`` (font opened at ``_RENDER_PX``).

    Rotation is done by FreeType on the outline (sharper than rotating a bitmap); the stroke change
    is done at render resolution so that it is a fraction of a pixel after down-scaling.
    """
    font.set_text(char, float(angle))
    font.draw_glyphs_to_bitmap(antialiased=True)
    glyph = _crop(np.asarray(font.get_image()))
    if glyph.size == 0:
        raise ValueError(f"font {font.fname!r} draws nothing for {char!r}")
    glyph = _crop(_change_stroke(np.ascontiguousarray(glyph), stroke))
    return center_by_mass(_fit_box(glyph, scale), IMAGE_SIZE, shift)


class _FontPool:
    """Open fonts, reused across classes: one at render size, one at check size per face."""

    def __init__(self) -> None:
        self._render: dict[str, "FT2Font"] = {}
        self._check: dict[str, "FT2Font"] = {}
        self._unicase: dict[str, bool] = {}

    def render_font(self, face: _Face) -> "FT2Font":
        if face.path not in self._render:
            self._render[face.path] = _open_font(face.path, _RENDER_PX)
        return self._render[face.path]

    def supports(self, face: _Face, char: str) -> bool:
        """Whether the face has ``char``: mapped, named like it, drawing ink, and (for a lowercase
        letter) not a capital in disguise."""
        if face.path not in self._check:
            self._check[face.path] = _open_font(face.path, _CHECK_PX)
        font = self._check[face.path]
        index = font.get_char_index(ord(char))
        if index == 0 or not _glyph_name_fits(font, char, index) or not _has_ink(font, char):
            return False
        if char.isascii() and char.islower():
            if face.path not in self._unicase:
                self._unicase[face.path] = is_unicase(self.render_font(face))
            return not self._unicase[face.path]
        return True


def _render_class(
    char: str, faces: list[_Face], pool: _FontPool, images_per_class: int, seed: int
) -> tuple[np.ndarray, list[str]]:
    """All images of one class: faces cycled in a seeded order, each image augmented."""
    usable = [face for face in faces if pool.supports(face, char)]
    if not usable:
        raise InputError(f"no usable font face has a glyph for {char!r}")
    # Seeded per class from (seed, char, faces, count): a class renders the same whatever other
    # classes are requested with it.
    rng = np.random.default_rng(
        [seed, _stable_int(char, [f.name for f in usable], images_per_class)]
    )
    order = rng.permutation(len(usable))
    n = images_per_class
    angles = rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES, n)
    scales = rng.uniform(*SCALE_RANGE, n)
    shifts = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, (n, 2))
    strokes = rng.choice(STROKE_STEPS, size=n, p=STROKE_PROBS)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    ids: list[str] = []
    token = _char_token(char)
    for i in range(n):
        face = usable[order[i % len(usable)]]
        images[i] = render_glyph(
            pool.render_font(face),
            char,
            float(angles[i]),
            float(scales[i]),
            (int(shifts[i, 0]), int(shifts[i, 1])),
            int(strokes[i]),
        )
        ids.append(f"glyphs/{token}/{face.name}/{i:04d}")
    return images, ids


# --------------------------------------------------------------------------------------------
# cache


def default_cache_dir() -> Path:
    """``$TRANSFER_INFLUENCE_CACHE`` or ``~/.cache/transfer_influence``."""
    root = os.environ.get("TRANSFER_INFLUENCE_CACHE") or "~/.cache/transfer_influence"
    return Path(os.path.expanduser(root))


def _cache_key(
    classes: tuple[str, ...],
    images_per_class: int,
    seed: int,
    max_fonts: int | None,
    files: list[Path],
) -> str:
    """Hash of everything that can change the pixels or ids.

    Font files enter by file name and content hash, not by path, so the same fonts share an entry
    wherever they (or the project's virtual environment) are, and a changed font file gets a new one.
    """
    payload: dict[str, Any] = {
        "version": RENDERER_VERSION,
        "classes": list(classes),
        "images_per_class": images_per_class,
        "seed": seed,
        "max_fonts": max_fonts,
        "fonts": sorted({(p.name, font_digest(p)) for p in files}),
        "image": [IMAGE_SIZE, BOX_SIZE, _RENDER_PX],
        "augment": [ROTATION_DEGREES, SCALE_RANGE, MAX_SHIFT, STROKE_STEPS, STROKE_PROBS],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _save_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a cache may be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load_cached(path: Path, class_names: tuple[str, ...]) -> ImageDataset | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            if tuple(data["class_names"].tolist()) != class_names:
                return None
            return ImageDataset(
                name="glyphs",
                images=data["images"],
                labels=data["labels"].astype(np.int64),
                class_names=class_names,
                example_ids=data["example_ids"],
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # a damaged cache file is simply rebuilt


# --------------------------------------------------------------------------------------------
# public loader


def load_glyphs(
    classes: str | Sequence[str] = "alnum",
    images_per_class: int = 150,
    seed: int = 0,
    font_paths: Sequence[str | Path] | None = None,
    cache_dir: str | Path | None = None,
    max_fonts: int | None = None,
) -> ImageDataset:
    """Rendered, augmented glyph images, one class per character (see the module doc).

    ``classes``: a preset (:data:`CLASS_SETS`) or a list of single characters; labels follow it.
    ``font_paths``: font files or folders to use instead of bundled + system fonts.
    ``max_fonts``: use at most this many usable faces, evenly spaced in face-name order (quick runs).
    ``cache_dir``: where the ``.npz`` cache lives (default :func:`default_cache_dir`); the cache is
    keyed by all parameters, the candidate font files (file name and content hash, not path) and the
    renderer version, so installing a font package gives a new cache entry rather than stale images,
    and the same fonts in another checkout reuse the entry.

    Returns uint8 images (N, 1, 28, 28), ``images_per_class`` per class in class order, with ids
    ``glyphs/<char>/<face>/<index>`` (symbols spelled out: ``glyphs/slash/...``).
    """
    chars = resolve_classes(classes)
    if images_per_class < 1:
        raise InputError(f"images_per_class must be positive, got {images_per_class}")
    files = candidate_font_files(font_paths)
    key = _cache_key(chars, images_per_class, seed, max_fonts, files)
    cache_path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache_path / "glyphs" / f"glyphs-{key}.npz"
    if cache_file.exists():
        cached = _load_cached(cache_file, chars)
        if cached is not None:
            return cached

    faces = _usable_faces(font_paths, max_fonts)
    if not faces:
        raise InputError(
            "no usable font face found"
            + (f" in {list(map(str, font_paths))}" if font_paths is not None else "")
        )
    pool = _FontPool()
    images, labels, ids = [], [], []
    for label, char in enumerate(chars):
        class_images, class_ids = _render_class(char, faces, pool, images_per_class, seed)
        images.append(class_images)
        labels.append(np.full(len(class_images), label, np.int64))
        ids.extend(class_ids)
    arrays = {
        "images": np.concatenate(images)[:, None],
        "labels": np.concatenate(labels),
        "class_names": np.array(chars),
        "example_ids": np.array(ids),
    }
    _save_atomic(cache_file, arrays)
    return ImageDataset(
        name="glyphs",
        images=arrays["images"],
        labels=arrays["labels"],
        class_names=chars,
        example_ids=arrays["example_ids"],
    )
