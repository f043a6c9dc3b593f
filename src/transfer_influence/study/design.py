"""Subset designs and run specs.

Every model's subset is a pure function of (study seed, model index): any mask can be rebuilt from
its index alone, so a worker needs nothing but the index, and a crashed or resumed study reproduces
exactly the subsets it would have drawn. A subset's *units* are source classes (``design.unit:
class``) or single source training examples (``design.unit: example``); the designs below draw over
``num_units`` of either kind alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from ..errors import InputError, PlanError
from .config import StudyConfig

# Distinct streams derived from the study seed, so that subset draws and training seeds never share
# random numbers.
_SUBSET_STREAM = 0x5B5E7
_TRAIN_STREAM = 0x7EA1
_BASELINE_STREAM = 0xBA5E
_GRADIENT_STREAM = 0x96AD


def subset_size(num_classes: int, alpha: float) -> int:
    size = int(round(alpha * num_classes))
    if not 1 <= size <= num_classes - 1:
        raise InputError(
            f"design.alpha={alpha} gives subsets of {size} of {num_classes} classes; every subset "
            "must leave some classes in and some out — choose alpha so that 1 ≤ alpha·K ≤ K−1"
        )
    return size


def _random_subset(seed: int, draw: int, num_classes: int, size: int) -> np.ndarray:
    rng = np.random.default_rng([_SUBSET_STREAM, seed, draw])
    mask = np.zeros(num_classes, dtype=bool)
    mask[rng.choice(num_classes, size=size, replace=False)] = True
    return mask


def iid_mask(seed: int, index: int, num_classes: int, alpha: float) -> np.ndarray:
    """Independent uniformly random subsets of exactly alpha·K classes (the paper's design)."""
    return _random_subset(seed, index, num_classes, subset_size(num_classes, alpha))


def complement_mask(seed: int, index: int, num_classes: int, alpha: float) -> np.ndarray:
    """Pairs (S, S^c): models 2p and 2p+1 see complementary subsets, so every class is in exactly
    one model of each pair. This balances inclusion counts and cancels the pair's shared noise in
    the difference of means. Only alpha = 1/2 with an even K keeps both halves the same size: any
    other combination is refused (use ``partition``)."""
    if abs(alpha - 0.5) > 1e-9 or num_classes % 2:
        raise InputError(
            f"design.kind 'complement' pairs a subset with its complement, so it needs alpha = 0.5 and an "
            f"even number of classes (got alpha={alpha}, K={num_classes}); use the 'partition' design "
            "(balanced blocks of 1/alpha models) or 'iid'"
        )
    base = _random_subset(seed, index // 2, num_classes, num_classes // 2)
    return base if index % 2 == 0 else ~base


def partition_block_size(alpha: float) -> int:
    block = int(round(1 / alpha))
    if abs(block * alpha - 1) > 1e-6:
        raise InputError(
            f"design.kind 'partition' needs 1/alpha to be a whole number (alpha = 1/2, 1/3, 1/4, ...), "
            f"got alpha={alpha}; use alpha={1 / block:.4g} or the 'iid' design"
        )
    return block


def partition_subset_size(num_classes: int, alpha: float) -> int:
    """Classes per model in the partition design: ⌊K·α⌋ = ⌊K / (1/α)⌋, so that the 1/α disjoint
    subsets of a block fit in the K classes. Equals round(α·K) unless K·α has a fraction ≥ ½."""
    block = partition_block_size(alpha)
    if num_classes < block:
        raise InputError(
            f"the partition design with alpha={alpha} needs at least 1/alpha = {block} source classes, "
            f"got {num_classes}; use a larger alpha"
        )
    return num_classes // block


def partition_mask(seed: int, index: int, num_classes: int, alpha: float) -> np.ndarray:
    """Balanced blocks: the 1/alpha models of a block take disjoint groups of ⌊K·α⌋ classes from a
    random permutation, so every class is in at most one model per block and every subset has the
    same size. When K is not a multiple of 1/alpha, the K mod (1/alpha) classes left at the end of
    the permutation sit out of that block (different ones in every block). Each model's subset is
    still a uniformly random set of ⌊K·α⌋ classes, and the block's models never overlap, so the
    differences between blocks cancel out of each class's comparison. Complement pairs are the
    case alpha = 1/2 with K even."""
    block = partition_block_size(alpha)
    size = partition_subset_size(num_classes, alpha)
    rng = np.random.default_rng([_SUBSET_STREAM, seed, index // block])
    order = rng.permutation(num_classes)
    part = index % block
    mask = np.zeros(num_classes, dtype=bool)
    mask[order[part * size : (part + 1) * size]] = True
    return mask


DESIGNS = {"iid": iid_mask, "complement": complement_mask, "partition": partition_mask}


def design_subset_size(kind: str, num_classes: int, alpha: float) -> int:
    """Classes in every subset of the design (all subsets of a design have the same size)."""
    if kind == "partition":
        return partition_subset_size(num_classes, alpha)
    if kind == "complement":
        return num_classes // 2
    return subset_size(num_classes, alpha)


def design_mask(config: StudyConfig, index: int, num_classes: int, seed_offset: int = 0) -> np.ndarray:
    """Model ``index``'s subset; ``seed_offset`` draws from the same design with another seed
    (knockoff classes for false-discovery estimates)."""
    kind = config.design.kind
    if kind not in DESIGNS:
        raise InputError(f"unknown design.kind {kind!r}; choose one of {sorted(DESIGNS)}")
    return DESIGNS[kind](config.seed + seed_offset, index, num_classes, config.design.alpha)


def knockoff_masks(config: StudyConfig, indices: np.ndarray, num_classes: int) -> np.ndarray:
    """Masks of fake classes from the same design but another seed: independent of every output."""
    return np.stack([design_mask(config, int(i), num_classes, seed_offset=1_000_003) for i in indices])


def design_block_size(config: StudyConfig) -> int:
    """Models per block: 1/alpha for the partition design, 2 for complement pairs, round(1/alpha) for iid."""
    if config.design.kind == "complement":
        return 2
    return max(2, int(round(1 / config.design.alpha)))


def is_blocked(config: StudyConfig) -> bool:
    """Whether models come in design blocks (partition/complement designs or one seed per block)."""
    return config.design.kind != "iid" or config.train.seeding == "block"


def unit_word(config: StudyConfig) -> str:
    """What a design's units are called in messages: ``classes`` or ``source examples``."""
    return "source examples" if config.design.unit == "example" else "classes"


def design_unit_count(config: StudyConfig, num_classes: int, num_examples: int) -> int:
    """Units a subset mask covers: the K source classes, or the L source training examples."""
    return num_examples if config.design.unit == "example" else num_classes


def check_example_alpha(config: StudyConfig, num_examples: int) -> None:
    """Refuse an example-level design whose subsets cannot hold at least one example and leave at
    least one out (alpha·L < 1, or alpha·L > L − 1), or whose complement pairs cannot split the
    examples in halves; the message names the setting to change."""
    alpha, kind = config.design.alpha, config.design.kind
    if alpha * num_examples < 1 or round(alpha * num_examples) < 1:
        raise PlanError(
            f"design.unit 'example' with design.alpha={alpha:g} over {num_examples} source examples gives "
            f"subsets of fewer than one example (alpha·L = {alpha * num_examples:.3g}); raise design.alpha to at "
            f"least {1 / num_examples:.3g} (1/L), use more source examples, or use design.unit: class"
        )
    if round(alpha * num_examples) > num_examples - 1:
        raise PlanError(
            f"design.unit 'example' with design.alpha={alpha:g} over {num_examples} source examples puts every "
            "example in every subset; lower design.alpha so that alpha·L ≤ L − 1"
        )
    if kind == "complement" and num_examples % 2:
        raise PlanError(
            f"design.kind 'complement' splits the source examples into two halves, which needs an even number "
            f"of them (got {num_examples}); use design.kind 'iid' or 'partition'"
        )


def _named(columns: np.ndarray, unit_names: Sequence[str] | None) -> str:
    """': 'x', 'Bag'' — the units of ``columns`` by name (the first 8), or nothing without names."""
    if unit_names is None or not columns.size:
        return ""
    more = f" and {columns.size - 8} more" if columns.size > 8 else ""
    return " (" + ", ".join(repr(unit_names[k]) for k in columns[:8]) + more + ")"


def _count(n: int, units: str) -> str:
    """'1 class is', '2 classes are' ('source examples' alike)."""
    one = units[:-2] if units.endswith("sses") else units[:-1]
    return f"1 {one} is" if n == 1 else f"{n} {units} are"


def _plan_problem(
    masks: np.ndarray, block: int | None, units: str = "classes", unit_names: Sequence[str] | None = None
) -> str | None:
    """Why the first ``len(masks)`` models cannot estimate every class, or None when they can."""
    m = masks.shape[0]
    if block is not None and m < block:
        return f"a blocked design needs at least one whole block of {block} models"
    n_in = masks.sum(axis=0)
    never, always = np.flatnonzero(n_in == 0), np.flatnonzero(n_in == m)
    if never.size or always.size:
        parts = ([f"{_count(never.size, units)} in no subset{_named(never, unit_names)}"] if never.size else []) + (
            [f"{_count(always.size, units)} in every subset{_named(always, unit_names)}"] if always.size else []
        )
        return " and ".join(parts)
    return None


def minimum_models(config: StudyConfig, num_classes: int, search_limit: int = 100_000) -> int:
    """The fewest models (from index 0, this design and seed) with every class both in and out of
    some subset and, for blocked designs, at least one whole block; the masks are rebuilt from the
    seed, so the answer is exact."""
    block = design_block_size(config) if is_blocked(config) else None
    n_in = np.zeros(num_classes, dtype=np.int64)
    for m in range(1, search_limit + 1):
        n_in += design_mask(config, m - 1, num_classes)
        if (block is None or m >= block) and (n_in > 0).all() and (n_in < m).all():
            return m
    raise PlanError(
        f"no number of models up to {search_limit} includes and excludes every one of the {num_classes} "
        f"{unit_word(config)} "
        f"with design {config.design.kind!r} at alpha={config.design.alpha:g}; choose alpha so that every subset "
        "leaves some classes in and some out"
    )


def check_plan(config: StudyConfig, num_units: int, unit_names: Sequence[str] | None = None) -> None:
    """Refuse, before any training, a model count that cannot estimate every unit's influence
    (``num_units``: the design's units, ``design_unit_count``; ``unit_names``, when given, name
    the classes left out in the message).

    The count accepted here is the one every later analysis can estimate on all models; analyses
    that refit on part of the models (split halves, the held-out split) need more and skip with a
    note below what they need (``analysis.convergence``), rather than fail after training."""
    if config.design.unit == "example":
        check_example_alpha(config, num_units)
    needed = minimum_models(config, num_units)
    if config.num_models >= needed:
        return
    units = unit_word(config)
    unit = "source example" if config.design.unit == "example" else "class"
    masks = np.stack([design_mask(config, i, num_units) for i in range(config.num_models)])
    problem = _plan_problem(masks, design_block_size(config) if is_blocked(config) else None, units, unit_names)
    raise PlanError(
        f"num_models = {config.num_models} cannot estimate every {unit}'s influence: with design "
        f"{config.design.kind!r} (alpha {config.design.alpha:g}, {num_units} {units}, seed {config.seed}) "
        f"{problem}. This design and seed need at least {needed} models: set num_models (or --models) "
        f"to {needed} or more"
    )


def train_seed(config: StudyConfig, index: int) -> int:
    """Seed for a model's initialisation and data order.

    ``independent``: one per model. ``common``: one for the whole study (results are conditional on
    that one seed). ``block``: one per design block — with the partition design the models of a
    block hold disjoint subsets, so a block's shared seed effect enters a class's in- and out-means
    alike and cancels from its difference (exactly when K is a multiple of 1/alpha), while the
    estimate still averages over the blocks' seeds.
    """
    seeding = config.train.seeding
    if seeding == "common":
        key = [_TRAIN_STREAM, config.seed]
    elif seeding == "block":
        key = [_TRAIN_STREAM, config.seed, 1 << 40, index // design_block_size(config)]
    else:
        key = [_TRAIN_STREAM, config.seed, index]
    return int(np.random.default_rng(key).integers(0, 2**31 - 1))


RunKind = Literal["subset", "all_source", "random_init"]
"""The runs a study plans (and the ``work`` command can run by index)."""
SpecKind = Literal["subset", "all_source", "random_init", "retrain"]
"""Every kind of spec a worker runs: a study's own, plus ``retrain`` (a source model on a chosen
mask, e.g. the full source minus some classes, stored in a sweep beside the study)."""


@dataclass(frozen=True)
class RunSpec:
    """One unit of work: train (or not) a source model on ``mask`` and transfer it.

    ``name`` gives a run that is not one of a study's numbered runs an id of its own (a retrain
    named by the classes it removes and its repeat), so its file is found again on resume."""

    kind: SpecKind
    index: int
    mask: np.ndarray
    seed: int
    name: str | None = None

    @property
    def run_id(self) -> str:
        if self.name is not None:
            return f"{self.kind}-{self.name}"
        return f"{self.kind}-{self.index:06d}"


def subset_runs(config: StudyConfig, num_classes: int, indices: range | list[int]) -> list[RunSpec]:
    return [
        RunSpec("subset", i, design_mask(config, i, num_classes), train_seed(config, i)) for i in indices
    ]


def baseline_runs(config: StudyConfig, num_classes: int) -> list[RunSpec]:
    """All-source models and random-init backbones, each repeated with its own seed."""
    specs: list[RunSpec] = []
    everything = np.ones(num_classes, dtype=bool)
    for r in range(config.baselines.repeats):
        seed = int(np.random.default_rng([_BASELINE_STREAM, config.seed, r]).integers(0, 2**31 - 1))
        specs.append(RunSpec("all_source", r, everything, seed))
        specs.append(RunSpec("random_init", r, np.zeros(num_classes, dtype=bool), seed))
    return specs


def gradient_model_runs(config: StudyConfig, num_classes: int, count: int) -> list[RunSpec]:
    """The full-source models of gradient-based influence (TRAK), each with its own seed: a stream
    apart from the subset and baseline models, so adding gradient models changes neither."""
    everything = np.ones(num_classes, dtype=bool)
    return [
        RunSpec(
            "all_source",
            m,
            everything,
            int(np.random.default_rng([_GRADIENT_STREAM, config.seed, m]).integers(0, 2**31 - 1)),
            name=f"gradient-{m:03d}",
        )
        for m in range(count)
    ]
