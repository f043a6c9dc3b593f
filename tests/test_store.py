"""The study store: consolidated arrays sized to the finished runs, numerics in the results key,
a consolidation lock apart from the run lock, durable atomic writes, temp-file cleanup, and
studies read without writing a byte.

Most tests build a synthetic study (the store's own files, with outputs drawn from a seeded
generator per run index), so every consolidated or read row can be checked against the values its
run file holds, without training.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from transfer_influence.errors import InputError, StudyMismatchError
from transfer_influence.study import atomic, results as results_module
from transfer_influence.study.config import StudyConfig, parse_config
from transfer_influence.study.design import RunSpec
from transfer_influence.study.outputs import OUTPUT_KINDS
from transfer_influence.study.results import consolidate, grown_capacity, open_study
from transfer_influence.study.store import (
    CONSOLIDATE_LOCK_FILE,
    CONSOLIDATED_DIR,
    STUDY_FILE,
    StudyStore,
    study_lock,
)
from transfer_influence.study.views import build_study_data, save_study_data

from .conftest import tiny_config_dict

NUM_CLASSES = 6
NUM_TARGETS = 20
CPU = {"device": "cpu", "bf16_autocast": False}
FINGERPRINTS = {"target_test": "synthetic"}
REPO = Path(__file__).resolve().parents[1]


def synthetic_config(num_models: int = 100_000, **overrides: Any) -> StudyConfig:
    return parse_config(tiny_config_dict(num_models=num_models, **overrides))


def expected_run(index: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """The mask, outputs and accuracies of synthetic run ``index`` (ground truth for every check)."""
    rng = np.random.default_rng([7, index])
    mask = rng.random(NUM_CLASSES) < 0.5
    outputs = {kind: rng.random(NUM_TARGETS).astype(np.float32) for kind in OUTPUT_KINDS}
    accuracy = {"source_accuracy": float(rng.random()), "target_accuracy": float(rng.random())}
    return mask, outputs, accuracy


def make_study(path: Path, config: StudyConfig | None = None, numerics: dict[str, Any] = CPU) -> StudyStore:
    store = StudyStore.create_or_open(path, config or synthetic_config(), numerics, FINGERPRINTS, extra={})
    np.savez(
        store.data_path,
        target_test__labels=np.arange(NUM_TARGETS) % 3,
        target_test__ids=np.asarray([f"t{j}" for j in range(NUM_TARGETS)]),
        target_test__classes=np.asarray(["x", "y", "z"]),
        source_train__classes=np.asarray([f"c{k}" for k in range(NUM_CLASSES)]),
    )
    return store


def add_runs(store: StudyStore, indices: range | list[int], kind: str = "subset") -> None:
    for index in indices:
        mask, outputs, accuracy = expected_run(index)
        store.write_run(RunSpec(kind, index, mask, seed=index), outputs, accuracy)  # type: ignore[arg-type]


def assert_results_match_runs(results: Any, indices: list[int]) -> None:
    """Every row the results hold is exactly its run's file, and exactly ``indices`` are held."""
    assert results.run_indices.tolist() == indices
    for kind in OUTPUT_KINDS:
        outputs = np.asarray(results.outputs(kind))
        assert outputs.shape == (len(indices), NUM_TARGETS)
        for row, index in enumerate(indices):
            np.testing.assert_array_equal(outputs[row], expected_run(index)[1][kind])
    for row, index in enumerate(indices):
        mask, _, accuracy = expected_run(index)
        np.testing.assert_array_equal(results.masks[row], mask)
        assert results.source_accuracy[row] == np.float32(accuracy["source_accuracy"])
        assert results.target_accuracy[row] == np.float32(accuracy["target_accuracy"])


def array_rows(study: Path) -> dict[str, int]:
    folder = study / CONSOLIDATED_DIR
    rows = {p.stem: np.load(p, mmap_mode="r").shape[0] for p in folder.glob("*.npy")}
    with np.load(folder / "completed.npz") as flags:
        rows["completed"] = flags["completed"].size
    return rows


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder below ``folder`` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted([folder, *folder.rglob("*")])
    }


# ---- A: consolidation sized to the finished runs -------------------------------------------------


def test_consolidated_arrays_hold_the_finished_runs_not_num_models(tmp_path: Path) -> None:
    study = tmp_path / "pilot"
    store = make_study(study, synthetic_config(num_models=100_000))
    add_runs(store, range(5))
    consolidate(store)
    assert set(array_rows(study).values()) == {5}
    outputs_file = study / CONSOLIDATED_DIR / "outputs_p_true.npy"
    assert outputs_file.stat().st_size < 5 * NUM_TARGETS * 4 + 4096  # 5 rows and a header, not 100,000 rows

    add_runs(store, range(5, 12))
    consolidate(store)  # 12 rows needed: at least 1.5 × 5
    assert set(array_rows(study).values()) == {12}
    add_runs(store, [12])
    consolidate(store)  # 13 needed: grows geometrically to 18, not one row at a time
    assert set(array_rows(study).values()) == {18}
    assert_results_match_runs(open_study(study), list(range(13)))


def test_rows_without_a_flag_are_never_read(tmp_path: Path) -> None:
    study = tmp_path / "study"
    store = make_study(study, synthetic_config(num_models=10))
    add_runs(store, [0, 1, 6])
    results = open_study(study)
    assert set(array_rows(study).values()) == {7}  # rows 2..5 exist but were never written
    assert_results_match_runs(results, [0, 1, 6])


def test_capacity_grows_geometrically_and_stops_at_the_planned_models() -> None:
    assert grown_capacity(0, 300, 100_000) == 300  # a pilot's first consolidation holds its runs
    assert grown_capacity(300, 301, 100_000) == 450
    assert grown_capacity(450, 301, 100_000) == 450  # no growth while the rows fit
    assert grown_capacity(80, 90, 100) == 100  # a normal study ends with exactly its rows
    assert grown_capacity(100, 120, 100) == 150  # extended past num_models


# ---- B: numerics in the results key ------------------------------------------------------------


def test_reopening_a_cpu_study_as_cuda_with_autocast_is_refused(tmp_path: Path) -> None:
    study = tmp_path / "study"
    config = synthetic_config()
    make_study(study, config)
    assert json.loads((study / STUDY_FILE).read_text())["numerics"] == CPU
    gpu = config.with_overrides(**{"execution.amp": True, "execution.device": "auto"})
    with pytest.raises(StudyMismatchError) as refusal:
        StudyStore.create_or_open(study, gpu, gpu.run_numerics("cuda"), FINGERPRINTS, extra={})
    message = str(refusal.value)
    assert "numerics.device: study has 'cpu', this run has 'cuda'" in message
    assert "numerics.bf16_autocast: study has False, this run has True" in message
    # CUDA without autocast differs too: the device alone changes the numbers.
    with pytest.raises(StudyMismatchError, match="numerics.device"):
        StudyStore.create_or_open(study, config, config.run_numerics("cuda"), FINGERPRINTS, extra={})
    # Writers that take the study's own config (single runs) check the numerics alone.
    store = StudyStore.open(study)
    store.check_numerics(CPU)
    with pytest.raises(StudyMismatchError, match="resolves to 'cpu' with bf16 autocast off"):
        store.check_numerics(gpu.run_numerics("cuda"))


def test_amp_on_a_cpu_changes_nothing_and_is_accepted(tmp_path: Path) -> None:
    study = tmp_path / "study"
    config = synthetic_config()
    make_study(study, config)
    amp = config.with_overrides(**{"execution.amp": True})
    assert amp.run_numerics("cpu") == CPU
    assert amp.results_key(amp.run_numerics("cpu")) == config.results_key(CPU)
    assert amp.results_key(amp.run_numerics("cuda")) != config.results_key(config.run_numerics("cuda"))
    reopened = StudyStore.create_or_open(study, amp, amp.run_numerics("cpu"), FINGERPRINTS, extra={})
    assert reopened.metadata["config"]["execution"]["amp"] is True


def test_run_resolves_the_device_before_any_work(tmp_path: Path, tiny_config, monkeypatch) -> None:
    """`run` resolves execution.device on this machine: a CUDA request without a GPU is refused
    before the directory is made, and a machine whose 'auto' is CUDA cannot join a CPU study."""
    from transfer_influence.pipeline import run as run_module
    from transfer_influence.pipeline.run import run_study

    with pytest.raises(InputError, match="no CUDA device"):
        run_study(tiny_config.with_overrides(**{"execution.device": "cuda"}), tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()

    study = tmp_path / "study"
    data = build_study_data(tiny_config)
    store = StudyStore.create_or_open(study, tiny_config, CPU, data.fingerprints(), extra={})
    save_study_data(data, store.data_path)
    monkeypatch.setattr(run_module, "resolved_device_type", lambda requested: "cuda")
    gpu = tiny_config.with_overrides(**{"execution.device": "auto", "execution.amp": True})
    with pytest.raises(StudyMismatchError, match="numerics.bf16_autocast: study has False, this run has True"):
        run_study(gpu, study, progress=False)
    assert not list((study / "runs").iterdir())


def test_a_format_1_study_is_read_and_upgraded_when_its_device_is_known(tmp_path: Path) -> None:
    study = tmp_path / "old"
    config = synthetic_config(num_models=10)
    store = make_study(study, config)
    add_runs(store, range(3))
    legacy = dict(store.metadata, format_version=1, results_key=config.results_key())
    del legacy["numerics"]
    (study / STUDY_FILE).write_text(json.dumps(legacy))
    assert_results_match_runs(open_study(study), [0, 1, 2])
    upgraded = StudyStore.create_or_open(study, config, CPU, FINGERPRINTS, extra={})
    assert upgraded.metadata["format_version"] == 2 and upgraded.metadata["numerics"] == CPU
    assert upgraded.metadata["results_key"] == config.results_key(CPU)

    legacy["config"]["execution"]["device"] = "auto"
    (study / STUDY_FILE).write_text(json.dumps(legacy))
    with pytest.raises(StudyMismatchError, match="did not record which device"):
        StudyStore.create_or_open(study, config, CPU, FINGERPRINTS, extra={})


# ---- C: locks, atomic durable writes, temp files, read-only studies -----------------------------


def test_consolidation_holds_its_own_lock_and_not_the_run_lock(tmp_path: Path, monkeypatch) -> None:
    study = tmp_path / "study"
    store = make_study(study)
    add_runs(store, range(4))
    seen: list[bool] = []
    real_check_run = StudyStore.check_run  # consolidation reads each run file through its check

    def probing_check_run(self: StudyStore, run_id: str, config=None):  # type: ignore[no-untyped-def]
        fd = os.open(study / CONSOLIDATE_LOCK_FILE, os.O_RDONLY | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append(False)  # nobody held it
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            seen.append(True)
        finally:
            os.close(fd)
        return real_check_run(self, run_id, config)

    monkeypatch.setattr(StudyStore, "check_run", probing_check_run)
    with study_lock(study):  # a running study holds the run lock; a reader still consolidates
        results = open_study(study)
    assert seen == [True] * 4
    assert_results_match_runs(results, [0, 1, 2, 3])


def test_a_reader_consolidating_beside_a_writer_sees_only_written_rows(tmp_path: Path) -> None:
    """A writer process adds run files and consolidates after each few while this process
    consolidates and reads: every row any reader sees is its run's, and none is lost."""
    study = tmp_path / "study"
    make_study(study)
    total = 60
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from tests.test_store import add_runs; "
            "from transfer_influence.study.store import StudyStore; "
            "from transfer_influence.study.results import consolidate; "
            "store = StudyStore.open(Path(sys.argv[1]))\n"
            f"for i in range({total}):\n"
            "    add_runs(store, [i])\n"
            "    if i % 3 == 2: consolidate(store)",
            str(study),
        ],
        cwd=REPO,
    )
    reads = 0
    while writer.poll() is None or reads == 0:
        results = open_study(study)
        indices = results.run_indices.tolist()
        assert indices == list(range(len(indices)))  # runs finish in order here
        assert_results_match_runs(results, indices)
        reads += 1
    assert writer.returncode == 0
    assert_results_match_runs(open_study(study), list(range(total)))
    with np.load(study / CONSOLIDATED_DIR / "completed.npz") as flags:
        assert np.flatnonzero(flags["completed"]).tolist() == list(range(total))


def test_growth_writes_under_unique_temporary_names(tmp_path: Path, monkeypatch) -> None:
    study = tmp_path / "study"
    store = make_study(study)
    created: list[Path] = []
    real_open_memmap = np.lib.format.open_memmap

    def recording_open_memmap(filename, mode="r+", *args, **kwargs):  # type: ignore[no-untyped-def]
        if mode == "w+":  # a new array file (np.load opens existing ones through here too)
            created.append(Path(filename))
        return real_open_memmap(filename, mode, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", recording_open_memmap)
    for batch in (range(2), range(2, 5)):
        add_runs(store, batch)
        consolidate(store)
    assert len(created) == 2 * (3 + len(OUTPUT_KINDS))
    assert len(set(created)) == len(created)
    for path in created:
        assert path.parent == study / CONSOLIDATED_DIR
        assert path.name.startswith(".") and path.name.endswith(".tmp") and not path.exists()
    assert sorted(p.name for p in (study / CONSOLIDATED_DIR).iterdir()) == sorted(
        ["completed.npz", "masks.npy", "source_accuracy.npy", "target_accuracy.npy"]
        + [f"outputs_{k}.npy" for k in OUTPUT_KINDS]
    )


def test_every_store_write_is_fsynced_with_its_folder(tmp_path: Path, tiny_config, monkeypatch) -> None:
    """study.json, run files, flags and data.npz: the file's data, then the folder holding its name."""
    synced: list[tuple[int, bool]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        info = os.fstat(fd)
        synced.append((info.st_ino, os.path.isdir(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    study = tmp_path / "study"
    store = make_study(study)
    add_runs(store, [0])
    consolidate(store)
    save_study_data(build_study_data(tiny_config), tmp_path / "data.npz")
    atomic.atomic_write_text(study / "timings.json", "[]")
    for path in [
        study / STUDY_FILE,
        study / "runs" / "subset-000000.npz",
        study / CONSOLIDATED_DIR / "completed.npz",
        study / CONSOLIDATED_DIR / "outputs_p_true.npy",
        tmp_path / "data.npz",
        study / "timings.json",
    ]:
        file_sync = synced.index((path.stat().st_ino, False))
        folder_syncs = [i for i, entry in enumerate(synced) if entry == (path.parent.stat().st_ino, True)]
        assert any(i > file_sync for i in folder_syncs), f"{path}: its folder is not fsynced after it"


def test_atomic_writes_keep_the_usual_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        atomic.atomic_write_text(tmp_path / "shared.json", "{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o644


def test_temp_files_of_killed_writers_are_removed_under_the_locks(tmp_path: Path, tiny_config) -> None:
    from transfer_influence.pipeline.run import run_study

    study = tmp_path / "study"
    config = tiny_config.with_overrides(num_models=8, **{"baselines.repeats": 0})
    data = build_study_data(config)
    store = StudyStore.create_or_open(study, config, CPU, data.fingerprints(), extra={})
    save_study_data(data, store.data_path)
    (study / CONSOLIDATED_DIR).mkdir()
    leftovers = [
        study / "runs" / ".subset-000003.npz.4242.0a1b2c.tmp",
        study / ".study.json.4242.0a1b2c.tmp",
        study / "data.npz.tmp",  # the fixed name older versions used
        study / CONSOLIDATED_DIR / ".masks.npy.4242.0a1b2c.tmp",
        study / CONSOLIDATED_DIR / "masks.grow.npy",
    ]
    for path in leftovers:
        path.write_bytes(b"partial")
    run_study(config, study, progress=False)
    assert [p for p in leftovers if p.exists()] == []
    assert sorted(p.name for p in (study / "runs").iterdir()) == [f"subset-{i:06d}.npz" for i in range(8)]


def test_read_only_open_changes_no_file(tmp_path: Path) -> None:
    study = tmp_path / "study"
    store = make_study(study, synthetic_config(num_models=10))
    add_runs(store, range(4))
    consolidate(store)
    add_runs(store, range(4, 7))  # finished but not consolidated
    add_runs(store, [0], kind="all_source")
    before = snapshot(tmp_path)
    results = open_study(study, read_only=True)
    assert_results_match_runs(results, list(range(7)))
    assert results.baselines["all_source"].size == 1
    assert snapshot(tmp_path) == before
    # Reading with writes allowed consolidates and gives the same results.
    assert_results_match_runs(open_study(study), list(range(7)))
    assert snapshot(tmp_path) != before


def test_a_study_this_process_cannot_write_is_read_without_writing(tmp_path: Path, monkeypatch) -> None:
    study = tmp_path / "study"
    store = make_study(study, synthetic_config(num_models=10))
    add_runs(store, range(5))  # never consolidated: no consolidated/ folder at all
    before = snapshot(tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode, *args, **kwargs: False)
    assert_results_match_runs(open_study(study), list(range(5)))
    assert snapshot(tmp_path) == before


def test_a_consolidation_killed_before_its_flags_marks_nothing(tmp_path: Path, monkeypatch) -> None:
    study = tmp_path / "study"
    store = make_study(study, synthetic_config(num_models=10))
    add_runs(store, range(3))
    consolidate(store)
    add_runs(store, range(3, 6))

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # stands for a kill after the rows, before the flags

    monkeypatch.setattr(results_module, "atomic_write_npz", killed)
    with pytest.raises(KeyboardInterrupt):
        consolidate(store)
    with np.load(study / CONSOLIDATED_DIR / "completed.npz") as flags:
        assert np.flatnonzero(flags["completed"]).tolist() == [0, 1, 2]
    assert_results_match_runs(open_study(study, read_only=True), list(range(6)))
    monkeypatch.undo()
    assert_results_match_runs(open_study(study), list(range(6)))
