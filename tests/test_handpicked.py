"""The hand-picked baseline on a tiny study (glyphs A–F, 0, 1 → digits): the kept classes of the
shipped look-alike relation and of a mapping file, accuracy and paired difference against a direct
computation from the run files, the counterfactual's seeds and runs shared, its rows kept in
summary.csv, and bad mapping files refused before any training."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.analysis.context import RetrainOptions, StudyContext
from transfer_influence.analysis.counterfactual import SWEEP_DIR, Arm, ArmResult, split_targets
from transfer_influence.analysis.handpicked import (
    HandPickedResult,
    Relation,
    default_relation,
    merged_summary_csv,
    run_handpicked,
)
from transfer_influence.analysis.lookalikes import DIGIT_LOOKALIKES
from transfer_influence.cli import EXIT_USAGE, main
from transfer_influence.errors import InputError
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.store import StudyStore
from transfer_influence.study.views import build_study_data, save_study_data

from .conftest import TINY_GLYPHS, tiny_config_dict

REPEATS = ["--repeats", "3", "--serial", "--quiet"]
QUIET = RetrainOptions(serial=True, progress=False)


def _context(path: Path) -> StudyContext:
    return StudyContext.open(path, retrain=QUIET)


def empty_example_study(path: Path) -> Path:
    """A created example-level study (``design.unit: example``) with its data views and no finished
    run: a command for class-level studies must refuse it by its units alone, before reading runs."""
    config = parse_config(tiny_config_dict(**{"design.unit": "example", "num_models": 12}))
    data = build_study_data(config)
    store = StudyStore.create_or_open(
        path, config, config.run_numerics("cpu"), data.fingerprints(), extra={"class_names": list(data.class_names)}
    )
    save_study_data(data, store.data_path)
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A finished tiny study, its counterfactual sweep, then the hand-picked baseline, all by the CLI;
    with the summary rows and retrain files as they were before the baseline ran."""
    path = tmp_path_factory.mktemp("handpicked") / "study"
    run_study(parse_config(tiny_config_dict(**{"baselines.repeats": 0})), path, progress=False)
    assert main(["counterfactual", str(path), "--k", "2", *REPEATS]) == 0
    before = _summary(path)
    runs_before = {p.name for p in (path / SWEEP_DIR / "runs").glob("*.npz")}
    assert main(["handpicked", str(path), *REPEATS]) == 0
    return {"path": path, "summary_before": before, "runs_before": runs_before}


def _summary(study: Path) -> list[dict[str, str]]:
    with open(study / SWEEP_DIR / "summary.csv") as handle:
        return list(csv.DictReader(handle))


def _runs(study: Path) -> dict[str, tuple[np.ndarray, int, np.ndarray, int]]:
    """File name → (mask, repeat index, per-example correctness, training seed), read directly."""
    found = {}
    for path in sorted((study / SWEEP_DIR / "runs").glob("*.npz")):
        with np.load(path) as archive:
            record = json.loads(str(archive["record"]))
            found[path.name] = (archive["mask"].copy(), record["index"], archive["output__correct"].copy(), record["seed"])
    return found


def _details(study: Path) -> dict[str, object]:
    return json.loads((study / SWEEP_DIR / "hand_picked.json").read_text())


def test_kept_classes_are_the_look_alikes_present_in_the_source(study: dict[str, object]) -> None:
    details = _details(study["path"])
    related = {g for digit in map(str, range(10)) for g in DIGIT_LOOKALIKES[digit]}
    assert details["kept"] == [name for name in TINY_GLYPHS if name in related] == ["B", "D", "0", "1"]
    assert details["removed"] == ["A", "C", "E", "F"] and details["k"] == 4
    assert details["related"]["0"] == ["0", "D"] and details["related"]["8"] == ["B"]
    assert "7" in details["unmapped_target_classes"] and "look-alikes" in details["mapping_source"]


def test_accuracy_and_paired_difference_match_the_run_files(study: dict[str, object]) -> None:
    path = study["path"]
    with np.load(path / "data.npz") as archive:
        scoring = ~split_targets(archive["target_test__labels"], seed=24)
    runs = list(_runs(path).values())
    kept_mask = np.array([name in ("B", "D", "0", "1") for name in TINY_GLYPHS])

    def accuracy(mask: np.ndarray, repeat: int) -> float:
        [correct] = [c for m, r, c, _ in runs if r == repeat and np.array_equal(m, mask)]
        return float(correct[scoring].mean())

    full = np.array([accuracy(np.ones(len(TINY_GLYPHS), dtype=bool), r) for r in range(3)])
    picked = np.array([accuracy(kept_mask, r) for r in range(3)])
    diffs = picked - full
    [row] = [r for r in _summary(path) if r["selection"] == "hand_picked"]
    assert (row["k"], row["n"]) == ("4", "3")
    assert float(row["mean"]) == pytest.approx(picked.mean(), abs=1e-6)
    assert float(row["std"]) == pytest.approx(picked.std(ddof=1), abs=1e-6)
    assert float(row["diff_vs_full"]) == pytest.approx(diffs.mean(), abs=1e-6)
    assert float(row["diff_se"]) == pytest.approx(diffs.std(ddof=1) / np.sqrt(3), abs=1e-6)
    assert (row["beats_full_2se"] == "True") == bool(diffs.mean() > 2 * diffs.std(ddof=1) / np.sqrt(3))
    assert _details(path)["hand_picked"]["mean"] == pytest.approx(picked.mean(), abs=1e-6)


def test_seeds_and_full_source_runs_are_the_counterfactuals(study: dict[str, object]) -> None:
    path = study["path"]
    runs = _runs(path)
    new = set(runs) - study["runs_before"]
    assert len(new) == 3  # only the hand-picked retrains: the full source's three were the counterfactual's
    assert all(runs[name][0].sum() == 4 for name in new)
    removed = json.loads((path / SWEEP_DIR / "removed.json").read_text())
    assert _details(path)["seeds"] == removed["seeds"]
    for repeat in range(3):
        assert len({seed for _, r, _, seed in runs.values() if r == repeat}) == 1


def test_counterfactual_rows_survive_and_a_rerun_replaces_its_own_row(study: dict[str, object]) -> None:
    path = study["path"]
    rows = _summary(path)
    assert rows[:-1] == study["summary_before"] and rows[-1]["selection"] == "hand_picked"
    result = run_handpicked(_context(path), repeats=2)
    assert result.executed == []
    assert main(["handpicked", str(path), *REPEATS]) == 0
    assert _summary(path) == rows


def test_a_mapping_file_chooses_the_kept_classes(study: dict[str, object], tmp_path: Path) -> None:
    copy = tmp_path / "study"
    shutil.copytree(study["path"], copy)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("0: [A, '0']\n7: C\n")  # unquoted 0 is read as the class name "0"
    assert main(["handpicked", str(copy), "--mapping", str(mapping), *REPEATS]) == 0
    details = _details(copy)
    assert details["kept"] == ["A", "C", "0"] and details["k"] == 5
    assert str(mapping) in details["mapping_source"]
    hand_picked = [r for r in _summary(copy) if r["selection"] == "hand_picked"]
    assert len(hand_picked) == 1 and hand_picked[0]["k"] == "5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0: [A, Z]\nten: ['1']\n", r"unknown target classes \['ten'\] \(valid: 0, 1, 2.*unknown source classes \['Z'\] \(valid: A, B"),
        ("0: []\n1: []\n", "relates no source class"),
        ("- A\n- B\n", "expected a mapping"),
        ("0: [A\n", "not valid YAML"),
        ("0: {A: 1}\n", "must be a list of source class names"),
    ],
)
def test_bad_mapping_files_are_refused_before_training(
    study: dict[str, object], tmp_path: Path, text: str, message: str
) -> None:
    path = study["path"]
    runs_before = set(_runs(path))
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(text)
    with pytest.raises(InputError, match=message):
        run_handpicked(_context(path), mapping, repeats=2)
    assert set(_runs(path)) == runs_before


def test_cli_refuses_a_missing_mapping_and_too_few_seeds(study: dict[str, object], tmp_path: Path, capsys) -> None:
    path = study["path"]
    assert main(["handpicked", str(path), "--mapping", str(tmp_path / "none.yaml"), *REPEATS]) == EXIT_USAGE
    assert "no such file" in capsys.readouterr().err
    assert main(["handpicked", str(path), "--repeats", "1", "--serial", "--quiet"]) == EXIT_USAGE
    assert "at least 2 seeds" in capsys.readouterr().err


def test_a_library_call_on_an_example_study_is_refused_before_any_work(tmp_path: Path, monkeypatch) -> None:
    """The guard is the entry function's, not only the CLI's: ``run_handpicked`` on an example-level
    study raises before a relation is read, a retrain is trained or a folder is written."""
    from transfer_influence.analysis import counterfactual

    study = empty_example_study(tmp_path / "examples")
    before = sorted(p.name for p in study.iterdir())
    monkeypatch.setattr(counterfactual, "run_sweep", lambda *a, **kw: pytest.fail("retrained on an example study"))
    with pytest.raises(InputError, match=r"example-level study \(design.unit: example\).*`handpicked` works on source classes"):
        run_handpicked(_context(study), tmp_path / "no-such-mapping.yaml", repeats=1)
    assert sorted(p.name for p in study.iterdir()) == before


def test_without_digit_targets_and_glyphs_a_mapping_is_asked_for() -> None:
    digits = [str(d) for d in range(10)]
    assert default_relation(["glyphs"], digits, ["0", "O", "x"]).related["0"] == ("0", "O")
    with pytest.raises(InputError, match="--mapping"):
        default_relation(["fashion_mnist"], digits, ["0", "O"])
    with pytest.raises(InputError, match="--mapping"):
        default_relation(["glyphs"], ["T-shirt/top", "Trouser"], ["0", "O"])
    with pytest.raises(InputError, match="--mapping"):
        default_relation(["glyphs"], digits, ["x", "y"])


def _result(full: list[float], picked: list[float]) -> HandPickedResult:
    full_arm = ArmResult(Arm("full", 0, ((),) * 2), np.array(full), None)
    picked_arm = ArmResult(Arm("hand_picked", 1, ((0,),) * 2), np.array(picked), np.array(picked) - np.array(full))
    relation = Relation({"0": ("b",)}, "test")
    return HandPickedResult(Path("."), ("a", "b"), relation, (1,), full_arm, picked_arm, [1, 2], np.ones(4, dtype=bool))


def test_the_full_row_is_the_counterfactuals_when_it_wrote_one() -> None:
    existing = "selection,k,mean,std,n,diff_vs_full,diff_se,beats_full_2se\nfull,0,0.5,0.1,10,,,\nhand_picked,1,0.1,0,2,0,0,False\n"
    kept = list(csv.DictReader(io.StringIO(merged_summary_csv(existing, _result([0.8, 0.9], [0.7, 0.9]), True))))
    assert [(r["selection"], float(r["mean"])) for r in kept] == [("full", 0.5), ("hand_picked", pytest.approx(0.8))]
    own = list(csv.DictReader(io.StringIO(merged_summary_csv(existing, _result([0.8, 0.9], [0.7, 0.9]), False))))
    assert [(r["selection"], float(r["mean"])) for r in own] == [("full", pytest.approx(0.85)), ("hand_picked", pytest.approx(0.8))]
    assert float(own[1]["diff_vs_full"]) == pytest.approx(-0.05)
