"""The findings that open a report (and the demo's printed output): what the study found, and how
far to trust it, in words with numbers.

Why a section of its own: the tables and figures below it hold everything, but a reader should not
have to assemble the verdict — which classes help and hurt (with intervals, and whether they survive
the false-discovery control), whether pretraining on the study's subsets beats an untrained backbone
at all (if not, the influences describe effects on a backbone that barely matters: docs/method.md),
how reproducible the ranking is (split-half Spearman), how well the influences predict held-out
models (the LDS), and what acting on them achieved when a counterfactual sweep has run. Each finding
is built from numbers the rest of the report (or ``diagnose``) computes; nothing is estimated here.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..analysis.baselines import AccuracyDifference, pretraining_gains
from ..analysis.convergence import Diagnostics
from ..analysis.recommendation import header_line, read_recommendation
from ..estimate import ESTIMATOR_NAMES, InfluenceEstimate
from ..evaluate.fdr import significant_classes
from ..study.design import design_subset_size
from ..study.results import StudyResults
from .tables import class_label

SHOWN = 3
"""Classes named at each end of the ranking."""
FDR = 0.1
"""False-discovery rate of the significance lists the findings name (the report's, too)."""
RELIABILITY_WORDS = (
    (0.8, "stable: the top and bottom classes would come out the same from another set of models"),
    (0.5, "fairly stable at the ends: trust the top and bottom few, not the order in the middle"),
    (0.2, "rough: treat the ranking as a rough guide"),
    (-1.0, "hardly better than chance: do not act on the ranking"),
)
"""Split-half Spearman thresholds and what each range means for the ranking, highest first."""


@dataclass(frozen=True)
class ClassFinding:
    """One class at an end of the overall ranking, with its 95% interval and significance."""

    name: str
    influence: float
    stderr: float
    low: float
    high: float
    significant: bool
    """In the one-sided Benjamini–Hochberg list of its sign (H1: > 0 for a helpful class, < 0 for
    a harmful one) at ``FDR``."""

    def text(self) -> str:
        mark = "significant after FDR control" if self.significant else "not significant after FDR control"
        return (f"{class_label(self.name)} {self.influence:+.4f} (95% CI [{self.low:+.4f}, {self.high:+.4f}], "
                f"{mark})")


@dataclass
class Findings:
    """The report's opening summary: one (title, sentence) per finding, and the class numbers."""

    output_kind: str
    estimator: str
    num_models: int
    helpful: list[ClassFinding]
    harmful: list[ClassFinding]
    items: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The findings as printed lines (the demo's and the report command's output)."""
        return [f"  {title}: {text}" for title, text in self.items]

    def html(self) -> str:
        rows = "".join(f"<li><strong>{html.escape(title)}.</strong> {html.escape(text)}</li>" for title, text in self.items)
        return f"<h2>Findings</h2><ul>{rows}</ul>"

    def save(self, path: Path) -> None:
        """``findings.json``: the same findings, for scripts that read a report."""
        payload = {
            "output_kind": self.output_kind, "estimator": self.estimator, "num_models": self.num_models,
            "helpful": [asdict(c) for c in self.helpful], "harmful": [asdict(c) for c in self.harmful],
            "items": [{"title": t, "text": x} for t, x in self.items],
        }
        path.write_text(json.dumps(payload, indent=2))


def study_findings(
    results: StudyResults, overall: InfluenceEstimate, diag: Diagnostics | None, sweep_dir: Path | None
) -> Findings:
    """The findings of a report on ``overall`` (its output kind and estimator), its diagnostics
    (None: not run) and the counterfactual sweep in ``sweep_dir`` (if one has run)."""
    helpful, harmful = class_ends(overall)
    kind, estimator = overall.output_kind or "p_true", overall.estimator
    findings = Findings(kind, estimator, results.num_models, helpful, harmful)
    unit = f"{ESTIMATOR_NAMES[estimator]}, {kind}, {results.num_models} models"
    findings.items.append(("Most helpful source classes", _ends_text(helpful, unit)))
    findings.items.append(("Most harmful source classes", _ends_text(harmful, unit)))
    findings.items.append(("Does pretraining matter", pretraining_text(results)))
    findings.items.append(("How reliable the ranking is", reliability_text(diag, kind, estimator, results.num_models)))
    findings.items.append(("Predicting held-out models (LDS)", lds_text(diag, kind, estimator)))
    findings.items.append(("Acting on it", action_text(sweep_dir)))
    return findings


def class_ends(overall: InfluenceEstimate, shown: int = SHOWN) -> tuple[list[ClassFinding], list[ClassFinding]]:
    """The ``shown`` most positive and most negative classes overall, each with its interval and
    whether the one-sided BH list of its sign holds it."""
    values, errors = overall.values[:, 0], overall.stderr[:, 0]
    low, high = overall.interval(0.95)
    listed = {name for name, _, _ in significant_classes(overall, 0, FDR, alternative="by-sign")}
    order = sorted(range(values.size), key=lambda k: -float(values[k]))
    count = min(shown, values.size // 2)

    def finding(k: int) -> ClassFinding:
        name = overall.unit_names[k]
        return ClassFinding(name, float(values[k]), float(errors[k]), float(low[k, 0]), float(high[k, 0]), name in listed)

    return [finding(k) for k in order[:count]], [finding(k) for k in order[::-1][:count]]


def _ends_text(ends: list[ClassFinding], unit: str) -> str:
    significant = sum(c.significant for c in ends)
    return (f"{'; '.join(c.text() for c in ends)} — {unit}; {significant} of {len(ends)} in the one-sided "
            f"Benjamini–Hochberg list of their sign at FDR {FDR:g} (the intervals are each class's own, not "
            "adjusted for these classes being picked as the extremes: the list is the selection-aware verdict)")


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def difference_text(gain: AccuracyDifference) -> str:
    """'+0.9 points (0.761 vs 0.752; 95% CI [-5.1, +6.9] points, 3 random-init runs)'."""
    low, high = gain.interval(0.95)
    numbers = f"{_points(gain.difference)} points ({gain.first.mean:.3f} vs {gain.second.mean:.3f}"
    if not math.isfinite(low):
        single = gain.baseline if gain.second.count < 2 else gain.better
        return (numbers + f"; no interval: there is a single run of the {single}, whose spread is unknown — set "
                "baselines.repeats to 3 or more)")
    return numbers + f"; 95% CI [{_points(low)}, {_points(high)}] points, {gain.second.count} random-init runs)"


def pretraining_text(results: StudyResults) -> str:
    """Whether the study's subset backbones (and the all-source one) beat a random-init backbone,
    as differences with intervals, and what that means for the influences."""
    gains = pretraining_gains(results)
    if not gains:
        return ("not measured: the study has no random-init baseline runs (baselines.repeats: 0), so nothing says "
                "whether its backbones beat an untrained one")
    subset = design_subset_size(results.config.design.kind, len(results.class_names), results.config.design.alpha)
    first = gains[0]
    verdict = first.verdict()
    if verdict == "higher":
        meaning = (f"backbones pretrained on {subset} source classes beat an untrained one, so the influences measure how "
                   "each class changes a real benefit of pretraining")
    elif verdict == "lower":
        meaning = (f"backbones pretrained on {subset} source classes do worse than an untrained one: in this regime the "
                   "source hurts, and a positive influence means a class hurts less than the others")
    elif verdict == "unmeasured":
        meaning = (f"so the study cannot say whether backbones pretrained on {subset} source classes beat an untrained "
                   "one, nor therefore how much the influences matter (docs/method.md, Baselines)")
    else:
        meaning = (f"the study cannot tell backbones pretrained on {subset} source classes from an untrained one "
                   "(the interval holds 0), so pretraining may barely matter in this regime and the influences may "
                   "describe small effects on a backbone the target hardly uses (docs/method.md, Baselines)")
    text = f"subset models minus random init: {difference_text(first)}: {meaning}"
    if len(gains) > 1:
        full = gains[1]
        text += f". The all-source backbone minus random init: {difference_text(full)}"
    return text


def _reliability_words(value: float) -> str:
    return next(words for threshold, words in RELIABILITY_WORDS if value >= threshold)


def reliability_text(diag: Diagnostics | None, kind: str, estimator: str, num_models: int) -> str:
    """The split-half reliability row in use (this output kind and estimator) in words."""
    if diag is None:
        return f"not measured: the diagnostics need at least 8 finished models (the study has {num_models})"
    curves = diag.reliability.get((kind, estimator))
    if curves is None:
        return f"not measured for {kind} with the {estimator} estimator"
    overall, per_class = curves.get("overall"), curves.get("target_class")
    if overall is None or not math.isfinite(overall.at_full_size):
        skipped = next((note for note in diag.notes if note.startswith("split-half")), "no split could be measured")
        return f"not measured ({skipped.rstrip('.')})"
    half = int(overall.models_per_half[-1])
    text = (f"split-half Spearman of the overall ranking {overall.at_full_size:.2f} (two halves of about {half} "
            f"models each, of {num_models}): {_reliability_words(overall.at_full_size)}")
    if per_class is not None and math.isfinite(per_class.at_full_size):
        text += (f"; per-target-class rankings {per_class.at_full_size:.2f}: "
                 f"{_reliability_words(per_class.at_full_size)}")
    if overall.at_full_size <= 0:
        return text
    return text + (f" (the ranking from all {num_models} models is more reliable than either half's: Spearman–Brown "
                   f"projects {overall.full_study_reliability:.2f} for the overall one)")


def lds_text(diag: Diagnostics | None, kind: str, estimator: str) -> str:
    """The linear datamodeling score per target example, with its interval, in words."""
    if diag is None:
        return "not measured: the diagnostics need at least 8 finished models"
    scores = diag.lds.get((kind, estimator), {})
    lds = scores.get("example")
    if lds is None or not math.isfinite(lds.mean):
        skipped = next((note for note in diag.notes if note.startswith("held-out")), "no held-out models to score")
        return f"not measured ({skipped.rstrip('.')})"
    low, high = lds.interval(0.95)
    interval = (f", 95% interval over the held-out models [{low:.2f}, {high:.2f}] (the fit and the split held "
                "fixed)") if math.isfinite(low) else ""
    return (f"{lds.mean:.2f}{interval}: influences fitted on {lds.num_train_models} models rank the {lds.num_models} "
            f"held-out models' outputs on a target example with Spearman {lds.mean:.2f} on average (1: perfectly, "
            "0: no better than chance)")


def action_text(sweep_dir: Path | None) -> str:
    """What acting on the influences achieved: the counterfactual's confirmed recommendation
    (``recommendation.json``), else the header of ``recommended_source.txt``, else how to run one."""
    if sweep_dir is not None:
        recommendation = read_recommendation(sweep_dir)
        if recommendation is not None:
            return header_line(recommendation).lstrip("# ")
        header = sweep_dir / "recommended_source.txt"
        if header.is_file():
            first = header.read_text().splitlines()
            if first:
                return first[0].lstrip("# ")
    return ("no counterfactual sweep has run: `transfer-influence counterfactual STUDY_DIR` retrains the full source "
            "without the most helpful / harmful classes and says what removing them achieves")
