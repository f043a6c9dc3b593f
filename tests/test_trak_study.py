"""Gradient-based influence (trak) on the tiny study: per-example gradients, the projection, and
``influence --estimator trak`` end to end on CPU."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import tiny_config_dict
from transfer_influence.cli import main
from transfer_influence.errors import ConfigError
from transfer_influence.pipeline.gradients import GradientRequest, check_gradient_config, study_gradients
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.results import open_study
from transfer_influence.train import gradients as grad_module
from transfer_influence.train.gradients import RademacherProjection, _per_example_projected, true_class_margin
from transfer_influence.train.models import build_model

ARGS = ["--estimator", "trak", "--gradient-models", "2", "--gradient-dims", "32"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trak") / "study"
    run_study(parse_config(tiny_config_dict(num_models=10, **{"baselines.repeats": 0})), path, progress=False)
    return path


def test_projection_is_seeded_rademacher_and_the_same_with_or_without_its_cache(monkeypatch) -> None:
    flat = torch.randn(3, 9000)
    kept = RademacherProjection(9000, 16, seed=5, device=torch.device("cpu"))
    block = kept._block(0)
    assert set(torch.unique(block * 4).tolist()) == {-1.0, 1.0}  # ±1/√16
    monkeypatch.setattr(grad_module, "PROJECTION_CACHE_BYTES", 0)
    drawn_each_time = RademacherProjection(9000, 16, seed=5, device=torch.device("cpu"))
    torch.testing.assert_close(kept(flat), drawn_each_time(flat))
    other_seed = RademacherProjection(9000, 16, seed=6, device=torch.device("cpu"))
    assert not torch.allclose(kept(flat), other_seed(flat))


def test_per_example_gradients_equal_autograd_one_example_at_a_time() -> None:
    torch.manual_seed(0)
    model = build_model("small_cnn", 4, 1, 28, (4, 4, 4), 8, 16, "auto").eval()
    images, labels = torch.rand(5, 1, 28, 28), torch.tensor([0, 1, 2, 3, 1])
    size = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("head."))
    projection = RademacherProjection(size, 12, seed=1, device=torch.device("cpu"))
    found = _per_example_projected(model, lambda f, y: true_class_margin(model.head(f), y), images, labels,
                                   projection, batch_size=2)
    for i in range(5):
        model.zero_grad()
        true_class_margin(model(images[i : i + 1])[0], labels[i]).backward()
        flat = torch.cat([p.grad.reshape(-1) for n, p in model.named_parameters() if not n.startswith("head.")])
        np.testing.assert_allclose(found[i], projection(flat[None])[0].numpy(), rtol=1e-4, atol=1e-6)


def test_a_transfer_the_gradients_do_not_describe_is_refused_before_training() -> None:
    config = parse_config(tiny_config_dict(**{"transfer.head": "sgd"}))
    with pytest.raises(ConfigError, match="L-BFGS head"):
        check_gradient_config(config, GradientRequest())


def test_influence_trak_end_to_end_resumable_and_deterministic(study: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    assert main(["influence", str(study), *ARGS]) == 0
    assert "2 gradient models, d = 32" in capsys.readouterr().out
    results = open_study(study)
    values = np.load(study / "influence" / "example_values_margin_trak.npy")
    assert values.shape == (len(results.class_names), results.target_ids.size)
    assert np.isfinite(values).all() and np.abs(values).max() > 0
    overall = (study / "influence" / "overall_margin_trak.csv").read_text()
    assert all(name in overall for name in results.class_names)
    inputs = study_gradients(study, GradientRequest(2, 32))
    assert inputs.target_ids == tuple(results.target_ids) and inputs.class_names == tuple(results.class_names)

    def no_training(*args, **kwargs):
        raise AssertionError("stored gradient models are read, not trained again")

    monkeypatch.setattr(grad_module, "projected_gradients", no_training)
    assert main(["influence", str(study), *ARGS, "--out", str(tmp_path / "again")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "again" / "example_values_margin_trak.npy"), values)
    monkeypatch.undo()

    fresh = tmp_path / "fresh"
    shutil.copytree(study, fresh, ignore=shutil.ignore_patterns("gradients", "influence"))
    assert main(["influence", str(fresh), *ARGS]) == 0  # the same seeds train the same models from scratch
    np.testing.assert_array_equal(np.load(fresh / "influence" / "example_values_margin_trak.npy"), values)


@pytest.mark.parametrize(
    "extra, message",
    [(["--gradient-dims", "16"], "holds gradients for dims"), (["--kind", "p_true"], "leave --kind out")],
)
def test_trak_refuses_mixed_settings_and_a_datamodel_output(study: Path, capsys, extra: list[str], message: str) -> None:
    assert main(["influence", str(study), *ARGS]) == 0
    capsys.readouterr()
    assert main(["influence", str(study), *ARGS, *extra]) == 2
    assert message in capsys.readouterr().err


def test_gradient_flags_without_trak_and_one_model_are_refused(study: Path, capsys) -> None:
    assert main(["influence", str(study), "--gradient-dims", "16"]) == 2
    assert "add --estimator trak" in capsys.readouterr().err
    assert main(["influence", str(study), "--estimator", "trak", "--gradient-models", "1"]) == 2
    assert "--gradient-models must be at least 2" in capsys.readouterr().err
