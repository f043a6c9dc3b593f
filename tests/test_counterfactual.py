"""Counterfactual removal on a tiny study: the files and their rows, paired differences and rankings
against a direct computation from the run files, disjoint selection and scoring halves, resuming,
and bad input refused before any training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.analysis.counterfactual import SWEEP_DIR, run_counterfactual, split_targets
from transfer_influence.cli import EXIT_USAGE, main
from transfer_influence.errors import InputError, StudyMismatchError
from transfer_influence.execute import run_sweep
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.design import RunSpec
from transfer_influence.study.store import StudyStore
from transfer_influence.study.views import build_study_data, save_study_data

from .conftest import TINY_GLYPHS, tiny_config_dict

ARGS = ["--k", "2", "--repeats", "2", "--serial", "--quiet"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny study (8 classes, 8 models) with its counterfactual sweep run by the CLI."""
    path = tmp_path_factory.mktemp("counterfactual") / "study"
    run_study(parse_config(tiny_config_dict(**{"baselines.repeats": 0})), path, progress=False)
    assert main(["counterfactual", str(path), *ARGS]) == 0
    return path


def _empty_study(path: Path, glyphs: list[str]) -> Path:
    """A created study with its data views but no finished run."""
    config = parse_config(tiny_config_dict(**{"source.components": [
        {"dataset": "glyphs", "options": {"classes": glyphs, "images_per_class": 24, "max_fonts": 12}}
    ]}))
    data = build_study_data(config)
    store = StudyStore.create_or_open(
        path, config, config.run_numerics("cpu"), data.fingerprints(), extra={"class_names": list(data.class_names)}
    )
    save_study_data(data, store.data_path)
    return path


def _summary(study: Path) -> list[dict[str, str]]:
    with open(study / SWEEP_DIR / "summary.csv") as handle:
        return list(csv.DictReader(handle))


def _runs(study: Path) -> list[tuple[np.ndarray, int, np.ndarray, int]]:
    """(mask, repeat index, per-example correctness, training seed) of every retrain file, read directly."""
    found = []
    for path in sorted((study / SWEEP_DIR / "runs").glob("*.npz")):
        with np.load(path) as archive:
            record = json.loads(str(archive["record"]))
            found.append((archive["mask"].copy(), record["index"], archive["output__correct"].copy(), record["seed"]))
    return found


def _target_labels(study: Path) -> np.ndarray:
    with np.load(study / "data.npz") as archive:
        return archive["target_test__labels"]


def test_files_hold_one_row_per_arm(study: Path) -> None:
    rows = _summary(study)
    removed = json.loads((study / SWEEP_DIR / "removed.json").read_text())
    significant = next(a for a in removed["arms"] if a["selection"] == "significant")
    assert [(r["selection"], r["k"]) for r in rows] == [
        ("full", "0"), ("top", "2"), ("bottom", "2"), ("random", "2"), ("significant", str(len(significant["removed"])))
    ]
    assert all(r["n"] == "2" for r in rows)
    assert rows[0]["diff_vs_full"] == "" and all(r["beats_full_2se"] in ("True", "False") for r in rows[1:])
    arms = {(a["selection"], a["k"]): a for a in removed["arms"]}
    top, bottom = set(arms[("top", 2)]["removed"]), set(arms[("bottom", 2)]["removed"])
    assert len(top) == len(bottom) == 2 and not top & bottom
    assert all(len(set(r)) == 2 for r in arms[("random", 2)]["removed_per_seed"])
    kept = [line for line in (study / SWEEP_DIR / "recommended_source.txt").read_text().splitlines() if not line.startswith("#")]
    recommended = [r for r in rows[1:] if r["beats_full_2se"] == "True" and r["selection"] != "random"]
    assert len(kept) == len(TINY_GLYPHS) - (int(max(recommended, key=lambda r: float(r["diff_vs_full"]))["k"]) if recommended else 0)
    assert (study / SWEEP_DIR / "counterfactual.png").stat().st_size > 0


def test_paired_differences_and_ranking_match_a_direct_computation(study: Path) -> None:
    names = list(TINY_GLYPHS)
    removed = json.loads((study / SWEEP_DIR / "removed.json").read_text())
    selection = split_targets(_target_labels(study), seed=24)
    runs = _runs(study)

    def accuracy(removed_names: list[str], repeat: int) -> float:
        mask = np.array([n not in removed_names for n in names])
        [correct] = [c for m, r, c, _ in runs if r == repeat and np.array_equal(m, mask)]
        return float(correct[~selection].mean())

    # Paired arms: every retrain of repeat r, whatever it removes, trains with the same seed.
    assert all(len({seed for _, r, _, seed in runs if r == repeat}) == 1 for repeat in range(2))
    rows = {(r["selection"], r["k"]): r for r in _summary(study)}
    full = np.array([accuracy([], r) for r in range(2)])
    assert float(rows[("full", "0")]["mean"]) == pytest.approx(full.mean())
    for arm in removed["arms"][1:]:
        per_seed = arm.get("removed_per_seed") or [arm["removed"]] * 2
        diffs = np.array([accuracy(per_seed[r], r) for r in range(2)]) - full
        row = rows[(arm["selection"], str(arm["k"]))]
        assert float(row["diff_vs_full"]) == pytest.approx(diffs.mean(), abs=1e-6)
        assert float(row["diff_se"]) == pytest.approx(diffs.std(ddof=1) / np.sqrt(2), abs=1e-6)
        assert (row["beats_full_2se"] == "True") == bool(diffs.mean() > 2 * diffs.std(ddof=1) / np.sqrt(2))
    # The ranking: difference of means of each class on the selection half's mean p_true.
    consolidated = study / "consolidated"
    masks = np.load(consolidated / "masks.npy")
    y = np.load(consolidated / "outputs_p_true.npy")[:, selection].mean(axis=1)
    influence = np.array([y[masks[:, k]].mean() - y[~masks[:, k]].mean() for k in range(len(names))])
    every_target = np.load(consolidated / "outputs_p_true.npy").mean(axis=1)
    on_all = np.array([every_target[masks[:, k]].mean() - every_target[~masks[:, k]].mean() for k in range(len(names))])
    assert not np.allclose(influence, on_all)  # the halves' rankings differ here, so the check below can tell
    again = run_counterfactual(study, [2], 2, serial=True, progress=False)
    assert again.executed == [] and again.ranking.on_selection_half
    assert again.ranking.values == pytest.approx(influence, abs=1e-6)
    order = np.argsort(-influence)
    arms = {a["selection"]: a for a in removed["arms"]}
    assert set(arms["top"]["removed"]) == {names[k] for k in order[:2]}
    assert set(arms["bottom"]["removed"]) == {names[k] for k in order[-2:]}


def test_selection_and_scoring_halves_are_disjoint_and_stratified() -> None:
    labels = np.repeat(np.arange(5), [10, 11, 7, 1, 20])
    selection = split_targets(labels, seed=3)
    scoring = ~selection
    assert not (selection & scoring).any() and (selection | scoring).all()
    for c in range(5):
        in_class = labels == c
        assert abs(int(selection[in_class].sum()) - int(scoring[in_class].sum())) <= 1
    assert np.array_equal(selection, split_targets(labels, seed=3))
    assert not np.array_equal(selection, split_targets(labels, seed=4))


def test_resuming_retrains_only_the_missing_run(study: Path) -> None:
    before = _summary(study)
    victim = sorted((study / SWEEP_DIR / "runs").glob("*.npz"))[0]
    victim.unlink()
    result = run_counterfactual(study, [2], 2, serial=True, progress=False)
    assert [s.run_id for s in result.executed] == [victim.stem]
    assert [a.row()["mean"] for a in result.arms] == pytest.approx([float(r["mean"]) for r in before])


def test_bad_input_is_refused_before_training(study: Path, tmp_path: Path, capsys) -> None:
    assert main(["counterfactual", str(study), "--k", str(len(TINY_GLYPHS)), *ARGS[2:]]) == EXIT_USAGE
    assert "K−1 = 7" in capsys.readouterr().err
    empty = _empty_study(tmp_path / "empty", TINY_GLYPHS)
    with pytest.raises(InputError, match="0 finished subset models"):
        run_counterfactual(empty, [2], 2, serial=True, progress=False)
    other = _empty_study(tmp_path / "other", [*TINY_GLYPHS[:-1], "2"])
    with pytest.raises(InputError, match="same source class names"):
        run_counterfactual(study, [2], 2, ranking_from=other, serial=True, progress=False)
    with pytest.raises(InputError, match="at least 2 seeds"):
        run_counterfactual(study, [2], 1, serial=True, progress=False)
    assert not (empty / SWEEP_DIR).exists()


def test_a_sweep_directory_of_another_study_is_refused(study: Path) -> None:
    parent = StudyStore.open(study)
    foreign = StudyStore(parent.path, {**parent.metadata, "config": {**parent.metadata["config"], "seed": 99}})
    with pytest.raises(StudyMismatchError, match="seed"):
        run_sweep(foreign, study / SWEEP_DIR, [], progress=False)


def test_named_runs_keep_study_run_ids() -> None:
    mask = np.ones(3, dtype=bool)
    assert RunSpec("subset", 7, mask, 1).run_id == "subset-000007"
    assert RunSpec("retrain", 7, mask, 1, name="minus000-x-r007").run_id == "retrain-minus000-x-r007"


def test_plot_reaches_the_significance_rules_k(tmp_path, monkeypatch) -> None:
    """The significant arm's k can exceed every swept k (29 on the demo, beyond k = 20): the
    x axis must still show it."""
    from types import SimpleNamespace

    import matplotlib.figure

    from transfer_influence.analysis.counterfactual import Arm, ArmResult
    from transfer_influence.report.plots import plot_counterfactual

    def arm(selection: str, k: int) -> ArmResult:
        return ArmResult(Arm(selection, k, ((0,),)), np.array([0.9, 0.91]), None if k == 0 else np.zeros(2))

    arms = [arm("full", 0)] + [arm(s, k) for s in ("top", "bottom", "random") for k in (5, 10)] + [arm("significant", 29)]
    seen = {}
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **kw: seen.update(xlim=fig.axes[0].get_xlim()))
    plot_counterfactual(SimpleNamespace(full=arms[0], arms=arms), tmp_path / "cf.png")
    assert seen["xlim"][0] < 5 and seen["xlim"][1] > 29
