"""The recommendation rule against simulated sweeps with known truth: choosing the best of many arms
on the selection seeds and confirming it on fresh seeds recommends a useless removal at most 5% of
the time (the old best-of-arms 2-SE rule: 20–57%), still finds a real gain, and its confirmation
statistics (p-value, interval, bound) hold their stated levels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from transfer_influence.analysis.recommendation import (
    confirmed_recommendation, header_line, read_recommendation, recommendation_json, unconfirmable,
)
from transfer_influence.evaluate.selection import MIN_SEEDS, choose_arm, confirm_gain, confirmed

NULL_ARMS = 9
TRIALS = 2_000
SEED_LUCK = 1.0
"""Sd of a seed's own luck, shared by every arm trained with that seed (it cancels when paired)."""
ARM_NOISE = 0.5
"""Sd of each retrain's own noise around its seed's luck."""


def simulate_sweeps(rng: np.random.Generator, trials: int, repeats: int, effects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed paired differences arm − full source, (trials, arms, repeats), for a sweep's seeds
    and for as many fresh seeds: each seed's luck is shared by the full source and every arm (so
    the arms' differences are correlated through the full source's runs, as in a real sweep)."""

    def one_stream() -> np.ndarray:
        luck = rng.normal(0, SEED_LUCK, (trials, 1, repeats))
        full = luck + rng.normal(0, ARM_NOISE, (trials, 1, repeats))
        arms = luck + rng.normal(0, ARM_NOISE, (trials, effects.size, repeats)) + effects[None, :, None]
        return arms - full

    return one_stream(), one_stream()


def new_rule(selection: np.ndarray, fresh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recommends a removal, the chosen arm) per trial under the confirmation rule."""
    chosen = choose_arm(selection)
    picked = np.take_along_axis(fresh, np.maximum(chosen, 0)[:, None, None], axis=1)[:, 0]
    return (chosen >= 0) & confirmed(picked), chosen


def old_rule(selection: np.ndarray) -> np.ndarray:
    """The rule this replaces: recommend the arm with the largest gain among those whose gain on
    the same seeds exceeds 2 of its standard errors (any such arm means a removal is recommended)."""
    mean = selection.mean(axis=-1)
    se = selection.std(axis=-1, ddof=1) / np.sqrt(selection.shape[-1])
    return (mean > 2 * se).any(axis=-1)


@pytest.mark.parametrize("repeats", [10, MIN_SEEDS])
def test_null_arms_are_recommended_at_most_five_percent_of_the_time(repeats: int) -> None:
    """Nine removals that change nothing. On this simulation at 100,000 trials the old rule
    recommends one in 20.1% of sweeps at R = 10, 41.4% at R = 3 and 56.8% at R = 2 (which it
    allowed); the new rule in 4.5% and 4.6% (4.4% at R = 2). Here, at 2,000 trials: old 17.8% and
    38.4%, new 3.8% and 4.6%. The fresh seeds are independent of the choice, so the one-sided 5%
    test keeps its level whichever arm was chosen (below 5% by the sweeps where no gain is positive)."""
    rng = np.random.default_rng([14, repeats])
    selection, fresh = simulate_sweeps(rng, TRIALS, repeats, np.zeros(NULL_ARMS))
    recommended, _ = new_rule(selection, fresh)
    assert recommended.mean() <= 0.065  # 5% plus 3 binomial SEs at 2,000 trials
    assert old_rule(selection).mean() > 0.15


def test_a_real_gain_of_five_standard_errors_is_recommended() -> None:
    """One arm gains 5 paired SEs among nine null arms: chosen and confirmed in ≥ 95% of sweeps at
    R = 10 (the t(9) test's power at 5 SE is 99.8%), in ≥ 80% at R = 3 (t(2): 92%)."""
    for repeats, power in ((10, 0.95), (MIN_SEEDS, 0.80)):
        se = np.sqrt(2) * ARM_NOISE / np.sqrt(repeats)
        effects = np.zeros(NULL_ARMS + 1)
        effects[4] = 5 * se
        selection, fresh = simulate_sweeps(np.random.default_rng([15, repeats]), 1_000, repeats, effects)
        recommended, chosen = new_rule(selection, fresh)
        assert (recommended & (chosen == 4)).mean() >= power
        assert (recommended & (chosen != 4)).mean() <= 0.01


def test_no_positive_gain_is_no_candidate() -> None:
    gains = np.array([[[-0.1, -0.2, 0.0], [-0.3, 0.1, -0.1]], [[0.1, 0.2, 0.0], [-0.3, 0.1, -0.1]]])
    assert choose_arm(gains).tolist() == [-1, 0]
    assert choose_arm(np.zeros((0, 3))).tolist() == -1


def test_confirmation_statistics_hold_their_levels() -> None:
    """Against simulated gains with known mean: the one-sided p-value matches scipy's paired t test
    and is uniform under no gain, the 95% interval covers the true gain 95% of the time and the
    one-sided bound lies below it 95% of the time."""
    rng = np.random.default_rng(16)
    truth, repeats = 0.3, 5
    draws = rng.normal(truth, 1.0, (4_000, repeats))
    results = [confirm_gain(d) for d in draws]
    covered = np.mean([c.low <= truth <= c.high for c in results])
    below = np.mean([c.lower_bound < truth for c in results])
    assert abs(covered - 0.95) < 0.012 and abs(below - 0.95) < 0.012
    null = [confirm_gain(d - truth) for d in draws]
    p = np.array([c.p_value for c in null])
    assert abs((p < 0.05).mean() - 0.05) < 0.012 and abs((p < 0.5).mean() - 0.5) < 0.03
    for d, c in zip(draws[:20], results):
        assert c.p_value == pytest.approx(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)
        assert c.confirmed == (c.p_value < 0.05) == (c.lower_bound > 0)
    assert confirm_gain(np.full(3, 0.01)).confirmed and not confirm_gain(np.zeros(3)).confirmed


def test_the_record_round_trips_and_its_header_states_the_interval(tmp_path: Path) -> None:
    full = np.array([0.90, 0.91, 0.89, 0.92])
    rec = confirmed_recommendation(
        "bottom-2", "bottom", 2, (0, 3), np.array([0.02, 0.01, 0.03, 0.02]), 6, [11, 12, 13, 14],
        full, full + np.array([0.004, -0.006, 0.012, 0.002]),
    )
    assert not rec.confirmed
    header = header_line(rec)
    c = rec.confirmation
    assert c is not None and "\n" not in header and header.startswith("# full source: the chosen removal bottom-2 was not confirmed")
    assert f"{100 * c.mean:+.2f} ± {100 * c.stderr:.2f} points" in header and f"[{100 * c.low:+.2f}, {100 * c.high:+.2f}]" in header
    (tmp_path / "recommendation.json").write_text(recommendation_json(rec, ("a", "b", "c", "d")))
    data = json.loads((tmp_path / "recommendation.json").read_text())
    assert data["chosen"]["removed"] == ["a", "d"] and data["recommended"] == "full"
    assert data["confirmation"]["dof"] == 3 and data["confirmation"]["seeds"] == [11, 12, 13, 14]
    back = read_recommendation(tmp_path)
    assert back is not None and back.confirmation == c and back.candidate == "bottom-2" and back.selection_gain == rec.selection_gain
    none = unconfirmable("bottom-2", np.array([-0.01, 0.0, -0.02]), 6, 3)
    assert header_line(none).startswith("# full source: no removal gained") and "-1.00 ± 0.58 points" in header_line(none)
    (tmp_path / "recommendation.json").write_text(recommendation_json(none, ("a", "b", "c", "d")))
    assert read_recommendation(tmp_path) == none


IMAGE_EFFECT = 0.6
"""Sd of a null removal's effect on single images (helping some images, hurting others, zero on
average over the target distribution): the mean over n confirmation images keeps a part of sd
IMAGE_EFFECT / √n that no seed changes."""


def test_the_confirmation_counts_the_images_sampling_as_well_as_the_seeds() -> None:
    """A removal with no effect on the target distribution but image-specific effects on the
    confirmation images: the seeds-and-images test recommends it at most ~5% of the time, the
    seeds-only test (fresh seeds on fixed images) far more often — the images' luck looks like a gain
    to it. The choice itself is made on other images (``target_split.split_scoring``), so this luck
    is independent of it."""
    from transfer_influence.evaluate.selection import confirm_gain_over_seeds_and_images

    rng = np.random.default_rng(20261204)
    trials, repeats, images = 1_000, 10, 200
    both = np.empty(trials, dtype=bool)
    seeds_only = np.empty(trials, dtype=bool)
    for t in range(trials):
        image_effect = rng.normal(0, IMAGE_EFFECT, (1, images))
        seed_luck = rng.normal(0, 0.05, (repeats, 1))
        grid = image_effect + seed_luck + rng.normal(0, 0.5, (repeats, images))
        both[t] = confirm_gain_over_seeds_and_images(grid).confirmed
        seeds_only[t] = confirm_gain(grid.mean(axis=1)).confirmed
    assert both.mean() <= 0.075
    assert seeds_only.mean() >= 0.15


def test_the_seeds_and_images_test_still_confirms_a_real_gain() -> None:
    from transfer_influence.evaluate.selection import confirm_gain_over_seeds_and_images

    rng = np.random.default_rng(7)
    hits = [
        confirm_gain_over_seeds_and_images(
            0.15 + rng.normal(0, IMAGE_EFFECT, (1, 500)) + rng.normal(0, 0.05, (10, 1)) + rng.normal(0, 0.5, (10, 500))
        ).confirmed
        for _ in range(300)
    ]
    assert np.mean(hits) >= 0.9
