"""The hand-picked baseline (paper App. A.4): keep only the source classes a person would call
related to the target classes, retrain, and compare with the full source.

It is the choice a user makes without influences, so it is the bar a removal guided by influences
should clear. The relation comes from a mapping file (YAML: target class name → list of source
class names), for glyph sources with digit targets (the demo) from the shipped look-alike table
``lookalikes.DIGIT_LOOKALIKES``, or, for sources whose classes are WordNet ids (the ImageNet
layout), from WordNet's noun hierarchy (``analysis.wordnet``: a target's synset and its hyponyms).

The retrains are the counterfactual sweep's: the same store in ``STUDY/counterfactual/``, the same
R training seeds as its full-source arm (so the two share those runs and the comparison is paired),
and the same scoring half of the target test images; the results go beside the counterfactual's
summaries of the same target (``context.folder("counterfactual")``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from ..errors import InputError, close_matches
from ..execute import RunSummary
from ..study.atomic import atomic_write_text
from ..study.results import load_target_views
from ..study.store import StudyStore, study_lock
from .context import StudyContext
from .counterfactual import (
    DEFAULT_REPEATS, SUMMARY_COLUMNS, SWEEP_DIR, Arm, ArmResult, retrain_arms, retrain_seeds, split_targets,
)
from .lookalikes import DIGIT_LOOKALIKES
from .relation import Relation
from .wordnet import is_wnid, wordnet_relation

SELECTION = "hand_picked"
RESULT_FILE = "hand_picked.json"
COUNTERFACTUAL_FILE = "removed.json"
"""Written by the counterfactual sweep beside its summary: when present, its rows are its own."""
_NAMES_SHOWN = 80
"""Valid names listed in an error (a 1,000-class source would drown the message)."""


# ---- the relation: target class → related source classes ---------------------------------------
def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    return shown + (f", … ({len(names) - _NAMES_SHOWN} more)" if len(names) > _NAMES_SHOWN else "")


def _parse_mapping(path: Path) -> dict[str, list[str]]:
    """The file's mapping with every name a string: YAML's base loader keeps ``0`` as ``"0"`` and
    ``on`` as ``"on"``, so digit and word class names are read as written."""
    if not path.is_file():
        raise InputError(f"--mapping {path}: no such file; give a YAML file mapping target class names to source class names")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:
        raise InputError(f"--mapping {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise InputError(
            f"--mapping {path}: expected a mapping of target class name → list of source class names, "
            "e.g.\n  '0': [O, o, D]\n  '1': [l, I]"
        )
    mapping: dict[str, list[str]] = {}
    for target, sources in data.items():
        if isinstance(sources, str):
            sources = [sources] if sources else []
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise InputError(f"--mapping {path}: the entry of target class {target!r} must be a list of source class names")
        mapping[str(target)] = list(sources)
    return mapping


def _guesses(unknown: Sequence[str], known: Sequence[str]) -> str:
    """'; did you mean …' for the unknown names that have a close known one ('' when none has)."""
    pairs = [(name, close_matches(name, known)) for name in unknown]
    found = [f"{name!r} → {guesses[0]!r}" for name, guesses in pairs if guesses]
    return f"; did you mean {', '.join(found)}?" if found else ""


def relation_from_file(path: Path, target_names: Sequence[str], source_names: Sequence[str]) -> Relation:
    """Read a mapping file; names unknown on either side are refused together, with the valid ones."""
    mapping = _parse_mapping(path)
    bad_targets = [t for t in mapping if t not in target_names]
    known_sources = set(source_names)
    bad_sources = sorted({s for sources in mapping.values() for s in sources if s not in known_sources})
    if bad_targets or bad_sources:
        problems = []
        if bad_targets:
            problems.append(f"unknown target classes {bad_targets}{_guesses(bad_targets, target_names)} "
                            f"(valid: {_listing(list(target_names))})")
        if bad_sources:
            problems.append(f"unknown source classes {bad_sources}{_guesses(bad_sources, source_names)} "
                            f"(valid: {_listing(list(source_names))})")
        raise InputError(f"--mapping {path}: " + "; ".join(problems) + "; names are matched exactly, case included")
    related = {t: tuple(dict.fromkeys(mapping.get(t, []))) for t in target_names}
    return Relation(related, f"mapping file {path}")


def default_relation(source_datasets: Sequence[str], target_names: Sequence[str], source_names: Sequence[str]) -> Relation:
    """The shipped glyph ↔ digit look-alikes, for digit targets and a glyph source; WordNet's
    hierarchy when every source class is a WordNet id (a target's synset and its hyponyms);
    otherwise the relation is the user's to give (there is no safe guess for arbitrary class names)."""
    digits = bool(target_names) and all(t in DIGIT_LOOKALIKES for t in target_names)
    present = set(source_names)
    if digits and "glyphs" in source_datasets and any(g in present for t in target_names for g in DIGIT_LOOKALIKES[t]):
        related = {t: tuple(g for g in DIGIT_LOOKALIKES[t] if g in present) for t in target_names}
        return Relation(related, "built-in digit look-alikes (analysis.lookalikes.DIGIT_LOOKALIKES)")
    if source_names and all(is_wnid(name) for name in source_names):
        return wordnet_relation(target_names, source_names)
    raise InputError(
        f"no built-in relation for target classes {_listing(list(target_names))} and this source "
        "(built in: glyph look-alikes for digit targets, and WordNet for source classes named by WordNet "
        "ids such as n02085620): give one with --mapping MAPPING.yaml (target class name → list of "
        "related source class names)"
    )


def kept_classes(relation: Relation, source_names: Sequence[str]) -> tuple[int, ...]:
    """Indices of the source classes related to some target class; an empty keep set is refused."""
    wanted = {s for sources in relation.related.values() for s in sources}
    kept = tuple(i for i, name in enumerate(source_names) if name in wanted)
    if not kept:
        raise InputError(
            f"the {relation.origin} relates no source class of this study to its target classes: "
            "a source with no class cannot be trained; name at least one related source class"
        )
    return kept


# ---- the retrains ------------------------------------------------------------------------------
@dataclass
class HandPickedResult:
    sweep_dir: Path
    class_names: tuple[str, ...]
    relation: Relation
    kept: tuple[int, ...]
    full: ArmResult
    hand_picked: ArmResult
    seeds: list[int]
    scoring: np.ndarray
    """True for the target test examples that scored the retrains (the counterfactual's scoring half)."""
    executed: list[RunSummary] = field(default_factory=list)

    @property
    def removed(self) -> tuple[int, ...]:
        return self.hand_picked.arm.removed[0]


def _source_datasets(store: StudyStore) -> list[str]:
    return [component["dataset"] for component in store.metadata["config"]["source"]["components"]]


def run_handpicked(
    context: StudyContext, mapping: str | Path | None = None, repeats: int = DEFAULT_REPEATS
) -> HandPickedResult:
    """Retrain the full source and the hand-picked source with the counterfactual's R seeds
    (skipping retrains already stored, running them as ``context.retrain`` says) and score both on
    its scoring half of the context's target; the files go to ``context.folder("counterfactual")``.

    The kind of study (whole source classes only), the relation and the seed count are checked
    before any training."""
    context.require_units("class", "handpicked")
    if repeats < 2:
        raise InputError(f"--repeats {repeats}: paired standard errors need at least 2 seeds (the paper uses 10)")
    store = context.store
    class_names = tuple(store.metadata["class_names"])
    views = load_target_views(store, context.target)
    targets = tuple(views["classes"].tolist())
    if mapping is not None:
        relation = relation_from_file(Path(mapping), targets, class_names)
    else:
        relation = default_relation(_source_datasets(store), targets, class_names)
    kept = kept_classes(relation, class_names)
    removed = tuple(i for i in range(len(class_names)) if i not in set(kept))
    seed = context.config.seed
    scoring = ~split_targets(views["labels"], seed)
    seeds = retrain_seeds(seed, repeats)
    arms = [Arm("full", 0, ((),) * repeats), Arm(SELECTION, len(removed), (removed,) * repeats)]
    sweep = retrain_arms(context, arms, seeds, scoring)
    full, picked = sweep.arms
    return HandPickedResult(
        context.folder(SWEEP_DIR), class_names, relation, kept, full, picked, seeds, scoring, sweep.executed
    )


# ---- files ------------------------------------------------------------------------------------
def merged_summary_csv(existing: str | None, result: HandPickedResult, counterfactual_written: bool) -> str:
    """``summary.csv`` with this result's rows: the counterfactual's rows are kept as they are (its
    full-source row included) and any earlier ``hand_picked`` row is replaced; without the
    counterfactual's files the full-source row is this result's own."""
    rows: list[dict[str, object]] = []
    if existing:
        rows = [dict(r) for r in csv.DictReader(io.StringIO(existing)) if r.get("selection") != SELECTION]
    if not counterfactual_written:
        rows = [r for r in rows if r.get("selection") != "full"]
    if not any(r.get("selection") == "full" for r in rows):
        rows.insert(0, result.full.row())
    rows.append(result.hand_picked.row())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def handpicked_json(result: HandPickedResult) -> str:
    names = result.class_names

    def arm_numbers(arm: ArmResult) -> dict[str, object]:
        return {key: value for key, value in arm.row().items() if value != "" and key not in ("selection", "k")}

    return json.dumps(
        {
            "mapping_source": result.relation.origin,
            "related": {target: list(sources) for target, sources in result.relation.related.items()},
            "unmapped_target_classes": result.relation.unmapped,
            "kept": [names[c] for c in result.kept],
            "removed": [names[c] for c in result.removed],
            "k": len(result.removed),
            "seeds": result.seeds,
            "scoring_examples": int(result.scoring.sum()),
            "full": arm_numbers(result.full),
            "hand_picked": arm_numbers(result.hand_picked),
        },
        indent=2,
    )


def write_handpicked(result: HandPickedResult) -> dict[str, Path]:
    """``hand_picked.json`` and the ``hand_picked`` row of ``summary.csv``, merged into the file under
    the sweep's lock and replaced atomically, so the counterfactual's rows are never lost."""
    summary_path = result.sweep_dir / "summary.csv"
    json_path = result.sweep_dir / RESULT_FILE
    with study_lock(result.sweep_dir):
        existing = summary_path.read_text(encoding="utf-8") if summary_path.exists() else None
        counterfactual_written = (result.sweep_dir / COUNTERFACTUAL_FILE).exists()
        atomic_write_text(summary_path, merged_summary_csv(existing, result, counterfactual_written))
        atomic_write_text(json_path, handpicked_json(result))
    return {"summary": summary_path, "hand_picked": json_path}
