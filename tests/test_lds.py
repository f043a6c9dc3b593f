"""The linear datamodeling score against simulated truth, and on a tiny real study.

For a linear datamodel y = mask·β + ε (Gaussian-like scores, noise sd σ), the predicted and measured
outputs of held-out models are bivariate normal with correlation ρ = sd(mask·β)/sd(y), so the
Spearman correlation, hence the LDS with the true β, is (6/π)·arcsin(ρ/2): the theoretical value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transfer_influence.analysis.lds import study_lds
from transfer_influence.errors import InputError
from transfer_influence.evaluate.lds import fit_and_score, linear_datamodeling_score, lds_split
from transfer_influence.evaluate.reliability import held_out_spearman
from transfer_influence.evaluate.simulate import SimulatorSpec, StudySimulator
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.design import iid_mask, partition_mask
from transfer_influence.study.results import open_study

from .conftest import tiny_config_dict

K, N = 40, 12


def _linear(m: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    beta = np.random.default_rng(0).normal(0, 0.05, size=(K, N))
    masks = rng.random((m, K)) < 0.5
    return masks, masks @ beta + rng.normal(0, noise, size=(m, N)), beta


def test_lds_of_the_true_datamodel_matches_its_theoretical_value() -> None:
    masks, y, beta = _linear(20_000, 0.15, seed=1)
    rho = np.sqrt((0.25 * (beta**2).sum(axis=0)) / (0.25 * (beta**2).sum(axis=0) + 0.15**2))
    expected = float(np.mean(6 / np.pi * np.arcsin(rho / 2)))
    assert linear_datamodeling_score(masks, y, beta).mean == pytest.approx(expected, abs=0.01)


def test_lds_is_near_one_for_a_linear_datamodel_with_little_noise() -> None:
    """Regression recovers a noiseless linear datamodel; the difference of means keeps the other
    classes' effects in its error (each class is compared over random companions), so less."""
    masks, y, _ = _linear(400, 0.001, seed=2)
    ridge, lasso, dim = (fit_and_score(masks, y, e).mean for e in ("ridge", "lasso", "dim"))
    assert ridge > 0.99 and lasso > 0.97
    assert 0.85 < dim < ridge - 0.02


def test_lds_grows_with_the_number_of_training_models() -> None:
    """The simulator's study (noise calibrated on a real one): fitted on more models, the datamodel
    predicts held-out models better, towards the true datamodel's LDS."""
    sim = StudySimulator(SimulatorSpec(num_classes=20, examples_per_class=10, seed=4))
    scores = []
    for m in (80, 320, 1280):
        masks = np.array([iid_mask(5, i, 20, 0.5) for i in range(m)])
        scores.append(fit_and_score(masks, sim.outputs(masks, 6), "ridge").mean)
    assert scores[0] + 0.03 < scores[1] < scores[2] - 0.01, scores
    masks = np.array([iid_mask(7, i, 20, 0.5) for i in range(1280)])
    truth = sim.true_influence(size=10, estimator="ridge", level="example")
    ceiling = linear_datamodeling_score(masks, sim.outputs(masks, 8), truth).mean
    assert scores[2] < ceiling + 0.02


def test_jackknife_error_matches_the_spread_over_held_out_draws() -> None:
    """Influences fixed; the LDS's sd over many independent held-out sets is the ground truth."""
    _, _, beta = _linear(10, 0.15, seed=0)
    draws, errors = [], []
    for seed in range(200):
        masks, y, _ = _linear(60, 0.3, seed=100 + seed)
        found = linear_datamodeling_score(masks, y, beta)
        draws.append(found.mean)
        errors.append(found.stderr)
    ratio = float(np.mean(errors) / np.std(draws, ddof=1))
    assert 0.8 <= ratio <= 1.25, ratio


def test_constant_outputs_are_left_out_and_flat_predictions_score_zero() -> None:
    masks, y, beta = _linear(50, 0.1, seed=3)
    y[:, 0] = 0.5  # an output that never changes: nothing to rank, left out
    beta = beta.copy()
    beta[:, 1] = 0.0  # a prediction that never changes: it ranks nothing, so it scores 0
    found = linear_datamodeling_score(masks, y, beta)
    assert np.isnan(found.per_target[0]) and found.num_constant == 1
    assert found.per_target[1] == 0.0 and found.num_flat_predictions == 1
    assert found.mean == pytest.approx(float(np.mean(found.per_target[1:])))
    low, high = found.interval()
    assert low < found.mean < high and found.num_models == 50 and found.num_targets == N


def test_bad_input_is_one_clear_error() -> None:
    masks, y, beta = _linear(50, 0.1, seed=3)
    with pytest.raises(InputError, match="units × targets"):
        linear_datamodeling_score(masks, y, beta[:, :3])
    with pytest.raises(InputError, match="one of each per model"):
        linear_datamodeling_score(masks[:10], y, beta)
    with pytest.raises(InputError, match="unknown estimator"):
        fit_and_score(masks, y, "knn")
    with pytest.raises(InputError, match="train more models"):
        fit_and_score(masks[:10], y[:10], "ridge", blocks=np.arange(10) // 5)


def test_blocks_are_scored_whole() -> None:
    masks = np.array([partition_mask(0, i, 20, 0.2) for i in range(100)])
    blocks = np.arange(100) // 5
    train, test = lds_split(100, blocks)
    assert not set(blocks[train]) & set(blocks[test]) and test.size % 5 == 0
    y = StudySimulator(SimulatorSpec(num_classes=20, examples_per_class=3, block_noise=0.05)).outputs(masks, 0, blocks)
    assert fit_and_score(masks, y, "ridge", blocks=blocks).num_models == test.size


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lds") / "study"
    run_study(parse_config(tiny_config_dict(num_models=16)), path, progress=False)
    return path


def test_study_lds_scores_the_diagnostics_held_out_models(study: Path) -> None:
    results = open_study(study)
    outputs = np.asarray(results.outputs("p_true"))
    found = study_lds(results, "p_true", "dim", "example")
    held = held_out_spearman(results.masks, outputs, results.target_labels, len(results.target_class_names), "dim",
                             blocks=results.blocks)
    assert found.num_constant == 0  # so the two scores count the same columns
    assert found.mean == pytest.approx(held["example"], abs=1e-6)  # the same models, the same prediction
    assert found.num_models + found.num_train_models == results.num_models
    overall = study_lds(results, "p_true", "ridge", "overall")
    assert overall.num_targets == 1 and -1 <= overall.mean <= 1
    with pytest.raises(InputError, match="unknown level"):
        study_lds(results, "p_true", "ridge", "pixel")
