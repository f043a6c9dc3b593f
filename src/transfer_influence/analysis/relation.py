"""The relation of the hand-picked baseline: which source classes are related to each target class.

Its own module so that the relation's sources (a mapping file, the shipped look-alikes, WordNet in
``analysis.wordnet``) can build one without importing ``analysis.handpicked``, which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Relation:
    """Related source classes of each target class (only names of this study), and where from."""

    related: dict[str, tuple[str, ...]]
    origin: str

    @property
    def unmapped(self) -> list[str]:
        """Target classes with no related source class: the kept source says nothing about them."""
        return [target for target, sources in self.related.items() if not sources]
