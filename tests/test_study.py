"""A tiny real study end to end: run, resume, refuse foreign configs, survive SIGKILL and crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from transfer_influence import class_influence, open_study
from transfer_influence.cli import main as cli_main
from transfer_influence.study.config import parse_config
from transfer_influence.execute.work import FAULT_ENV
from transfer_influence.errors import RunFailedError
from transfer_influence.study.design import design_mask
from transfer_influence.train.worker import Worker
from transfer_influence.errors import StudyBusyError, StudyMismatchError
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.store import study_lock

from .conftest import tiny_config_dict, write_config


def subset_files(study: Path) -> list[str]:
    return sorted(p.name for p in (study / "runs").glob("subset-*.npz"))


def test_tiny_study_end_to_end(tmp_path: Path, tiny_config) -> None:
    study = tmp_path / "study"
    report = run_study(tiny_config, study, progress=False)
    assert len(report.executed) == 8 + 2 and report.skipped == 0
    results = open_study(study)
    assert results.masks.shape == (8, 8) and results.masks.dtype == bool
    assert results.class_names == ("A", "B", "C", "D", "E", "F", "0", "1")
    assert results.output_kinds == ("p_true", "correct", "raw_margin", "softmax_margin")
    assert results.outputs("p_true").shape == (8, 150)
    assert results.target_labels.shape == (150,) and len(results.target_ids) == 150
    for row, index in enumerate(results.run_indices):
        np.testing.assert_array_equal(results.masks[row], design_mask(tiny_config, int(index), 8))
    p_true = results.outputs("p_true")
    assert ((p_true >= 0) & (p_true <= 1)).all()
    correct = results.outputs("correct")
    np.testing.assert_allclose(correct.mean(axis=1), results.target_accuracy, atol=1e-6)
    # The softmax margin is positive exactly when the prediction is correct.
    np.testing.assert_array_equal(results.outputs("softmax_margin") > 0, correct == 1)
    infl = class_influence(results.masks, p_true, results.class_names, results.target_ids)
    assert infl.values.shape == (8, 150) and np.isfinite(infl.stderr).all()
    assert set(results.baselines) == {"all_source", "random_init"}
    meta = json.loads((study / "study.json").read_text())
    assert {"config", "seed", "versions", "git_commit", "fingerprints", "results_key"} <= set(meta)
    assert meta["versions"]["torch"].startswith("2.13")


def test_same_config_and_seed_give_identical_results(tmp_path: Path, tiny_config) -> None:
    config = tiny_config.with_overrides(num_models=3, **{"baselines.repeats": 0})
    run_study(config, tmp_path / "a", progress=False)
    run_study(config, tmp_path / "b", progress=False)
    a, b = open_study(tmp_path / "a"), open_study(tmp_path / "b")
    for kind in a.output_kinds:
        np.testing.assert_array_equal(a.outputs(kind), b.outputs(kind))


def test_resume_skips_finished_runs_and_extends(tmp_path: Path, tiny_config) -> None:
    study = tmp_path / "study"
    run_study(tiny_config.with_overrides(num_models=4), study, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in (study / "runs").iterdir()}
    report = run_study(tiny_config.with_overrides(num_models=7), study, progress=False)
    assert report.skipped == 4 + 2 and len(report.executed) == 3
    after = {p.name: p.stat().st_mtime_ns for p in (study / "runs").iterdir()}
    assert all(after[name] == mtime for name, mtime in before.items())
    assert open_study(study).num_models == 7


def test_config_mismatch_on_reopen_is_refused(tmp_path: Path, tiny_config, capsys) -> None:
    study = tmp_path / "study"
    run_study(tiny_config.with_overrides(num_models=3), study, progress=False)
    changed = tiny_config.with_overrides(num_models=3, **{"design.alpha": 0.25})
    with pytest.raises(StudyMismatchError, match=r"design\.alpha: study has 0\.5, config has 0\.25"):
        run_study(changed, study, progress=False)
    cfg = write_config(tmp_path / "changed.yaml", tiny_config_dict(**{"num_models": 3, "train.lr": 0.01}))
    assert cli_main(["run", str(cfg), "--out", str(study), "--quiet"]) == 2
    assert "train.lr" in capsys.readouterr().err
    assert len(subset_files(study)) == 3


def test_changed_data_is_refused(tmp_path: Path, tiny_config) -> None:
    study = tmp_path / "study"
    run_study(tiny_config.with_overrides(num_models=3), study, progress=False)
    meta = json.loads((study / "study.json").read_text())
    meta["fingerprints"]["target_test"] = "0" * 16
    (study / "study.json").write_text(json.dumps(meta))
    with pytest.raises(StudyMismatchError, match="target_test"):
        run_study(tiny_config.with_overrides(num_models=3), study, progress=False)


def test_foreign_directory_and_busy_study_are_refused(tmp_path: Path, tiny_config) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(StudyMismatchError, match="not empty"):
        run_study(tiny_config, foreign, progress=False)
    busy = tmp_path / "busy"
    with study_lock(busy):
        with pytest.raises(StudyBusyError, match="another process"):
            run_study(tiny_config, busy, progress=False)


def test_run_failing_every_attempt_stops_and_keeps_finished_runs(tmp_path: Path, tiny_config, monkeypatch) -> None:
    original = Worker.run

    def flaky(self, spec):
        if spec.run_id == "subset-000002":
            raise RuntimeError("simulated failure")
        return original(self, spec)

    monkeypatch.setattr(Worker, "run", flaky)
    study = tmp_path / "study"
    with pytest.raises(RunFailedError, match="subset-000002 failed 3 times"):
        run_study(tiny_config.with_overrides(num_models=4), study, progress=False)
    assert subset_files(study) == ["subset-000000.npz", "subset-000001.npz"]
    monkeypatch.setattr(Worker, "run", original)
    report = run_study(tiny_config.with_overrides(num_models=4), study, progress=False)
    assert len(report.executed) == 2 and len(subset_files(study)) == 4


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "transfer_influence.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_worker_crash_is_rerun_not_dropped(tmp_path: Path) -> None:
    config = tiny_config_dict(num_models=6, **{"execution.executor": "process", "execution.workers": 2})
    cfg = write_config(tmp_path / "c.yaml", config)
    study = tmp_path / "study"
    env = {**os.environ, FAULT_ENV: "subset-000003"}
    proc = _cli("run", str(cfg), "--out", str(study), env=env)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert (study / ".crashed-subset-000003").exists()  # the worker really died once
    assert len(subset_files(study)) == 6
    assert open_study(study).num_models == 6


def test_sigkill_mid_run_then_resume_ends_with_exactly_m_runs(tmp_path: Path) -> None:
    m = 24
    config = tiny_config_dict(num_models=m, **{"execution.executor": "process", "execution.workers": 2})
    cfg = write_config(tmp_path / "c.yaml", config)
    study = tmp_path / "study"
    proc = _cli("run", str(cfg), "--out", str(study), start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if (study / "runs").exists() and len(subset_files(study)) >= 4:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    survivors = {name: (study / "runs" / name).read_bytes() for name in subset_files(study)}
    assert 4 <= len(survivors) < m, "the kill should land mid-study"

    proc = _cli("run", str(cfg), "--out", str(study))
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "already finished" in out
    names = subset_files(study)
    assert names == [f"subset-{i:06d}.npz" for i in range(m)]
    for name, content in survivors.items():
        assert (study / "runs" / name).read_bytes() == content, f"{name} was run again"
    assert not list((study / "runs").glob(".*.tmp"))
    results = open_study(study)
    assert results.num_models == m
    expected = parse_config(config)
    for row, index in enumerate(results.run_indices):
        np.testing.assert_array_equal(results.masks[row], design_mask(expected, int(index), 8))


def test_cifar_format_target_resized_to_the_source_shape(tmp_path: Path) -> None:
    """A CIFAR-10 target (files written in the real pickle format) is resized to 1×28×28 by config."""
    from .test_data_formats import cifar_rows, dump

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    dump(folder / "batches.meta", {b"label_names": [f"c{k}".encode() for k in range(10)]})
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        dump(folder / name, {b"labels": [j % 10 for j in range(30)], b"data": cifar_rows(30, i)})
    target = {"dataset": "cifar10", "options": {"root": str(tmp_path)}, "image_size": 28, "channels": 1}
    config = parse_config(
        tiny_config_dict(num_models=4, **{"target.dataset": target, "target.shots_per_class": 2,
                                          "target.test_size": 40, "design.kind": "complement"})
    )
    run_study(config, tmp_path / "study", progress=False)
    results = open_study(tmp_path / "study")
    assert results.outputs("p_true").shape == (4, 40)
    assert results.target_class_names == tuple(f"c{k}" for k in range(10))
    mismatch = parse_config(tiny_config_dict(**{"target.dataset": {"dataset": "cifar10", "options": {"root": str(tmp_path)}}}))
    with pytest.raises(ValueError, match="image_size and channels"):
        run_study(mismatch, tmp_path / "other", progress=False)


def test_stop_rule_checks_reliability_and_stops_early(tmp_path: Path, tiny_config, monkeypatch) -> None:
    import io

    import transfer_influence.analysis.convergence as convergence
    import transfer_influence.evaluate.reliability as diagnostics

    never = tiny_config.with_overrides(num_models=16, **{"execution.stop_reliability": 0.999, "execution.stop_check_every": 8})
    log = io.StringIO()
    run_study(never, tmp_path / "never", progress=False, stream=log)
    assert len(subset_files(tmp_path / "never")) == 16
    assert log.getvalue().count("reliability check at") == 2

    real = convergence.split_half_reliability

    def reliable(*args, **kwargs):
        curves = real(*args, **kwargs)
        return {k: diagnostics.ReliabilityCurve(k, c.models_per_half, c.spearman * 0 + 0.95, c.spread, 1.0) for k, c in curves.items()}

    monkeypatch.setattr(convergence, "split_half_reliability", reliable)
    log = io.StringIO()
    early = never.with_overrides(num_models=40, **{"execution.stop_reliability": 0.9})
    report = run_study(early, tmp_path / "early", progress=False, stream=log)
    # The check at 8 models cannot split 4 + 4 models with every class in and out: not yet measurable.
    assert "at 8 models: split-half Spearman (target_class) nan" in log.getvalue()
    assert "at 16 models: split-half Spearman (target_class) 0.950 ≥ 0.9; stopping" in log.getvalue()
    assert len(subset_files(tmp_path / "early")) == 16 and report.planned == 42


def test_several_few_shot_heads_are_averaged(tmp_path: Path) -> None:
    config = parse_config(tiny_config_dict(num_models=3, **{"target.head_splits": 3, "baselines.repeats": 0}))
    run_study(config, tmp_path / "study", progress=False)
    results = open_study(tmp_path / "study")
    with np.load(tmp_path / "study" / "data.npz") as data:
        heads = data["target_train__heads"]
        labels = data["target_train__labels"]
    assert np.bincount(heads).tolist() == [50, 50, 50]  # 5 shots × 10 digits per head
    assert all(np.bincount(labels[heads == h]).tolist() == [5] * 10 for h in range(3))
    correct = results.outputs("correct")
    assert set(np.unique(correct)) <= {0.0, 1 / 3, 2 / 3, 1.0} or np.allclose(correct * 3, np.round(correct * 3))


def test_partial_estimates_need_the_flag(tmp_path: Path, tiny_config, capsys) -> None:
    study = tmp_path / "study"
    run_study(tiny_config.with_overrides(num_models=4, **{"design.kind": "complement"}), study, progress=False)
    meta = json.loads((study / "study.json").read_text())
    meta["config"]["num_models"] = 10  # as if the study were still running
    (study / "study.json").write_text(json.dumps(meta))
    assert cli_main(["influence", str(study)]) == 2
    assert "--partial" in capsys.readouterr().err
    assert cli_main(["influence", str(study), "--partial"]) == 0
    assert "partial estimate: 4 of 10 models" in capsys.readouterr().out


def test_analysis_settings_change_without_refusal(tmp_path: Path, tiny_config) -> None:
    study = tmp_path / "study"
    run_study(tiny_config.with_overrides(num_models=3), study, progress=False)
    ridge = tiny_config.with_overrides(num_models=3, **{"analysis.estimator": "ridge", "execution.workers": 3})
    assert ridge.results_key() == tiny_config.results_key()
    run_study(ridge, study, progress=False)
    stored = json.loads((study / "study.json").read_text())["config"]
    assert stored["analysis"]["estimator"] == "ridge" and stored["execution"]["workers"] == 3
