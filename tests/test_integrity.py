"""Run-file checks (checksum, results key, run id, legacy files), incremental consolidation and
audits, failure records, and the `status` command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.cli import main as cli_main
from transfer_influence.errors import RunFailedError
from transfer_influence.execute.work import FAULT_ENV
from transfer_influence.pipeline.run import run_study
from transfer_influence.pipeline.status import format_status, study_status
from transfer_influence.study import store as store_module
from transfer_influence.study.design import RunSpec, design_mask, train_seed
from transfer_influence.study.integrity import QUARANTINE_DIR, check_run_file
from transfer_influence.study.results import audit_runs, consolidate, open_study
from transfer_influence.study.store import RUNNING_DIR, StudyStore, mark_running
from transfer_influence.train.worker import Worker

from .conftest import tiny_config_dict, write_config
from .test_store import NUM_CLASSES, add_runs, assert_results_match_runs, expected_run, make_study, synthetic_config


def rewrite(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Rewrite a run file as a valid archive with ``change`` applied to its members."""
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    change(members)
    with open(path, "wb") as handle:
        np.savez(handle, **members)


def quarantined(study: Path) -> list[str]:
    return sorted(p.read_text().split(":")[0] for p in (study / "runs" / QUARANTINE_DIR).glob("*.reason.txt"))


# ---- run-file checks --------------------------------------------------------------------------


def test_a_valid_archive_with_changed_numbers_fails_its_checksum(tmp_path: Path, capsys) -> None:
    store = make_study(tmp_path / "study", synthetic_config(num_models=10))
    add_runs(store, range(4))
    keys = store.accepted_results_keys()
    assert check_run_file(store.run_path("subset-000001"), keys).ok
    rewrite(store.run_path("subset-000001"), lambda m: m["output__p_true"].__setitem__(0, 0.5))
    check = check_run_file(store.run_path("subset-000001"), keys)
    assert check.problem == "member output__p_true does not match its checksum"

    def better_accuracy(members: dict[str, np.ndarray]) -> None:
        record = json.loads(str(members["record"]))
        record["target_accuracy"] = 0.99
        members["record"] = np.asarray(json.dumps(record))

    rewrite(store.run_path("subset-000002"), better_accuracy)
    assert check_run_file(store.run_path("subset-000002"), keys).problem == "its record does not match its checksum"
    results = open_study(store.path)
    assert_results_match_runs(results, [0, 3])  # never averaged in
    assert quarantined(store.path) == ["subset-000001.npz", "subset-000002.npz"]
    assert "moved runs/subset-000001.npz aside" in capsys.readouterr().err


def test_old_run_files_without_checksum_or_key_still_read(tmp_path: Path) -> None:
    """Files written before checksums: valid when whole and named right; another study's old file is
    told by its mask and seed, which are not the ones this study's design gives that run."""
    config = synthetic_config(num_models=10)
    store = make_study(tmp_path / "study", config)
    for index in range(3):
        mask = design_mask(config, index, NUM_CLASSES)
        _, outputs, accuracy = expected_run(index)
        store.write_run(RunSpec("subset", index, mask, train_seed(config, index)), outputs, accuracy)

        def strip(members: dict[str, np.ndarray]) -> None:
            record = json.loads(str(members["record"]))
            del record["checksum"], record["results_key"]
            members["record"] = np.asarray(json.dumps(record))

        rewrite(store.run_path(f"subset-{index:06d}"), strip)
    foreign = ~design_mask(config, 2, NUM_CLASSES)
    rewrite(store.run_path("subset-000002"), lambda m: m.__setitem__("mask", foreign))
    results = open_study(store.path)
    assert results.run_indices.tolist() == [0, 1]
    np.testing.assert_array_equal(results.outputs("p_true")[1], expected_run(1)[1]["p_true"])
    assert quarantined(store.path) == ["subset-000002.npz"]


def test_consolidation_reads_only_new_runs_and_the_audit_only_changed_files(tmp_path: Path, monkeypatch) -> None:
    store = make_study(tmp_path / "study", synthetic_config(num_models=20))
    add_runs(store, range(5))
    consolidate(store)
    read: list[str] = []
    real = StudyStore.check_run

    def counting(self: StudyStore, run_id: str, config=None):  # type: ignore[no-untyped-def]
        read.append(run_id)
        return real(self, run_id, config)

    monkeypatch.setattr(StudyStore, "check_run", counting)
    add_runs(store, range(5, 8))
    consolidate(store)
    assert read == ["subset-000005", "subset-000006", "subset-000007"]
    read.clear()
    assert audit_runs(store) == [] and read == []  # every file unchanged since its row was written
    path = store.run_path("subset-000003")
    path.write_bytes(path.read_bytes())  # same bytes, a new write: read again, found good, row kept
    os.utime(path, ns=(0, 0))
    assert audit_runs(store) == [] and read == ["subset-000003"]
    assert_results_match_runs(open_study(store.path), list(range(8)))


def test_a_read_only_reader_skips_a_bad_file_without_moving_it(tmp_path: Path, capsys) -> None:
    store = make_study(tmp_path / "study", synthetic_config(num_models=10))
    add_runs(store, range(3))
    store.run_path("subset-000001").write_bytes(b"garbage")
    results = open_study(store.path, read_only=True)
    assert_results_match_runs(results, [0, 2])
    assert store.run_path("subset-000001").exists() and not (store.path / "runs" / QUARANTINE_DIR).exists()
    assert "ignoring subset-000001.npz" in capsys.readouterr().err


# ---- failure records --------------------------------------------------------------------------


def test_a_run_failing_every_attempt_is_recorded_failed_and_retried_next_time(tmp_path: Path, tiny_config, monkeypatch, capsys) -> None:
    original = Worker.run

    def flaky(self, spec):  # type: ignore[no-untyped-def]
        if spec.run_id == "subset-000002":
            raise RuntimeError("simulated failure")
        return original(self, spec)

    monkeypatch.setattr(Worker, "run", flaky)
    study = tmp_path / "study"
    config = tiny_config.with_overrides(num_models=4, **{"baselines.repeats": 0, "execution.max_attempts": 2})
    with pytest.raises(RunFailedError):
        run_study(config, study, progress=False)
    record = json.loads((study / "runs" / "subset-000002.failed.json").read_text())
    assert record["attempts"] == 2 and record["invocations"] == 1 and record["max_attempts"] == 2
    assert record["last_error"] == "RuntimeError('simulated failure')"
    assert "Traceback" in record["traceback"] and "raise RuntimeError" in record["traceback"]
    assert not record["timed_out"] and len(record["errors"]) == 2
    assert not (study / "runs" / "subset-000002.npz").exists()  # never counted as success

    status = study_status(study)
    assert status.done == ["subset-000000", "subset-000001"] and list(status.failed) == ["subset-000002"]
    assert status.missing == ["subset-000003"] and not status.running
    capsys.readouterr()
    assert cli_main(["status", str(study)]) == 0
    text = capsys.readouterr().out
    assert "2 of 4 runs done, 1 failed, 0 running, 1 missing" in text
    assert "failed  subset-000002 (2 attempts): RuntimeError('simulated failure')" in text

    with pytest.raises(RunFailedError):  # the next run retries it: attempts add up over invocations
        run_study(config, study, progress=False, stream=sys.stdout)
    assert "retrying 1 runs that failed before" in capsys.readouterr().out
    record = json.loads((study / "runs" / "subset-000002.failed.json").read_text())
    assert record["attempts"] == 4 and record["invocations"] == 2 and len(record["errors"]) == 4

    monkeypatch.setattr(Worker, "run", original)
    run_study(config, study, progress=False)
    assert not (study / "runs" / "subset-000002.failed.json").exists()
    status = study_status(study)
    assert len(status.done) == 4 and not status.failed and not status.missing


def test_a_timed_out_run_in_a_worker_process_is_recorded_failed(tmp_path: Path) -> None:
    config = tiny_config_dict(num_models=2, **{
        "execution.executor": "process", "execution.workers": 1, "execution.max_attempts": 1,
        "execution.run_timeout_s": 1.0, "baselines.repeats": 0,
    })
    cfg = write_config(tmp_path / "c.yaml", config)
    study = tmp_path / "study"
    proc = subprocess.run(
        [sys.executable, "-m", "transfer_influence.cli", "run", str(cfg), "--out", str(study), "--quiet"],
        env={**os.environ, FAULT_ENV: "subset-000000:hang-always"}, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode != 0
    record = json.loads((study / "runs" / "subset-000000.failed.json").read_text())
    assert record["timed_out"] and "timed out after 1 s" in record["last_error"] and record["attempts"] == 1
    assert list(study_status(study).failed) == ["subset-000000"]


# ---- status -----------------------------------------------------------------------------------


def test_status_counts_rate_eta_and_tells_live_markers_from_stale_ones(tmp_path: Path) -> None:
    store = make_study(tmp_path / "study", synthetic_config(num_models=10, **{"baselines.repeats": 0}))
    store.metadata["class_names"] = [f"c{k}" for k in range(NUM_CLASSES)]
    store._write_metadata()
    add_runs(store, range(5))
    for index in range(5):  # one run every 30 s: 2 models per minute
        os.utime(store.run_path(f"subset-{index:06d}"), (1000.0 + 30 * index,) * 2)
    mark_running(store.path, "subset-000005")  # this process: alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"run_id": "subset-000006", "host": socket.gethostname(), "pid": int(dead.stdout), "started": 0.0}
    (store.path / RUNNING_DIR / "subset-000006.json").write_text(json.dumps(stale))
    remote = {"run_id": "subset-000007", "host": "elsewhere.invalid", "pid": 1, "started": 1000.0}
    (store.path / RUNNING_DIR / "subset-000007.json").write_text(json.dumps(remote))
    store_module.record_failure(store.path, "subset-000009", [{"error": "OSError('disk')", "timed_out": False}], 3)

    status = study_status(store.path)
    assert status.models_per_minute == pytest.approx(2.0)
    assert status.eta_seconds == pytest.approx(5 / 2.0 * 60)  # 5 runs left at 2 per minute
    assert [r.run_id for r in status.running] == ["subset-000005", "subset-000007"]
    assert [r.alive for r in status.running] == [True, None]
    assert [r.run_id for r in status.stale] == ["subset-000006"]
    assert status.missing == ["subset-000006", "subset-000008"] and list(status.failed) == ["subset-000009"]
    text = format_status(status, now=1060.0)
    assert "5 of 10 runs done, 1 failed, 2 running, 2 missing" in text
    assert "2.00 models per minute, about 2 min 30 s left" in text
    assert "running subset-000007: pid 1 on elsewhere.invalid (another host: not checked), for 1 min 00 s" in text
    assert "stale   subset-000006" in text and "failed  subset-000009 (1 attempts): OSError('disk')" in text
