"""Verifying explained mistakes by retraining on a tiny study: the predicted label every run file
records, the label counts of one target and the Appendix E.4 shares against a direct computation
from the retrain files, resuming, the report section, and bad input refused before any training."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.analysis.context import RetrainOptions, StudyContext
from transfer_influence.analysis.counterfactual import retrain_seeds, retrain_spec
from transfer_influence.analysis.verify import (
    VERIFY_DIR, target_file_stem, verify_summary, verify_target, write_target,
)
from transfer_influence.cli import EXIT_USAGE, main
from transfer_influence.errors import InputError, StudyMismatchError
from transfer_influence.execute import run_sweep
from transfer_influence.execute.single import run_single
from transfer_influence.pipeline.run import run_study
from transfer_influence.report.build import build_report
from transfer_influence.study.atomic import atomic_write_npz
from transfer_influence.study.config import parse_config
from transfer_influence.study.outputs import predicted_labels
from transfer_influence.study.results import open_study
from transfer_influence.study.store import StudyStore
from transfer_influence.study.views import build_study_data, save_study_data
from transfer_influence.train.transfer import LinearHead

from .conftest import TINY_GLYPHS, tiny_config_dict
from .test_handpicked import empty_example_study

REPEATS = 2
PAIRS = 12
CLASSES = 2
SUMMARY_ARGS = ["--summary", "--pairs", str(PAIRS), "--classes", str(CLASSES), "--repeats", str(REPEATS), "--serial", "--quiet"]
QUIET = RetrainOptions(serial=True, progress=False)


def _context(path: Path, **options: object) -> StudyContext:
    """The study opened as the library's callers open it, retraining in this process, quietly."""
    return StudyContext.open(path, retrain=QUIET, **options)  # type: ignore[arg-type]


def _config_dict() -> dict:
    """The tiny study with two heads per model, so that a run's prediction is an ensemble's."""
    return tiny_config_dict(**{"baselines.repeats": 0, "target.head_splits": 2})


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny study (8 classes, 8 models) with its E.4 summary run by the CLI."""
    path = tmp_path_factory.mktemp("verify") / "study"
    run_study(parse_config(_config_dict()), path, progress=False)
    assert main(["verify", str(path), *SUMMARY_ARGS]) == 0
    return path


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _retrain_files(study: Path) -> dict[tuple[tuple[int, ...], int], np.ndarray]:
    """(removed classes, repeat) → predicted labels of every retrain file, read directly."""
    found = {}
    for path in (study / VERIFY_DIR / "runs").glob("*.npz"):
        with np.load(path) as archive:
            removed = tuple(int(c) for c in np.flatnonzero(~archive["mask"]))
            found[(removed, json.loads(str(archive["record"]))["index"])] = archive["predicted"].astype(np.int64)
    return found


def _direct_example_influence(study: Path) -> np.ndarray:
    """K × n difference of means on p_true (the study's default output kind and estimator), by hand."""
    results = open_study(study)
    assert (results.config.analysis.estimator, results.config.analysis.output_kind) == ("dim", "p_true")
    outputs = np.asarray(results.outputs("p_true"), dtype=np.float64)
    masks = results.masks.astype(bool)
    return np.stack([outputs[masks[:, k]].mean(axis=0) - outputs[~masks[:, k]].mean(axis=0) for k in range(masks.shape[1])])


def _labels_and_ids(study: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(study / "data.npz") as archive:
        return archive["target_test__labels"].astype(np.int64), archive["target_test__ids"].astype(str)


def _run_ids(study: Path) -> set[str]:
    return {p.name for p in (study / VERIFY_DIR / "runs").glob("*.npz")}


# ---- the predicted label of every run ---------------------------------------------------------
def test_predicted_label_is_the_argmax_of_the_mean_head_probabilities() -> None:
    confident = [[0.0, 10.0, 0.0], [0.0, 10.0, 0.0], [0.0, 10.0, 0.0]]
    # Row 0: one very confident head outweighs two mild ones in the mean logits, not in the mean
    # probabilities. Row 1: two heads vote for 0, but their mean probabilities favour 1.
    heads = [
        np.array([[100.0, 0.0, 0.0], confident[0]]),
        np.array([[0.0, 3.0, 0.0], [2.0, 0.0, 1.9]]),
        np.array([[0.0, 3.0, 0.0], [2.0, 0.0, 1.9]]),
    ]
    expected = np.argmax(np.mean([_softmax(h) for h in heads], axis=0), axis=1)
    found = predicted_labels(heads)
    assert found.dtype == np.int16
    np.testing.assert_array_equal(found, expected)
    assert found[0] != np.argmax(np.mean(heads, axis=0), axis=1)[0]
    votes = np.stack([h.argmax(axis=1) for h in heads])
    assert found[1] != np.bincount(votes[:, 1]).argmax()


def test_a_run_stores_the_argmax_of_its_heads_mean_probabilities(study: Path, tmp_path: Path, monkeypatch) -> None:
    recorded: list[np.ndarray] = []
    original = LinearHead.logits

    def recording(self: LinearHead, features: np.ndarray) -> np.ndarray:
        logits = original(self, features)
        recorded.append(np.asarray(logits, dtype=np.float64).copy())
        return logits

    monkeypatch.setattr(LinearHead, "logits", recording)
    parent = StudyStore.open(study)
    spec = retrain_spec((0,), len(TINY_GLYPHS), 0, 12345)
    report = run_sweep(parent, tmp_path / "sweep", [spec], progress=False)
    assert len(recorded) == 2  # one per head
    expected = np.argmax(np.mean([_softmax(logits) for logits in recorded], axis=0), axis=1)
    stored = report.store.read_run_predicted(spec.run_id)
    assert stored is not None and stored.dtype == np.int16
    np.testing.assert_array_equal(stored, expected)


def test_every_executor_stores_predicted_labels(study: Path, tmp_path: Path) -> None:
    labels, _ = _labels_and_ids(study)
    store = StudyStore.open(study)

    def check(predicted: np.ndarray | None) -> None:
        assert predicted is not None and predicted.dtype == np.int16 and predicted.shape == labels.shape
        assert 0 <= predicted.min() and predicted.max() < labels.max() + 1

    for run_id in store.finished_run_ids():  # the serial executor of `run`
        check(store.read_run_predicted(run_id))
    config = store.config.with_overrides(**{"execution.executor": "process", "execution.workers": 1})
    spec = retrain_spec((1,), len(TINY_GLYPHS), 0, 7)
    report = run_sweep(store, tmp_path / "process-sweep", [spec], config, progress=False)
    assert [s.run_id for s in report.executed] == [spec.run_id]
    check(report.store.read_run_predicted(spec.run_id))
    copy = tmp_path / "copy"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns(VERIFY_DIR))
    (copy / "runs" / "subset-000003.npz").unlink()
    outcome = run_single(copy, "subset", 3)  # the `work` command
    assert outcome.summary is not None
    check(StudyStore.open(copy).read_run_predicted("subset-000003"))


def test_run_files_written_before_predicted_labels_still_read(study: Path, tmp_path: Path) -> None:
    copy = tmp_path / "old"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("consolidated", VERIFY_DIR))
    store = StudyStore.open(copy)
    for run_id in store.finished_run_ids():
        with np.load(store.run_path(run_id)) as archive:
            members = {name: archive[name] for name in archive.files if name != "predicted"}
        atomic_write_npz(store.run_path(run_id), members)
    assert store.read_run_predicted("subset-000000") is None
    mask, outputs, record = store.read_run("subset-000000")
    assert record["run_id"] == "subset-000000" and set(outputs) == {"p_true", "correct", "raw_margin", "softmax_margin"}
    np.testing.assert_array_equal(open_study(copy).outputs("p_true"), open_study(study).outputs("p_true"))
    # A verify store holding such a file is refused by name rather than counted.
    sweep_runs = copy / VERIFY_DIR / "runs"
    shutil.copytree(study / VERIFY_DIR, copy / VERIFY_DIR)
    for path in sweep_runs.glob("*.npz"):
        with np.load(path) as archive:
            atomic_write_npz(path, {name: archive[name] for name in archive.files if name != "predicted"})
    with pytest.raises(StudyMismatchError, match="has no predicted labels"):
        verify_summary(_context(copy), PAIRS, CLASSES, REPEATS)


# ---- one target (Figure 6, right) -------------------------------------------------------------
def test_target_counts_match_the_retrain_files(study: Path) -> None:
    values = _direct_example_influence(study)
    labels, ids = _labels_and_ids(study)
    summary = json.loads((study / VERIFY_DIR / "summary.json").read_text())
    class_names = StudyStore.open(study).metadata["class_names"]
    retrained = [class_names.index(name) for name in summary["classes"]]
    # An image whose most negative class the summary retrained away: its retrains are shared.
    column = next(j for j in np.argsort(values.min(axis=0)) if int(np.argmin(values[:, j])) in retrained)
    before = _run_ids(study)
    result = verify_target(_context(study), str(ids[column]), repeats=REPEATS)
    assert result.executed == [] and _run_ids(study) == before
    removed = int(np.argmin(values[:, column]))
    assert result.removed == class_names[removed] and result.chosen
    assert result.influence == pytest.approx(values[removed, column])
    files = _retrain_files(study)
    with_class = np.array([files[((), r)][column] for r in range(REPEATS)])
    without = np.array([files[((removed,), r)][column] for r in range(REPEATS)])
    np.testing.assert_array_equal(result.predicted_with, with_class)
    np.testing.assert_array_equal(result.predicted_without, without)
    np.testing.assert_array_equal(result.counts_with, np.bincount(with_class, minlength=10))
    assert result.correct_without == pytest.approx(np.mean(without == labels[column]))
    written = write_target(result)
    with open(written["table"]) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["count_without"]) for r in rows] == list(np.bincount(without, minlength=len(rows)))
    assert [r["is_true_label"] for r in rows].index("True") == labels[column]
    assert written["table"].name == target_file_stem(str(ids[column])) + ".csv"


def test_a_named_class_is_retrained_with_the_same_seeds(study: Path) -> None:
    _, ids = _labels_and_ids(study)
    values = _direct_example_influence(study)
    result = verify_target(_context(study), str(ids[0]), remove="A", repeats=REPEATS)
    assert not result.chosen and result.removed == "A"
    assert result.influence == pytest.approx(values[TINY_GLYPHS.index("A"), 0])
    seeds = retrain_seeds(StudyStore.open(study).config.seed, REPEATS)
    store = StudyStore.open(study / VERIFY_DIR)
    for r, seed in enumerate(seeds):
        spec = retrain_spec((TINY_GLYPHS.index("A"),), len(TINY_GLYPHS), r, seed)
        assert store.read_run_mask_and_record(spec.run_id)[1]["seed"] == seed
        assert store.read_run_predicted(spec.run_id)[0] == result.predicted_without[r]


# ---- the quantitative analysis (Appendix E.4) -------------------------------------------------
def test_summary_shares_match_a_direct_computation(study: Path) -> None:
    values = _direct_example_influence(study)
    labels, ids = _labels_and_ids(study)
    class_names = StudyStore.open(study).metadata["class_names"]
    worst_class = values.argmin(axis=0)
    worst = values.min(axis=0)
    top = [int(j) for j in np.argsort(worst, kind="stable") if worst[j] < 0][:PAIRS]
    frequency: dict[int, int] = {}
    for j in top:
        frequency[int(worst_class[j])] = frequency.get(int(worst_class[j]), 0) + 1
    chosen = sorted(frequency, key=lambda c: (-frequency[c], [int(worst_class[j]) for j in top].index(c)))[:CLASSES]
    summary = json.loads((study / VERIFY_DIR / "summary.json").read_text())
    assert summary["classes"] == [class_names[c] for c in chosen]
    files = _retrain_files(study)

    def correct(removed: tuple[int, ...], j: int) -> int:
        return sum(int(files[(removed, r)][j] == labels[j]) for r in range(REPEATS))

    def shares(pairs: list[tuple[int, int]]) -> dict[str, object]:
        changes = [{1: "better", -1: "worse", 0: "same"}[int(np.sign(correct((c,), j) - correct((), j)))] for c, j in pairs]
        return {"count": len(changes), **{k: changes.count(k) / len(changes) for k in ("better", "worse", "same")}}

    kept = [(int(worst_class[j]), j) for j in top if int(worst_class[j]) in chosen]
    per_class = [(c, int(j)) for c in chosen for j in np.argsort(values[c], kind="stable")[:8] if values[c, j] < 0]
    assert summary["top_pairs"]["requested"] == len(top) and summary["top_pairs"]["kept"] == len(kept)
    assert summary["top_pairs"]["shares"] == pytest.approx(shares(kept))
    assert summary["class_top_images"]["shares"] == pytest.approx(shares(per_class))
    with open(study / VERIFY_DIR / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["statistic"], r["source_class"], r["target_id"]) for r in rows] == (
        [("top_pairs", class_names[c], str(ids[j])) for c, j in kept]
        + [("class_top_images", class_names[c], str(ids[j])) for c, j in per_class]
    )
    assert [int(r["correct_without"]) for r in rows[: len(kept)]] == [correct((c,), j) for c, j in kept]


def test_a_second_summary_trains_nothing(study: Path) -> None:
    before = _run_ids(study)
    summary = verify_summary(_context(study), PAIRS, CLASSES, REPEATS)
    assert summary.executed == [] and _run_ids(study) == before


def test_a_killed_retrain_is_the_only_one_run_again(study: Path, tmp_path: Path) -> None:
    copy = tmp_path / "resume"
    shutil.copytree(study, copy)
    victim = sorted((copy / VERIFY_DIR / "runs").glob("*.npz"))[0]
    victim.unlink()
    summary = verify_summary(_context(copy), PAIRS, CLASSES, REPEATS)
    assert [s.run_id for s in summary.executed] == [victim.stem]


# ---- the command line and the report ------------------------------------------------------------
def test_cli_prints_the_table_and_writes_the_figure(study: Path, capsys) -> None:
    _, ids = _labels_and_ids(study)
    assert main(["verify", str(study), "--image", str(ids[1]), "--repeats", str(REPEATS), "--serial", "--quiet"]) == 0
    out = capsys.readouterr().out
    stem = study / VERIFY_DIR / target_file_stem(str(ids[1]))
    assert "(true)" in out and str(stem.with_suffix(".csv")) in out
    assert stem.with_suffix(".png").is_file() and stem.with_suffix(".json").is_file()
    assert main(["verify", str(study), *SUMMARY_ARGS]) == 0
    out = capsys.readouterr().out
    assert "0 retrains run now" in out and "better" in out and str(study / VERIFY_DIR / "summary.csv") in out


def test_report_shows_the_verifications(study: Path) -> None:
    _, ids = _labels_and_ids(study)
    assert main(["verify", str(study), "--image", str(ids[1]), "--repeats", str(REPEATS), "--serial", "--quiet"]) == 0
    html = build_report(StudyContext.open(study), diagnostics=False).html_path.read_text()
    section = html[html.index("Verified mistakes"):]
    summary = json.loads((study / VERIFY_DIR / "summary.json").read_text())
    better = summary["top_pairs"]["shares"]["better"]
    assert f"{better:.1%}" in section and str(ids[1]) in section
    assert 'alt="' + target_file_stem(str(ids[1])) + '"' in section


# ---- bad input ----------------------------------------------------------------------------------
def _empty_study(path: Path) -> Path:
    """A created study with its data views but no finished run."""
    config = parse_config(_config_dict())
    data = build_study_data(config)
    store = StudyStore.create_or_open(
        path, config, config.run_numerics("cpu"), data.fingerprints(), extra={"class_names": list(data.class_names)}
    )
    save_study_data(data, store.data_path)
    return path


def test_bad_input_is_refused_before_training(study: Path, tmp_path: Path, capsys) -> None:
    _, ids = _labels_and_ids(study)
    target = str(ids[0])
    before = _run_ids(study)
    with pytest.raises(InputError, match="unknown target id 'nope'"):
        verify_target(_context(study), "nope", repeats=REPEATS)
    with pytest.raises(InputError, match=r"unknown source class 'Z'.*'A', 'B'"):
        verify_target(_context(study), target, remove="Z", repeats=REPEATS)
    with pytest.raises(InputError, match="at least 2 seeds"):
        verify_target(_context(study), target, repeats=1)
    with pytest.raises(InputError, match="at least 2 seeds"):
        verify_summary(_context(study), repeats=1)
    with pytest.raises(InputError, match="--pairs must be at least 1"):
        verify_summary(_context(study), pairs=0, repeats=REPEATS)
    with pytest.raises(InputError, match="--classes must be at least 1"):
        verify_summary(_context(study), classes=0, repeats=REPEATS)
    with pytest.raises(InputError, match="unknown output kind"):
        _context(study, kind="logits")
    empty = _empty_study(tmp_path / "empty")
    with pytest.raises(InputError, match="0 finished models"):
        verify_summary(_context(empty), repeats=REPEATS)
    with pytest.raises(InputError, match="0 finished models"):
        verify_target(_context(empty), target, repeats=REPEATS)
    assert not (empty / VERIFY_DIR).exists() and _run_ids(study) == before
    assert main(["verify", str(study), "--image", target, "--kind", "logits", "--serial", "--quiet"]) == EXIT_USAGE
    assert "unknown output kind 'logits'" in capsys.readouterr().err
    assert main(["verify", str(study), "--image", "nope", "--serial", "--quiet"]) == EXIT_USAGE
    assert "unknown target id" in capsys.readouterr().err
    assert main(["verify", str(study), "--summary", "--remove", "A", "--serial", "--quiet"]) == EXIT_USAGE
    assert "--remove goes with --image" in capsys.readouterr().err
    assert main(["verify", str(study), "--image", target, "--pairs", "3", "--serial", "--quiet"]) == EXIT_USAGE
    assert "--pairs and --classes go with --summary" in capsys.readouterr().err
    assert _run_ids(study) == before


@pytest.mark.parametrize("call", ["target", "summary"])
def test_a_library_call_on_an_example_study_is_refused_before_any_work(call: str, tmp_path: Path, monkeypatch) -> None:
    """The guard is the entry function's, not only the CLI's: ``verify_target`` / ``verify_summary``
    on an example-level study raise before the runs are read, a retrain is trained or a folder written."""
    from transfer_influence.analysis import verify

    study = empty_example_study(tmp_path / "examples")
    before = sorted(p.name for p in study.iterdir())
    monkeypatch.setattr(verify, "run_sweep", lambda *a, **kw: pytest.fail("retrained on an example study"))
    context = _context(study)
    with pytest.raises(InputError, match=r"example-level study \(design.unit: example\).*`verify` works on source classes"):
        if call == "target":
            verify_target(context, "any", repeats=REPEATS)
        else:
            verify_summary(context, repeats=REPEATS)
    assert sorted(p.name for p in study.iterdir()) == before
