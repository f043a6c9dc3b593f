"""The split of a study's target test examples into a selection half and a scoring half.

Anything chosen from the influences (classes to remove, a what-if k) is chosen on the selection
half and judged on the scoring half: scoring on the images that made the choice would reward it for
fitting their noise. The counterfactual sweep, the hand-picked source and the what-if comparison
with a sweep all use this one split, so their numbers are on the same images."""

from __future__ import annotations

import numpy as np

SPLIT_STREAM = 0xC0F1
"""Random stream of the split, derived from the study seed and distinct from the design's."""


def split_targets(labels: np.ndarray, seed: int) -> np.ndarray:
    """Boolean selection mask over the target test examples: half of every target class (the
    smaller half when a class has an odd count), drawn at random from ``seed``; the rest score."""
    labels = np.asarray(labels)
    selection = np.zeros(labels.size, dtype=bool)
    rng = np.random.default_rng([SPLIT_STREAM, seed])
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        selection[members[: members.size // 2]] = True
    return selection


CHOICE_SPLIT_STREAM = 0xC0F5
"""Random stream of the scoring half's own split (``split_scoring``), apart from ``SPLIT_STREAM``."""


def split_scoring(labels: np.ndarray, selection: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The scoring examples (``~selection``) in two halves, stratified by target class: the
    *choice* images, on which the counterfactual picks the removal to recommend, and the
    *confirmation* images, on which the fresh-seed retrains test it.

    Fresh seeds alone do not make a confirmation independent of the choice: a removal also has a
    gain particular to the images it is scored on, which no seed changes, and picking the best of
    many arms picks that part too. Confirming on images the choice did not see removes it."""
    labels = np.asarray(labels)
    scoring = np.flatnonzero(~np.asarray(selection, dtype=bool))
    choice = np.zeros(labels.size, dtype=bool)
    rng = np.random.default_rng([CHOICE_SPLIT_STREAM, seed])
    for c in np.unique(labels[scoring]):
        members = rng.permutation(scoring[labels[scoring] == c])
        choice[members[: (members.size + 1) // 2]] = True
    confirmation = ~np.asarray(selection, dtype=bool) & ~choice
    return choice, confirmation
