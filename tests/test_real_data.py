"""The demo's real data (glyphs from every font, Fashion-MNIST, MNIST): a short run by default, the
full-size check under `-m slow`."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfer_influence.analysis.lookalikes import lookalike_check
from transfer_influence.analysis.rankings import per_target_class_influence
from transfer_influence.study.config import load_config, packaged_config
from transfer_influence.study.results import open_study
from transfer_influence.pipeline.run import run_study

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not FASHION.is_dir(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
)


@needs_fashion
def test_demo_data_short_run_pretraining_beats_random_init(tmp_path: Path) -> None:
    config = load_config(packaged_config("demo")).with_overrides(
        num_models=2,
        **{"design.kind": "complement", "design.alpha": 0.5, "baselines.repeats": 1, "execution.executor": "serial"},
    )
    report = run_study(config, tmp_path / "study", progress=False)
    results = open_study(tmp_path / "study")
    assert len(results.class_names) == 72 and "Trouser" in results.class_names and "Q" in results.class_names
    assert results.outputs("p_true").shape == (2, 2000)
    assert report.store.metadata["data"]["source_train_examples"] == 72 * 130
    all_source = results.baselines["all_source"][0]
    random_init = results.baselines["random_init"][0]
    assert all_source > random_init + 0.05, (all_source, random_init)


@pytest.mark.slow
@needs_fashion
def test_demo_rankings_find_lookalike_glyphs(tmp_path: Path) -> None:
    config = load_config(packaged_config("demo")).with_overrides(num_models=200)
    run_study(config, tmp_path / "study", progress=False)
    results = open_study(tmp_path / "study")
    check = lookalike_check(per_target_class_influence(results), top_k=3)
    assert check is not None and check.num_hits >= 5, check.hits
    assert results.baselines["all_source"].mean() > results.baselines["random_init"].mean() + 0.1
