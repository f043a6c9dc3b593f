"""The demo's sanity check: does each digit's top-k list hold a glyph that looks like it?"""

from __future__ import annotations

from dataclasses import dataclass

from ..estimate import InfluenceEstimate
from .rankings import top_and_bottom

# Glyph classes that look like each digit: used to check that the demo's rankings find the obvious.
DIGIT_LOOKALIKES: dict[str, tuple[str, ...]] = {
    "0": ("0", "O", "o", "D", "Q"),
    "1": ("1", "l", "I", "i"),
    "2": ("2", "Z", "z"),
    "3": ("3",),
    "4": ("4",),
    "5": ("5", "S", "s"),
    "6": ("6", "b", "G"),
    "7": ("7",),
    "8": ("8", "B"),
    "9": ("9", "g", "q"),
}


@dataclass(frozen=True)
class LookalikeCheck:
    """For each digit: does its top-k list hold a glyph that looks like it?"""

    top_k: int
    hits: dict[str, list[str]]
    checked: list[str]

    @property
    def num_hits(self) -> int:
        return sum(1 for d in self.checked if self.hits[d])


def lookalike_check(per_class: InfluenceEstimate, top_k: int = 3) -> LookalikeCheck | None:
    """None unless the targets are digits and the source has glyph classes to compare with."""
    checked = [d for d in per_class.target_ids if d in DIGIT_LOOKALIKES]
    if not checked or not any(g in per_class.unit_names for d in checked for g in DIGIT_LOOKALIKES[d]):
        return None
    hits: dict[str, list[str]] = {}
    for digit in checked:
        column = per_class.target_ids.index(digit)
        best, _ = top_and_bottom(per_class, column, top_k)
        hits[digit] = [c.name for c in best if c.name in DIGIT_LOOKALIKES[digit]]
    return LookalikeCheck(top_k, hits, checked)
