"""Source architectures: the MLP beside the small CNN, and results keys that only see used settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from transfer_influence import open_study
from transfer_influence.errors import InputError
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import load_config, packaged_config, parse_config
from transfer_influence.train.models import MLP, SmallCNN, build_model

from .conftest import tiny_config_dict

CPU = {"device": "cpu", "bf16_autocast": False}
DEMO_KEY_BEFORE_HIDDEN_DIM = "cbd726c55a53ee6e"
"""The packaged demo's results key as recorded in study.json by studies made before ``model.hidden_dim``
existed: a new setting must not turn every existing study foreign."""


@pytest.mark.parametrize("arch, cls", [("small_cnn", SmallCNN), ("mlp", MLP)])
def test_each_architecture_embeds_and_classifies(arch: str, cls: type) -> None:
    model = build_model(arch, num_classes=5, in_channels=1, image_size=28, channels=(4, 4, 4), feature_dim=12, hidden_dim=20)
    assert isinstance(model, cls)
    x = torch.zeros(3, 1, 28, 28)
    model.eval()
    assert model.embed(x).shape == (3, 12)
    assert model(x).shape == (3, 5)


def test_unknown_architecture_is_refused_with_the_choices() -> None:
    with pytest.raises(InputError, match="'small_cnn', 'mlp'"):
        build_model("resnet7", 5, 1, 28, (4, 4, 4), 12)


def test_results_key_of_existing_studies_is_unchanged() -> None:
    assert load_config(packaged_config("demo")).results_key(CPU) == DEMO_KEY_BEFORE_HIDDEN_DIM


def test_results_key_sees_only_the_settings_the_architecture_uses() -> None:
    def key(**overrides: object) -> str:
        return parse_config(tiny_config_dict(**overrides)).results_key(CPU)

    cnn = key()
    assert key(**{"model.hidden_dim": 99}) == cnn
    assert key(**{"model.channels": [8, 8, 4]}) != cnn
    mlp = key(**{"model.arch": "mlp"})
    assert mlp != cnn
    assert key(**{"model.arch": "mlp", "model.channels": [8, 8, 4]}) == mlp
    assert key(**{"model.arch": "mlp", "model.hidden_dim": 99}) != mlp


def test_tiny_study_with_an_mlp_source(tmp_path: Path) -> None:
    config = parse_config(tiny_config_dict(**{"model.arch": "mlp", "model.hidden_dim": 32, "num_models": 4}))
    run_study(config, tmp_path / "study", progress=False)
    results = open_study(tmp_path / "study")
    assert results.masks.shape == (4, 8)
    p_true = results.outputs("p_true")
    assert np.isfinite(p_true).all() and ((p_true >= 0) & (p_true <= 1)).all()
