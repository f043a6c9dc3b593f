"""Which ranking acts better? Counterfactual sweeps of one study under several rankings, compared.

A study's own ranking writes its sweep summary to its target's counterfactual folder
(``context.folder("counterfactual")``: ``STUDY/counterfactual/``, or ``target-<name>/`` inside it for
an extra target), a ranking taken from another study (another α, another target, another
architecture: paper App. E.5) to ``from-<name>/`` inside that folder. Every sweep of the study
retrains with the same R seeds and scores on the same held-apart target images, so any two arms —
of one ranking or of two — are compared *paired*, seed by seed, and the standard error of a difference is that of the per-seed
differences. Two questions are answered per ranking: how much accuracy its best removal buys over
the full source, and how far removing its top-k falls below removing random k classes (how well it
separates helpful classes from the rest); and between rankings, the paired difference of their
bottom-k arms.

"Its best removal" is the one its sweep chose on the selection seeds and then confirmed (or not) on
fresh seeds (``analysis.recommendation``): the largest gain in the table is biased upwards by being
the largest, so it is never reported as what a removal buys. Across rankings the best is chosen the
same way — by the selection-seed gain of each ranking's candidate, never by the confirmed gains —
and its confirmation is the verdict.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..study.atomic import atomic_write_text
from .context import StudyContext
from .counterfactual import SWEEP_DIR
from .recommendation import Recommendation, confirmation_text, read_recommendation, selection_text

REMOVED_FILE = "removed.json"
COMPARISON_FILE = "rankings_compared.csv"


@dataclass(frozen=True)
class PairedDifference:
    mean: float
    stderr: float
    n: int

    @property
    def beyond_2se(self) -> bool:
        return abs(self.mean) > 2 * self.stderr

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray) -> "PairedDifference":
        d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
        se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else float("nan")
        return cls(float(d.mean()), se, int(d.size))


@dataclass(frozen=True)
class RankingSweep:
    """One ranking's arms on a study: per-seed accuracy on the scoring half by (selection, k)."""

    label: str
    """'own' for the study's own ranking, else the ``from-…`` folder name."""
    ranking_from: str
    num_models: int
    estimator: str
    kind: str
    seeds: tuple[int, ...]
    accuracy: dict[tuple[str, int], np.ndarray]
    recommendation: Recommendation | None = None
    """The sweep's candidate and its confirmation (None: a sweep written before confirmations)."""

    @property
    def full(self) -> np.ndarray:
        return self.accuracy[("full", 0)]

    def ks(self, selection: str) -> list[int]:
        return sorted(k for s, k in self.accuracy if s == selection)

    def versus_full(self, selection: str, k: int) -> PairedDifference:
        return PairedDifference.of(self.accuracy[(selection, k)], self.full)

    def top_below_random(self, k: int) -> PairedDifference:
        """Accuracy of removing k random classes minus removing the top k (positive: the ranking
        found classes that help more than average)."""
        return PairedDifference.of(self.accuracy[("random", k)], self.accuracy[("top", k)])

    def best_removal(self) -> Recommendation | None:
        """The removal this ranking's sweep chose on the selection seeds, with its gain confirmed
        (or not) on fresh seeds; None for a sweep written before confirmations. The arm with the
        largest table gain is not it: that gain is the maximum of many noisy ones."""
        return self.recommendation


def _read_sweep(folder: Path, label: str) -> RankingSweep:
    data = json.loads((folder / REMOVED_FILE).read_text())
    arms = data["arms"]
    if any("accuracy_per_seed" not in arm for arm in arms):
        raise InputError(
            f"{folder / REMOVED_FILE} has no per-seed accuracies (written by an older version): run the same "
            "`transfer-influence counterfactual` command again (it retrains nothing) to rewrite it"
        )
    ranking = data["ranking"]
    return RankingSweep(
        label=label,
        ranking_from=str(ranking["from"]),
        num_models=int(ranking["models"]),
        estimator=str(ranking["estimator"]),
        kind=str(ranking["output_kind"]),
        seeds=tuple(int(s) for s in data["seeds"]),
        accuracy={(a["selection"], int(a["k"])): np.asarray(a["accuracy_per_seed"], dtype=np.float64) for a in arms},
        recommendation=read_recommendation(folder),
    )


def read_ranking_sweeps(context: StudyContext) -> list[RankingSweep]:
    """Every counterfactual sweep of the context's study on its target: its own ranking first, then
    the others by name. Sweeps retrained with other seeds than the first are refused (they could not
    be paired)."""
    return sweeps_in(context.folder(SWEEP_DIR), context.path)


def sweeps_in(sweep_dir: Path, study: Path) -> list[RankingSweep]:
    """The sweeps written in one target's counterfactual folder ``sweep_dir`` of ``study``: its own
    ranking's first, then each ``from-*`` ranking's by name; seeds must agree across them."""
    folders = [(sweep_dir, "own")] if (sweep_dir / REMOVED_FILE).is_file() else []
    folders += [(f, f.name) for f in sorted(sweep_dir.glob("from-*")) if (f / REMOVED_FILE).is_file()]
    if not folders:
        raise InputError(
            f"{study} has no counterfactual sweep: run `transfer-influence counterfactual {study}` "
            "(and with --ranking-from OTHER_STUDY for another ranking) first"
        )
    sweeps = [_read_sweep(folder, label) for folder, label in folders]
    first = sweeps[0]
    for sweep in sweeps[1:]:
        if sweep.seeds != first.seeds:
            raise InputError(
                f"the {sweep.label} sweep used other seeds ({len(sweep.seeds)}) than the {first.label} sweep "
                f"({len(first.seeds)}); run both with the same --repeats so that their arms are paired"
            )
    return sweeps


def best_across(sweeps: list[RankingSweep]) -> tuple[RankingSweep, Recommendation] | None:
    """The ranking whose candidate gained most on the selection seeds, with that candidate's
    confirmation (None: no ranking has a candidate). Choosing by the confirmed gains instead would
    bring the winner's curse back among the rankings."""
    scored: list[tuple[RankingSweep, Recommendation]] = [
        (s, s.recommendation) for s in sweeps if s.recommendation is not None and s.recommendation.candidate is not None
    ]
    return max(scored, key=lambda item: item[1].selection_gain, default=None)


def unconfirmed_sweeps(sweeps: list[RankingSweep]) -> list[str]:
    """Labels of the sweeps written before confirmations (no ``recommendation.json``)."""
    return [s.label for s in sweeps if s.recommendation is None]


def bottom_k_between(a: RankingSweep, b: RankingSweep, k: int) -> PairedDifference:
    """Accuracy after removing ``a``'s bottom k minus after removing ``b``'s, seed by seed."""
    return PairedDifference.of(a.accuracy[("bottom", k)], b.accuracy[("bottom", k)])


COMPARISON_COLUMNS = (
    "ranking", "ranking_from", "models", "estimator", "kind", "selection", "k",
    "diff_vs_full", "diff_vs_full_se", "random_minus_top", "random_minus_top_se",
    "bottom_minus_first_ranking_bottom", "bottom_minus_first_ranking_bottom_se",
)
CONFIRMATION_COLUMNS = (
    "chosen", "confirmed_gain", "confirmed_gain_se", "confirmed_ci95_low", "confirmed_ci95_high",
    "confirmed_p_one_sided", "confirmed",
)
"""``chosen``: whether this arm is the ranking's candidate (chosen on the selection seeds); the
``confirmed_*`` fields, on that row only, are its gain on the fresh confirmation seeds."""


def _confirmation_fields(sweep: RankingSweep, selection: str, k: int) -> dict[str, object]:
    rec = sweep.recommendation
    empty = {key: "" for key in CONFIRMATION_COLUMNS}
    if rec is None or rec.selection != selection or rec.k != k or rec.confirmation is None:
        return {**empty, "chosen": "" if rec is None else False}
    c = rec.confirmation
    return {
        "chosen": True, "confirmed_gain": c.mean, "confirmed_gain_se": c.stderr, "confirmed_ci95_low": c.low,
        "confirmed_ci95_high": c.high, "confirmed_p_one_sided": c.p_value, "confirmed": c.confirmed,
    }


def comparison_rows(sweeps: list[RankingSweep]) -> list[dict[str, object]]:
    """One row per (ranking, arm other than full and random): its paired gain over the full source,
    for top arms how far below random they fall, and for bottom arms the paired difference from
    the first ranking's bottom arm with the same k."""
    first = sweeps[0]
    rows: list[dict[str, object]] = []
    for sweep in sweeps:
        for selection, k in sorted(sweep.accuracy, key=lambda sk: (sk[0] != "bottom", sk[0], sk[1])):
            if selection in ("full", "random"):
                continue
            gain = sweep.versus_full(selection, k)
            row: dict[str, object] = {
                "ranking": sweep.label, "ranking_from": sweep.ranking_from, "models": sweep.num_models,
                "estimator": sweep.estimator, "kind": sweep.kind, "selection": selection, "k": k,
                "diff_vs_full": gain.mean, "diff_vs_full_se": gain.stderr,
                "random_minus_top": "", "random_minus_top_se": "",
                "bottom_minus_first_ranking_bottom": "", "bottom_minus_first_ranking_bottom_se": "",
                **_confirmation_fields(sweep, selection, k),
            }
            if selection == "top" and ("random", k) in sweep.accuracy:
                sep = sweep.top_below_random(k)
                row["random_minus_top"], row["random_minus_top_se"] = sep.mean, sep.stderr
            if selection == "bottom" and sweep is not first and ("bottom", k) in first.accuracy:
                between = bottom_k_between(sweep, first, k)
                row["bottom_minus_first_ranking_bottom"] = between.mean
                row["bottom_minus_first_ranking_bottom_se"] = between.stderr
            rows.append(row)
    return rows


def write_comparison(context: StudyContext, rows: list[dict[str, object]]) -> Path:
    """``rankings_compared.csv`` in the context's counterfactual folder (``STUDY/counterfactual/``, an
    extra target's ``target-<name>/`` inside it): the rows of ``comparison_rows``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COMPARISON_COLUMNS + CONFIRMATION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = context.folder(SWEEP_DIR) / COMPARISON_FILE
    atomic_write_text(path, buffer.getvalue())
    return path


def best_removal_lines(sweeps: list[RankingSweep]) -> list[str]:
    """What ``compare-rankings`` prints about acting on the rankings: each ranking's candidate and its
    confirmed gain as an interval, then the best across rankings (chosen by selection-seed gain)."""
    lines = []
    for sweep in sweeps:
        rec = sweep.best_removal()
        if rec is None:
            lines.append(f"{sweep.label}: no confirmation recorded (written by an older version): run its "
                         "`transfer-influence counterfactual` command again")
        else:
            lines.append(f"{sweep.label}: {selection_text(rec)}; "
                         + (confirmation_text(rec) if rec.candidate is not None else "nothing to confirm"))
    best = best_across(sweeps)
    if best is None:
        lines.append("best removal across rankings: none gained on the selection seeds; keep the full source")
    else:
        sweep, rec = best
        verdict = f"recommended: the full source minus {sweep.label}'s {rec.candidate}" if rec.confirmed else (
            "not confirmed: keep the full source")
        lines.append(f"best removal across rankings (chosen by selection-seed gain, not by confirmed gain): {sweep.label}'s "
                     f"{rec.candidate}, confirmed gain {confirmation_text(rec)}; {verdict}")
    missing = unconfirmed_sweeps(sweeps)
    if missing:
        lines.append(f"(rankings without a confirmation, left out of the choice: {', '.join(missing)})")
    return lines
