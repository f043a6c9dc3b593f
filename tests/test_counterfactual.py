"""Counterfactual removal on a tiny study: the files and their rows, paired differences and rankings
against a direct computation from the run files, disjoint selection and scoring halves, the
recommendation's confirmation on fresh seeds (stored, resumed, written), resuming, and bad input
refused before any training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.analysis.context import RetrainOptions, StudyContext
from transfer_influence.analysis.counterfactual import SWEEP_DIR, run_counterfactual, split_targets, write_counterfactual
from transfer_influence.analysis.target_split import split_scoring
from transfer_influence.cli import EXIT_USAGE, main
from transfer_influence.errors import InputError, StudyMismatchError
from transfer_influence.execute import run_sweep
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.design import RunSpec
from transfer_influence.study.store import StudyStore
from transfer_influence.study.views import build_study_data, save_study_data

from .conftest import TINY_GLYPHS, tiny_config_dict

REPEATS = 3
ARGS = ["--k", "2", "--repeats", str(REPEATS), "--serial", "--quiet"]
QUIET = RetrainOptions(serial=True, progress=False)


def _context(path: Path, **options: object) -> StudyContext:
    """The study opened as the library's callers open it, retraining in this process, quietly."""
    return StudyContext.open(path, retrain=QUIET, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny study (8 classes, 8 models) with its counterfactual sweep run by the CLI
    (3 seeds: its chosen removal is retrained on 3 fresh seeds)."""
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


def _runs(study: Path, pattern: str = "*-r[0-9][0-9][0-9].npz") -> list[tuple[np.ndarray, int, np.ndarray, int]]:
    """(mask, repeat index, per-example correctness, training seed) of every retrain file, read
    directly: the selection seeds' (``…-r<r>``) unless ``pattern`` says otherwise."""
    found = []
    for path in sorted((study / SWEEP_DIR / "runs").glob(pattern)):
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
    assert all(r["n"] == str(REPEATS) for r in rows)
    assert rows[0]["diff_vs_full"] == "" and all(r["beats_full_2se"] in ("True", "False") for r in rows[1:])
    arms = {(a["selection"], a["k"]): a for a in removed["arms"]}
    top, bottom = set(arms[("top", 2)]["removed"]), set(arms[("bottom", 2)]["removed"])
    assert len(top) == len(bottom) == 2 and not top & bottom
    assert all(len(set(r)) == 2 for r in arms[("random", 2)]["removed_per_seed"])
    kept = [line for line in (study / SWEEP_DIR / "recommended_source.txt").read_text().splitlines() if not line.startswith("#")]
    recommendation = json.loads((study / SWEEP_DIR / "recommendation.json").read_text())
    removed_names = recommendation["chosen"]["removed"] if recommendation["confirmed"] else []
    assert kept == [name for name in TINY_GLYPHS if name not in removed_names]
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
    assert all(len({seed for _, r, _, seed in runs if r == repeat}) == 1 for repeat in range(REPEATS))
    rows = {(r["selection"], r["k"]): r for r in _summary(study)}
    full = np.array([accuracy([], r) for r in range(REPEATS)])
    assert float(rows[("full", "0")]["mean"]) == pytest.approx(full.mean())
    for arm in removed["arms"][1:]:
        per_seed = arm.get("removed_per_seed") or [arm["removed"]] * REPEATS
        diffs = np.array([accuracy(per_seed[r], r) for r in range(REPEATS)]) - full
        row = rows[(arm["selection"], str(arm["k"]))]
        assert float(row["diff_vs_full"]) == pytest.approx(diffs.mean(), abs=1e-6)
        assert float(row["diff_se"]) == pytest.approx(diffs.std(ddof=1) / np.sqrt(REPEATS), abs=1e-6)
        assert (row["beats_full_2se"] == "True") == bool(diffs.mean() > 2 * diffs.std(ddof=1) / np.sqrt(REPEATS))
    # The ranking: difference of means of each class on the selection half's mean p_true.
    consolidated = study / "consolidated"
    masks = np.load(consolidated / "masks.npy")
    y = np.load(consolidated / "outputs_p_true.npy")[:, selection].mean(axis=1)
    influence = np.array([y[masks[:, k]].mean() - y[~masks[:, k]].mean() for k in range(len(names))])
    every_target = np.load(consolidated / "outputs_p_true.npy").mean(axis=1)
    on_all = np.array([every_target[masks[:, k]].mean() - every_target[~masks[:, k]].mean() for k in range(len(names))])
    assert not np.allclose(influence, on_all)  # the halves' rankings differ here, so the check below can tell
    again = run_counterfactual(_context(study), [2], REPEATS)
    assert again.executed == [] and again.ranking.on_selection_half
    assert again.ranking.values == pytest.approx(influence, abs=1e-6)
    order = np.argsort(-influence)
    arms = {a["selection"]: a for a in removed["arms"]}
    assert set(arms["top"]["removed"]) == {names[k] for k in order[:2]}
    assert set(arms["bottom"]["removed"]) == {names[k] for k in order[-2:]}


def test_the_chosen_removal_is_confirmed_on_fresh_stored_seeds(study: Path, capsys) -> None:
    """The candidate is the recommendable arm with the largest selection-seed gain; it and the full
    source are retrained on 3 seeds of the confirmation stream (stored as ``…-c<r>`` runs), and the
    confirmed gain, its t(2) interval and one-sided p — recomputed here from the run files — are
    what recommendation.json, recommended_source.txt's header and the CLI say. A rerun retrains
    nothing; a lost confirmation run is the only one retrained."""
    from scipy import stats

    from transfer_influence.analysis.counterfactual import (
        CONFIRMATION_INDEX, RECOMMENDABLE, confirmation_seeds, retrain_seeds,
    )

    rec = json.loads((study / SWEEP_DIR / "recommendation.json").read_text())
    removed = json.loads((study / SWEEP_DIR / "removed.json").read_text())
    selection = split_targets(_target_labels(study), seed=24)
    choice, confirmation = split_scoring(_target_labels(study), selection, seed=24)
    assert not (choice & confirmation).any() and np.array_equal(choice | confirmation, ~selection)
    assert (removed["target_split"]["choice_examples"], removed["target_split"]["confirmation_examples"]) == (
        int(choice.sum()), int(confirmation.sum()))
    selection_runs = _runs(study)

    def choice_gain(removed_names: list[str]) -> float:
        """The arm's mean paired gain over the selection seeds, scored on the choice images only."""
        keep = np.array([name not in removed_names for name in TINY_GLYPHS])
        on = {r: float(c[choice].mean()) for m, r, c, _ in selection_runs if np.array_equal(m, keep)}
        full = {r: float(c[choice].mean()) for m, r, c, _ in selection_runs if m.all()}
        return float(np.mean([on[r] - full[r] for r in range(REPEATS)]))

    pool = [a for a in removed["arms"] if a["selection"] in RECOMMENDABLE and a["k"] > 0]
    gains = {f"{a['selection']}-{a['k']}": choice_gain(a["removed"]) for a in pool}
    best = max(gains, key=gains.__getitem__)
    # This tiny study's selection seeds give a positive best gain on the choice images, so a confirmation ran.
    assert gains[best] > 0 and rec["chosen"]["arm"] == best
    assert rec["selection_seeds"]["gain"] == pytest.approx(gains[best])
    confirming = _runs(study, "*-c[0-9][0-9][0-9].npz")
    seeds = confirmation_seeds(24, REPEATS)
    assert not set(seeds) & set(retrain_seeds(24, REPEATS)) and rec["confirmation"]["seeds"] == seeds
    assert sorted((r, seed) for _, r, _, seed in confirming) == sorted(
        (CONFIRMATION_INDEX + i, seeds[i]) for i in range(REPEATS) for _ in range(2)
    )
    chosen_mask = np.array([name not in rec["chosen"]["removed"] for name in TINY_GLYPHS])

    def accuracy(mask: np.ndarray) -> np.ndarray:  # the fresh seeds, on the images the choice did not see
        return np.array([
            float(c[confirmation].mean()) for i in range(REPEATS)
            for m, r, c, _ in confirming if r == CONFIRMATION_INDEX + i and np.array_equal(m, mask)
        ])

    def per_image(mask: np.ndarray) -> np.ndarray:  # seeds × confirmation images, correctness
        return np.array([
            c[confirmation].astype(float) for i in range(REPEATS)
            for m, r, c, _ in confirming if r == CONFIRMATION_INDEX + i and np.array_equal(m, mask)
        ])

    full, arm = accuracy(np.ones(len(TINY_GLYPHS), dtype=bool)), accuracy(chosen_mask)
    d = arm - full
    grid = per_image(chosen_mask) - per_image(np.ones(len(TINY_GLYPHS), dtype=bool))
    seeds_n, images_n = grid.shape  # two-way random effects: seeds, confirmation images, residual
    ms_seed = images_n * grid.mean(axis=1).var(ddof=1)
    ms_image = seeds_n * grid.mean(axis=0).var(ddof=1)
    resid = grid - grid.mean(axis=1, keepdims=True) - grid.mean(axis=0, keepdims=True) + grid.mean()
    ms_resid = (resid**2).sum() / ((seeds_n - 1) * (images_n - 1))
    combined = max(ms_seed + ms_image - ms_resid, ms_resid)
    se = np.sqrt(combined / (seeds_n * images_n))
    dof = combined**2 / (ms_seed**2 / (seeds_n - 1) + ms_image**2 / (images_n - 1) + ms_resid**2 / ((seeds_n - 1) * (images_n - 1)))
    image_part = ms_image - ms_resid
    c = rec["confirmation"]
    assert c["full_accuracy_per_seed"] == pytest.approx(full) and c["arm_accuracy_per_seed"] == pytest.approx(arm)
    assert (c["gain"], c["se"], c["dof"]) == (pytest.approx(d.mean()), pytest.approx(se), pytest.approx(dof))
    assert c["p_one_sided"] == pytest.approx(stats.t.sf(d.mean() / se, dof))
    assert c["ci"] == pytest.approx([d.mean() - stats.t.ppf(0.975, dof) * se, d.mean() + stats.t.ppf(0.975, dof) * se])
    assert rec["confirmed"] == (c["p_one_sided"] < 0.05) and rec["recommended"] == (rec["chosen"]["arm"] if rec["confirmed"] else "full")
    stated = f"{100 * d.mean():+.2f} ± {100 * se:.2f} points on {REPEATS} fresh seeds and the confirmation images"
    header = (study / SWEEP_DIR / "recommended_source.txt").read_text().splitlines()[0]
    assert header.startswith("# ") and stated in header and f"{100 * c['ci'][0]:+.2f}, {100 * c['ci'][1]:+.2f}]" in header
    files = {p: p.stat().st_mtime_ns for p in (study / SWEEP_DIR / "runs").glob("*-c*.npz")}
    capsys.readouterr()
    assert main(["counterfactual", str(study), *ARGS]) == 0
    out = capsys.readouterr().out
    assert "0 retrains run now" in out and f"confirmation ({rec['chosen']['arm']} and the full source" in out and stated in out
    assert {p: p.stat().st_mtime_ns for p in (study / SWEEP_DIR / "runs").glob("*-c*.npz")} == files
    victim = sorted(files)[0]
    victim.unlink()
    again = run_counterfactual(_context(study), [2], REPEATS)
    assert [s.run_id for s in again.executed] == [victim.stem]
    assert again.recommendation is not None and again.recommendation.confirmation is not None
    assert again.recommendation.confirmation.mean == pytest.approx(d.mean())


def test_no_positive_selection_gain_recommends_the_full_source_without_retraining(monkeypatch, tmp_path: Path) -> None:
    """When no recommendable arm gains on the selection seeds there is nothing to confirm: no retrain,
    the full source recommended, the best (non-positive) arm named; ``random`` (a control) and an
    arm removing nothing are never candidates, however they did."""
    from transfer_influence.analysis import counterfactual as cf

    full = cf.ArmResult(cf.Arm("full", 0, ((),) * 3), np.array([0.80, 0.81, 0.82]), None)

    def arm(selection: str, k: int, gain: float) -> cf.ArmResult:
        accuracy = full.accuracy + gain + np.array([0.0, 0.001, -0.001])
        return cf.ArmResult(cf.Arm(selection, k, ((0, 1)[:k],) * 3), accuracy, accuracy - full.accuracy)

    arms = [full, arm("top", 2, -0.03), arm("bottom", 2, -0.01), arm("random", 2, 0.05), arm("significant", 0, 0.0)]
    monkeypatch.setattr(cf, "run_sweep", lambda *a, **kw: pytest.fail("nothing should be retrained"))
    rec, executed = cf.confirm_candidate(None, arms, [1, 2, 3], np.ones(3, dtype=bool))  # type: ignore[arg-type]
    assert executed == [] and rec.candidate is None and not rec.confirmed and rec.confirmation is None
    assert (rec.best_arm, rec.arms_compared) == ("bottom-2", 2) and rec.selection_gain == pytest.approx(-0.01)
    result = cf.CounterfactualResult(tmp_path, ("a", "b", "c"), None, arms, [1, 2, 3], np.ones(3, dtype=bool), recommendation=rec)  # type: ignore[arg-type]
    assert result.recommended is None and result.candidate is None
    header, *kept = cf.recommended_source_text(result).splitlines()
    assert kept == ["a", "b", "c"] and header.startswith("# full source: no removal gained on the selection seeds")


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
    victim = sorted((study / SWEEP_DIR / "runs").glob("*-r000.npz"))[0]
    victim.unlink()
    result = run_counterfactual(_context(study), [2], REPEATS)
    assert [s.run_id for s in result.executed] == [victim.stem]
    assert [a.row()["mean"] for a in result.arms] == pytest.approx([float(r["mean"]) for r in before])


def test_bad_input_is_refused_before_training(study: Path, tmp_path: Path, capsys) -> None:
    assert main(["counterfactual", str(study), "--k", str(len(TINY_GLYPHS)), *ARGS[2:]]) == EXIT_USAGE
    assert "between 1 and 7 (the study has 8 classes" in capsys.readouterr().err
    empty = _empty_study(tmp_path / "empty", TINY_GLYPHS)
    with pytest.raises(InputError, match="0 finished models"):
        run_counterfactual(_context(empty), [2], REPEATS)
    other = _empty_study(tmp_path / "other", [*TINY_GLYPHS[:-1], "2"])
    with pytest.raises(InputError, match="same source class names"):
        run_counterfactual(_context(study), [2], REPEATS, ranking_from=_context(other))
    assert not (empty / SWEEP_DIR).exists()


def test_fewer_seeds_than_the_confirmation_needs_are_refused_before_training(study: Path, tmp_path: Path, capsys) -> None:
    """Two seeds leave the confirmation's t test one degree of freedom (critical value 6.3 SE): refused
    by the CLI (exit 2, naming the minimum) before a ranking is built or a retrain trained, for a new
    k whose arms are not stored."""
    stored = sorted(p.name for p in (study / SWEEP_DIR / "runs").glob("*.npz"))
    assert main(["counterfactual", str(study), "--k", "3", "--repeats", "2", "--serial", "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--repeats 2" in err and "at least 3 seeds" in err and "--repeats 3 or more" in err
    assert sorted(p.name for p in (study / SWEEP_DIR / "runs").glob("*.npz")) == stored
    empty = _empty_study(tmp_path / "empty", TINY_GLYPHS)  # refused before the study is even read
    with pytest.raises(InputError, match="at least 3 seeds"):
        run_counterfactual(_context(empty), [2], 2)
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
    result = run_counterfactual(_context(path), [2], REPEATS)
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
    out = capsys.readouterr().out
    assert "table:" in out and "best removal across rankings (chosen by selection-seed gain, not by confirmed gain)" in out
    rows = list(csv.DictReader(open(study / SWEEP_DIR / "rankings_compared.csv")))
    names = list(TINY_GLYPHS)
    selection = split_targets(_target_labels(study), seed=24)
    runs = _runs(study)

    def one(removed_names: list[str], repeat: int) -> float:
        mask = np.array([n not in removed_names for n in names])
        [correct] = [c for m, r, c, _ in runs if r == repeat and np.array_equal(m, mask)]
        return float(correct[~selection].mean())

    def accuracy(removed_names: list[str]) -> np.ndarray:
        return np.array([one(removed_names, repeat) for repeat in range(REPEATS)])

    arms = {}
    for label in {r["ranking"] for r in rows}:
        folder = study / SWEEP_DIR / ("" if label == "own" else label)
        removed = json.loads((folder / "removed.json").read_text())
        arms[label] = {(a["selection"], a["k"]): a for a in removed["arms"]}
    full = accuracy([])
    random2 = np.array([one(arms["own"][("random", 2)]["removed_per_seed"][r], r) for r in range(REPEATS)])
    for row in rows:
        arm = arms[row["ranking"]][(row["selection"], int(row["k"]))]
        ours = accuracy(arm["removed"])
        d = ours - full
        assert float(row["diff_vs_full"]) == pytest.approx(d.mean(), abs=1e-6)
        assert float(row["diff_vs_full_se"]) == pytest.approx(d.std(ddof=1) / np.sqrt(REPEATS), abs=1e-6)
        if row["selection"] == "top":
            assert float(row["random_minus_top"]) == pytest.approx((random2 - ours).mean(), abs=1e-6)
        if row["selection"] == "bottom" and row["ranking"] != "own":
            first = accuracy(arms["own"][("bottom", 2)]["removed"])
            assert float(row["bottom_minus_first_ranking_bottom"]) == pytest.approx((ours - first).mean(), abs=1e-6)
    labels = [s.label for s in read_ranking_sweeps(_context(study))]
    assert labels[0] == "own" and "from-second" in labels and {r["ranking"] for r in rows} == set(labels)
    # Each ranking's chosen arm carries its confirmed gain, as its recommendation.json says.
    for label in labels:
        folder = study / SWEEP_DIR / ("" if label == "own" else label)
        rec = json.loads((folder / "recommendation.json").read_text())
        chosen = [r for r in rows if r["ranking"] == label and r["chosen"] == "True"]
        if rec["chosen"] is None:
            assert chosen == []
            continue
        [row] = chosen
        assert f"{row['selection']}-{row['k']}" == rec["chosen"]["arm"]
        assert float(row["confirmed_gain"]) == pytest.approx(rec["confirmation"]["gain"])
        assert float(row["confirmed_p_one_sided"]) == pytest.approx(rec["confirmation"]["p_one_sided"])
        assert row["confirmed"] == str(rec["confirmed"])


def test_the_best_removal_across_rankings_is_chosen_on_selection_seeds() -> None:
    """A ranking's best removal is its sweep's confirmed candidate, not the arm with the largest table
    gain; across rankings the choice is by selection-seed gain, so a ranking whose candidate was
    confirmed does not win for it (that would bring the winner's curse back)."""
    from transfer_influence.analysis.ranking_comparison import RankingSweep, best_across, best_removal_lines
    from transfer_influence.analysis.recommendation import confirmed_recommendation

    full = np.array([0.80, 0.82, 0.81])

    def sweep(label: str, selection_gain: float, confirmed_gain: float, table: float) -> RankingSweep:
        rec = confirmed_recommendation(
            "bottom-2", "bottom", 2, (0, 1), selection_gain + np.array([0.0, 0.002, -0.002]), 4, [7, 8, 9],
            full, full + confirmed_gain + np.array([0.0, 0.001, -0.001]),
        )
        accuracy = {("full", 0): full, ("bottom", 2): full + selection_gain, ("whatif", 5): full + table}
        return RankingSweep(label, label, 10, "ridge", "p_true", (1, 2, 3), accuracy, rec)

    lucky = sweep("own", 0.03, 0.0, 0.05)  # its whatif arm has the largest table gain, and its choice fails
    steady = sweep("from-b", 0.02, 0.02, 0.0)  # confirmed, but chosen less strongly on the selection seeds
    assert lucky.best_removal() is lucky.recommendation and not lucky.recommendation.confirmed  # type: ignore[union-attr]
    assert steady.recommendation is not None and steady.recommendation.confirmed
    best = best_across([lucky, steady])
    assert best is not None and best[0] is lucky
    assert "own's bottom-2" in best_removal_lines([lucky, steady])[-1] and "not confirmed: keep the full source" in best_removal_lines([lucky, steady])[-1]


def test_compare_rankings_needs_a_sweep(tmp_path: Path, capsys) -> None:
    from transfer_influence.analysis.ranking_comparison import read_ranking_sweeps

    empty = _empty_study(tmp_path / "empty", TINY_GLYPHS)
    with pytest.raises(InputError, match="no counterfactual sweep"):
        read_ranking_sweeps(_context(empty))
    assert main(["compare-rankings", str(empty)]) == EXIT_USAGE
    assert "no counterfactual sweep" in capsys.readouterr().err and not (empty / SWEEP_DIR).exists()
