"""Faults with real processes: a worker or the driver killed with SIGKILL, run files overwritten with
garbage, truncated, copied in from another study or duplicated under another name. After each,
`run` again ends with exactly m valid runs, and the consolidated arrays are those of an
uninterrupted study with the same seed, byte for byte."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.execute.work import FAULT_ENV
from transfer_influence.pipeline.status import study_status
from transfer_influence.study.integrity import QUARANTINE_DIR

from .conftest import tiny_config_dict, write_config

M = 12
CONFIG = tiny_config_dict(
    num_models=M, **{"execution.executor": "process", "execution.workers": 2, "baselines.repeats": 0}
)
CONSOLIDATED_ARRAYS = ("masks", "source_accuracy", "target_accuracy", "outputs_p_true", "outputs_correct",
                       "outputs_raw_margin", "outputs_softmax_margin")


def _cli(*args: str, **kwargs) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "transfer_influence.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def run_to_the_end(cfg: Path, study: Path, env: dict[str, str] | None = None) -> str:
    proc = _cli("run", str(cfg), "--out", str(study), env=env)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    return out


def subset_files(study: Path) -> list[str]:
    return sorted(p.name for p in (study / "runs").glob("subset-*.npz"))


def consolidated(study: Path) -> dict[str, np.ndarray]:
    return {name: np.load(study / "consolidated" / f"{name}.npy") for name in CONSOLIDATED_ARRAYS}


def assert_complete_and_equal_to(study: Path, reference: dict[str, np.ndarray]) -> None:
    assert subset_files(study) == [f"subset-{i:06d}.npz" for i in range(M)]
    with np.load(study / "consolidated" / "completed.npz") as flags:
        assert flags["completed"].tolist() == [True] * M
    arrays = consolidated(study)
    for name, expected in reference.items():
        assert arrays[name].shape == expected.shape, name
        np.testing.assert_array_equal(arrays[name], expected, err_msg=name)
    status = study_status(study)
    assert len(status.done) == M and not status.failed and not status.missing and not status.running


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """An uninterrupted study (the ground truth), its config file and its consolidated arrays."""
    folder = tmp_path_factory.mktemp("reference")
    cfg = write_config(folder / "c.yaml", CONFIG)
    study = folder / "study"
    run_to_the_end(cfg, study)
    return cfg, study, consolidated(study)


def test_worker_killed_mid_run_is_run_again(tmp_path: Path, reference) -> None:
    cfg, _, expected = reference
    study = tmp_path / "study"
    # The worker hangs inside subset-000005 (once); its own running marker names its pid.
    env = {**os.environ, FAULT_ENV: "subset-000005:hang"}
    proc = _cli("run", str(cfg), "--out", str(study), env=env)
    marker = study / "running" / "subset-000005.json"
    deadline = time.time() + 180
    while not (study / ".hung-subset-000005").exists() and time.time() < deadline:
        time.sleep(0.05)
    worker_pid = json.loads(marker.read_text())["pid"]
    assert worker_pid != proc.pid
    os.kill(worker_pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "subset-000005 attempt 1 of 3 failed: its worker process died" in out
    assert_complete_and_equal_to(study, expected)
    assert not (study / "runs" / "subset-000005.failed.json").exists()  # a retried success is no failure


def test_driver_killed_mid_study_then_a_damaged_survivor(tmp_path: Path, reference) -> None:
    cfg, _, expected = reference
    study = tmp_path / "study"
    proc = _cli("run", str(cfg), "--out", str(study), start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not ((study / "runs").exists() and len(subset_files(study)) >= 3):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    survivors = subset_files(study)
    assert 3 <= len(survivors) < M, "the kill should land mid-study"
    # Never consolidated: the damaged file is caught when it is first read.
    victim = study / "runs" / survivors[1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    status = study_status(study)
    while status.running and time.time() < deadline:  # the killed workers may take a moment to die
        time.sleep(0.05)
        status = study_status(study)
    assert not status.running and not status.study_locked  # killed workers' markers are stale, not running
    assert len(status.done) == len(survivors)

    out = run_to_the_end(cfg, study)
    assert f"moved runs/{survivors[1]} aside" in out and "truncated or corrupt" in out
    assert_complete_and_equal_to(study, expected)
    assert len(list((study / "runs" / QUARANTINE_DIR).glob("*.reason.txt"))) == 1


def test_garbage_truncated_foreign_and_duplicate_files_are_moved_aside_and_rerun(tmp_path: Path, reference) -> None:
    cfg, finished, expected = reference
    study = tmp_path / "study"
    shutil.copytree(finished, study)  # a finished, consolidated study
    other_cfg = write_config(tmp_path / "other.yaml", tiny_config_dict(seed=99, num_models=8, **{"baselines.repeats": 0}))
    other = tmp_path / "other"
    run_to_the_end(other_cfg, other)
    runs = study / "runs"
    (runs / "subset-000001.npz").write_bytes(os.urandom((runs / "subset-000001.npz").stat().st_size))
    with open(runs / "subset-000002.npz", "r+b") as handle:
        handle.truncate(1000)
    shutil.copyfile(other / "runs" / "subset-000003.npz", runs / "subset-000003.npz")
    shutil.copyfile(runs / "subset-000004.npz", runs / "subset-000006.npz")  # a duplicate under another name
    shutil.copyfile(runs / "subset-000007.npz", runs / "subset-000007 (1).npz")  # a stray copy

    out = run_to_the_end(cfg, study)
    assert "4 to go" in out
    for name, why in [
        ("subset-000001.npz", "truncated or corrupt"),
        ("subset-000002.npz", "truncated or corrupt"),
        ("subset-000003.npz", "written by another study"),
        ("subset-000006.npz", "holds run 'subset-000004'"),
        ("subset-000007 (1).npz", "holds run 'subset-000007'"),
    ]:
        assert f"moved runs/{name} aside" in out and why in out, name
    assert_complete_and_equal_to(study, expected)
    reasons = sorted(p.read_text().split(":")[0] for p in (runs / QUARANTINE_DIR).glob("*.reason.txt"))
    assert reasons == ["subset-000001.npz", "subset-000002.npz", "subset-000003.npz", "subset-000006.npz",
                       "subset-000007 (1).npz"]
    out = run_to_the_end(cfg, study)  # nothing left: every file now passes
    assert "0 run now" in out and "moved" not in out
