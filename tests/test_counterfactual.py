"""Counterfactual removal on a tiny study: the files and their rows, paired differences and rankings
against a direct computation from the run files, disjoint selection and scoring halves, resuming,
and bad input refused before any training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.analysis.counterfactual import SWEEP_DIR, run_counterfactual, split_targets, write_counterfactual
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
    assert "between 1 and 7 (the study has 8 classes" in capsys.readouterr().err
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
    ranking = SimpleNamespace(estimator="ridge", kind="p_true", num_models=10, source="x")
    plot_counterfactual(SimpleNamespace(full=arms[0], arms=arms, ranking=ranking, from_other_study=False, unit_kind="class"), tmp_path / "cf.png")
    assert seen["xlim"][0] < 5 and seen["xlim"][1] > 29
    arms.append(arm("whatif", 33))  # the what-if rule's k too
    plot_counterfactual(SimpleNamespace(full=arms[0], arms=arms, ranking=ranking, from_other_study=True, unit_kind="class"), tmp_path / "cf.png")
    assert seen["xlim"][1] > 33


def test_whatif_arm_removes_the_k_the_prediction_picks(tmp_path: Path) -> None:
    """With an all-source baseline the what-if rule joins the arms: the most negative classes of the
    ranking, as many as its curve (on the selection half) predicts best; its k and curve are recorded."""
    from transfer_influence.analysis.whatif import removal_curve
    from transfer_influence.study.results import open_study

    path = tmp_path / "study"
    run_study(parse_config(tiny_config_dict(num_models=12, **{"baselines.repeats": 2})), path, progress=False)
    result = run_counterfactual(path, [2], 2, serial=True, progress=False)
    write_counterfactual(result)
    curve = result.ranking.whatif
    assert curve is not None
    results = open_study(path)
    expected = removal_curve(results, np.argsort(result.ranking.values, kind="stable"), np.flatnonzero(result.selection))
    np.testing.assert_allclose(curve.predicted, expected.predicted)
    arms = {a.arm.selection: a.arm for a in result.arms}
    if curve.best_k == 0:
        assert "whatif" not in arms
    else:
        assert arms["whatif"].removed[0] == tuple(sorted(curve.order[: curve.best_k]))
    removed = json.loads((path / SWEEP_DIR / "removed.json").read_text())
    assert removed["whatif_rule"]["chosen_k"] == curve.best_k
    assert len(removed["whatif_rule"]["predicted_accuracy_by_k"]) == len(curve.predicted)


def test_whatif_arm_is_planned_only_when_a_removal_is_predicted_to_help() -> None:
    from transfer_influence.analysis.counterfactual import Ranking, plan_arms
    from transfer_influence.analysis.whatif import RemovalCurve

    def ranking(predicted: list[float]) -> Ranking:
        curve = RemovalCurve((3, 1, 0), np.array(predicted), np.zeros(len(predicted)), "dilution")
        return Ranking(np.arange(4.0), np.ones(4), (), "x", "p_true", "ridge", 10, True, curve)

    arms = {a.selection: a for a in plan_arms(ranking([0.90, 0.91, 0.93, 0.92]), [1], 2, 0)}
    assert arms["whatif"].k == 2 and arms["whatif"].removed == ((1, 3), (1, 3))
    assert "whatif" not in {a.selection for a in plan_arms(ranking([0.90, 0.89, 0.88, 0.80]), [1], 2, 0)}


def test_a_ranking_from_another_study_writes_its_own_folder(study: Path, tmp_path: Path) -> None:
    """Another study's ranking leaves the study's own summary as it was and shares the retrains."""
    other = tmp_path / "other-study"
    run_study(parse_config(tiny_config_dict(seed=5, **{"baselines.repeats": 0})), other, progress=False)
    own = (study / SWEEP_DIR / "summary.csv").read_text()
    assert main(["counterfactual", str(study), *ARGS, "--ranking-from", str(other)]) == 0
    assert (study / SWEEP_DIR / "summary.csv").read_text() == own
    folder = study / SWEEP_DIR / "from-other-study"
    rows = list(csv.DictReader(open(folder / "summary.csv")))
    removed = json.loads((folder / "removed.json").read_text())
    assert removed["ranking"]["from"] == str(other) and (folder / "counterfactual.png").stat().st_size > 0
    assert rows[0]["selection"] == "full" and rows[0]["mean"] == _summary(study)[0]["mean"]


def test_compare_rankings_pairs_arms_seed_by_seed(study: Path, tmp_path: Path, capsys) -> None:
    """The comparison table against the per-seed accuracies read from the retrain files."""
    from transfer_influence.analysis.ranking_comparison import read_ranking_sweeps

    other = tmp_path / "second"
    run_study(parse_config(tiny_config_dict(seed=7, **{"baselines.repeats": 0})), other, progress=False)
    assert main(["counterfactual", str(study), *ARGS]) == 0  # rewrites removed.json with per-seed accuracies
    assert main(["counterfactual", str(study), *ARGS, "--ranking-from", str(other)]) == 0
    capsys.readouterr()
    assert main(["compare-rankings", str(study)]) == 0
    assert "table:" in capsys.readouterr().out
    rows = list(csv.DictReader(open(study / SWEEP_DIR / "rankings_compared.csv")))
    names = list(TINY_GLYPHS)
    selection = split_targets(_target_labels(study), seed=24)
    runs = _runs(study)

    def one(removed_names: list[str], repeat: int) -> float:
        mask = np.array([n not in removed_names for n in names])
        [correct] = [c for m, r, c, _ in runs if r == repeat and np.array_equal(m, mask)]
        return float(correct[~selection].mean())

    def accuracy(removed_names: list[str]) -> np.ndarray:
        return np.array([one(removed_names, repeat) for repeat in range(2)])

    arms = {}
    for label in {r["ranking"] for r in rows}:
        folder = study / SWEEP_DIR / ("" if label == "own" else label)
        removed = json.loads((folder / "removed.json").read_text())
        arms[label] = {(a["selection"], a["k"]): a for a in removed["arms"]}
    full = accuracy([])
    random2 = np.array([one(arms["own"][("random", 2)]["removed_per_seed"][r], r) for r in range(2)])
    for row in rows:
        arm = arms[row["ranking"]][(row["selection"], int(row["k"]))]
        ours = accuracy(arm["removed"])
        d = ours - full
        assert float(row["diff_vs_full"]) == pytest.approx(d.mean(), abs=1e-6)
        assert float(row["diff_vs_full_se"]) == pytest.approx(d.std(ddof=1) / np.sqrt(2), abs=1e-6)
        if row["selection"] == "top":
            assert float(row["random_minus_top"]) == pytest.approx((random2 - ours).mean(), abs=1e-6)
        if row["selection"] == "bottom" and row["ranking"] != "own":
            first = accuracy(arms["own"][("bottom", 2)]["removed"])
            assert float(row["bottom_minus_first_ranking_bottom"]) == pytest.approx((ours - first).mean(), abs=1e-6)
    labels = [s.label for s in read_ranking_sweeps(study)]
    assert labels[0] == "own" and "from-second" in labels and {r["ranking"] for r in rows} == set(labels)


def test_compare_rankings_needs_a_sweep(tmp_path: Path) -> None:
    from transfer_influence.analysis.ranking_comparison import read_ranking_sweeps

    with pytest.raises(InputError, match="no counterfactual sweep"):
        read_ranking_sweeps(tmp_path)
