"""Shared fixtures: a tiny but real study (rendered glyphs → scikit-learn digits) that runs in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from transfer_influence.study.config import StudyConfig, parse_config

TINY_GLYPHS = ["A", "B", "C", "D", "E", "F", "0", "1"]


def tiny_config_dict(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "tiny",
        "seed": 24,
        "num_models": 8,
        "source": {
            "components": [
                {"dataset": "glyphs", "options": {"classes": TINY_GLYPHS, "images_per_class": 24, "max_fonts": 12}}
            ],
            "holdout_per_class": 4,
        },
        "target": {"dataset": {"dataset": "digits"}, "shots_per_class": 5, "test_size": 150},
        "model": {"channels": [8, 8, 8], "feature_dim": 32},
        "train": {"epochs": 1, "batch_size": 64},
        "baselines": {"repeats": 1},
        "execution": {"executor": "serial"},
    }
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendered glyphs are cached per test session, never in the user's home."""
    cache = tmp_path_factory.getbasetemp() / "glyph-cache"
    monkeypatch.setenv("TRANSFER_INFLUENCE_CACHE", str(cache))


@pytest.fixture
def tiny_config() -> StudyConfig:
    return parse_config(tiny_config_dict())


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path
