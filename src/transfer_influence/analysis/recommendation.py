"""What a counterfactual sweep recommends training on, and why: the arm chosen on the selection
seeds and its gain confirmed (or not) on fresh seeds (the rule: ``evaluate.selection``).

The sweep's arms all share R *selection* seeds; the recommendable arm with the largest mean paired
gain there is the candidate, and that gain is biased upwards by the choice (the largest of many
noisy gains). The candidate and the full source are then retrained on R *confirmation* seeds, a
seed stream of their own, and only a gain that is positive one-sided at 5% on those is recommended;
otherwise the recommendation is the full source, with the candidate's confirmed gain as an interval.
This module holds the result, its one-line header (the first line of ``recommended_source.txt``,
which the report reads) and ``recommendation.json``; it reads no study and trains nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..evaluate.selection import CONFIRM_LEVEL, INTERVAL_LEVEL, Confirmation, confirm_gain, confirm_gain_over_seeds_and_images

RECOMMENDATION_FILE = "recommendation.json"


@dataclass(frozen=True)
class Recommendation:
    """The candidate removal (None: no recommendable arm gained on the selection seeds) and, when
    there is one, its confirmation on fresh seeds."""

    candidate: str | None
    """``selection-k`` of the chosen arm, e.g. ``bottom-20``; None when nothing was worth confirming."""
    selection: str | None
    k: int
    removed: tuple[int, ...]
    selection_gain: float
    """Mean paired gain of the candidate (or, with no candidate, of the best arm) on the selection
    seeds: the maximum over ``arms_compared`` arms, so biased upwards."""
    selection_se: float
    selection_seeds: int
    arms_compared: int
    best_arm: str | None
    """The arm with the largest selection-seed gain, positive or not (None: no recommendable arm)."""
    confirmation_seeds: tuple[int, ...] = ()
    confirmation_full: tuple[float, ...] = ()
    """Scoring-half accuracy of the full source on each confirmation seed."""
    confirmation_arm: tuple[float, ...] = ()
    """Scoring-half accuracy of the candidate on each confirmation seed."""
    confirmation: Confirmation | None = None

    @property
    def confirmed(self) -> bool:
        return self.confirmation is not None and self.confirmation.confirmed


def confirmed_recommendation(
    chosen: str, selection: str, k: int, removed: tuple[int, ...], selection_differences: np.ndarray,
    arms_compared: int, seeds: Sequence[int], full: np.ndarray, arm: np.ndarray,
    per_image: np.ndarray | None = None,
) -> Recommendation:
    """The candidate's recommendation from its selection-seed differences and the per-seed accuracies
    of it and the full source on the confirmation seeds. ``per_image`` (seeds × confirmation
    images, arm minus full): the test then counts the images' sampling as well as the seeds'
    (``confirm_gain_over_seeds_and_images``); without it, the seeds' alone."""
    d = np.asarray(selection_differences, dtype=np.float64)
    gain = np.asarray(arm, dtype=np.float64) - np.asarray(full, dtype=np.float64)
    return Recommendation(
        candidate=chosen, selection=selection, k=k, removed=tuple(removed),
        selection_gain=float(d.mean()), selection_se=float(d.std(ddof=1) / np.sqrt(d.size)),
        selection_seeds=int(d.size), arms_compared=arms_compared, best_arm=chosen,
        confirmation_seeds=tuple(int(s) for s in seeds),
        confirmation_full=tuple(float(v) for v in full), confirmation_arm=tuple(float(v) for v in arm),
        confirmation=confirm_gain(gain) if per_image is None else confirm_gain_over_seeds_and_images(per_image),
    )


def unconfirmable(best: str | None, differences: np.ndarray | None, arms_compared: int, seeds: int) -> Recommendation:
    """No recommendable arm's selection-seed gain is positive: the full source, nothing retrained.
    ``best``/``differences``: the arm with the largest (non-positive) gain, when there is an arm."""
    if differences is None:
        mean = se = float("nan")
    else:
        d = np.asarray(differences, dtype=np.float64)
        mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))
    return Recommendation(None, None, 0, (), mean, se, seeds, arms_compared, best)


def _points(value: float) -> str:
    return f"{100 * value:+.2f}"


def confirmation_text(rec: Recommendation) -> str:
    """The confirmed gain as an interval, e.g. ``+0.40 ± 0.50 points on 10 fresh seeds, 95% CI
    [-0.73, +1.53], one-sided p = 0.22, 95% lower bound -0.52 (t(9) at 5%): not confirmed``. The
    lower bound is the test's own (above zero exactly when confirmed): with p between 0.025 and
    0.05 the two-sided interval still reaches zero while the one-sided test confirms."""
    c = rec.confirmation
    if c is None:
        return "not confirmed: no removal gained on the selection seeds, so none was retrained on fresh seeds"
    verdict = "confirmed" if c.confirmed else "not confirmed"
    return (
        f"{_points(c.mean)} ± {100 * c.stderr:.2f} points on {c.n} fresh seeds and the confirmation images, {INTERVAL_LEVEL:.0%} CI "
        f"[{_points(c.low)}, {_points(c.high)}], one-sided p = {c.p_value:.2g}, {1 - c.level:.0%} lower bound "
        f"{_points(c.lower_bound)} (t({c.dof:.3g}) at {c.level:.0%}): {verdict}"
    )


def selection_text(rec: Recommendation) -> str:
    """The choice and its (biased) selection-seed gain."""
    if rec.best_arm is None:
        return "no removal arm to choose from"
    what = "chosen" if rec.candidate is not None else "best"
    return (
        f"{what}: {rec.best_arm}, {_points(rec.selection_gain)} ± {100 * rec.selection_se:.2f} points on the "
        f"{rec.selection_seeds} selection seeds and the choice images (the largest of {rec.arms_compared} arms' gains, biased upwards)"
    )


def header_line(rec: Recommendation) -> str:
    """First line of ``recommended_source.txt``: one ``# …`` line saying what is recommended, with
    the confirmed gain and its interval (never the selection-seed maximum alone)."""
    if rec.confirmed:
        head = f"# full source minus {rec.candidate} (confirmed)"
    elif rec.candidate is not None:
        head = f"# full source: the chosen removal {rec.candidate} was not confirmed"
    else:
        head = "# full source: no removal gained on the selection seeds, nothing to confirm"
    return f"{head}: {confirmation_text(rec) if rec.confirmation else selection_text(rec)}"


def recommendation_dict(rec: Recommendation, unit_names: Sequence[str]) -> dict[str, object]:
    """The structured record written as ``recommendation.json`` (gains in accuracy, not points)."""
    c = rec.confirmation
    confirmation: dict[str, object] | None = None
    if c is not None:
        confirmation = {
            "seeds": list(rec.confirmation_seeds), "full_accuracy_per_seed": list(rec.confirmation_full),
            "arm_accuracy_per_seed": list(rec.confirmation_arm), "gain": c.mean, "se": c.stderr, "n": c.n,
            "dof": c.dof, "p_one_sided": c.p_value, "level": c.level, "ci_level": INTERVAL_LEVEL,
            "ci": [c.low, c.high], "lower_bound": c.lower_bound,
        }
    return {
        "rule": (
            f"choose the recommendable arm with the largest mean paired gain on the selection seeds, scored on the choice "
            f"half of the scoring images; retrain it and the full source on as many fresh seeds, scored on the other "
            f"half (the confirmation images); recommend it only if that paired gain is positive one-sided "
            f"at {CONFIRM_LEVEL:g} (t with R-1 degrees of freedom)"
        ),
        "recommended": rec.candidate if rec.confirmed else "full",
        "confirmed": rec.confirmed,
        "chosen": None if rec.candidate is None else {
            "arm": rec.candidate, "selection": rec.selection, "k": rec.k, "removed": [unit_names[u] for u in rec.removed],
        },
        "best_arm": rec.best_arm,
        "arms_compared": rec.arms_compared,
        "selection_seeds": {
            "n": rec.selection_seeds, "gain": _finite_or_none(rec.selection_gain), "se": _finite_or_none(rec.selection_se),
        },
        "confirmation": confirmation,
        "units": "accuracy on the scoring half (a fraction; x100 for points)",
    }


def _finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None


def recommendation_json(rec: Recommendation, unit_names: Sequence[str]) -> str:
    return json.dumps(recommendation_dict(rec, unit_names), indent=2)


def read_recommendation(folder: Path) -> Recommendation | None:
    """The recommendation a sweep wrote in ``folder`` (None: a sweep written before there was one);
    the removed set is not read back (``removed.json`` holds the names)."""
    path = Path(folder) / RECOMMENDATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        chosen, picked, sel = data["chosen"], data["confirmation"], data["selection_seeds"]
        confirmation = None if picked is None else Confirmation(
            float(picked["gain"]), float(picked["se"]), int(picked["n"]), float(picked["dof"]), float(picked["p_one_sided"]),
            float(picked["ci"][0]), float(picked["ci"][1]), float(picked["lower_bound"]), float(picked["level"]),
            bool(data["confirmed"]),
        )
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise InputError(
            f"{path} is not a recommendation this version wrote ({error}): run the same `transfer-influence "
            "counterfactual` command again (stored retrains are reused) to rewrite it"
        ) from None
    return Recommendation(
        candidate=None if chosen is None else str(chosen["arm"]),
        selection=None if chosen is None else str(chosen["selection"]),
        k=0 if chosen is None else int(chosen["k"]),
        removed=(),
        selection_gain=float("nan") if sel["gain"] is None else float(sel["gain"]),
        selection_se=float("nan") if sel["se"] is None else float(sel["se"]),
        selection_seeds=int(sel["n"]), arms_compared=int(data["arms_compared"]), best_arm=data["best_arm"],
        confirmation_seeds=tuple(int(s) for s in (picked or {}).get("seeds", [])),
        confirmation_full=tuple(float(v) for v in (picked or {}).get("full_accuracy_per_seed", [])),
        confirmation_arm=tuple(float(v) for v in (picked or {}).get("arm_accuracy_per_seed", [])),
        confirmation=confirmation,
    )


def recommendation_lines(rec: Recommendation | None) -> list[str]:
    """What ``counterfactual`` prints: the choice on the selection seeds, its confirmed gain on fresh
    seeds as an interval, and what to train on."""
    if rec is None:
        return ["recommendation: none (the candidate has not been confirmed)"]
    lines = [selection_text(rec)]
    if rec.candidate is not None:
        lines.append(f"confirmation ({rec.candidate} and the full source retrained on fresh seeds, scored on images the "
                     f"choice did not see): {confirmation_text(rec)}")
    lines.append("recommended: " + (f"the full source minus {rec.candidate}" if rec.confirmed else "the full source"))
    return lines
