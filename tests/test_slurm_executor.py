"""The SLURM executor: a tiny study through submitit's in-process DebugExecutor (equal to the same
study run serially), and the job arrays submitted to a fake ``sbatch`` that records each script:
an array covers exactly the runs missing from the store, with the configured resources as
``#SBATCH`` lines; a task that dies is submitted again, alone with the other missing runs, until
``execution.max_attempts`` is spent. Bad input (submitit missing, no SLURM commands, retrains of a
sweep) is one clear error each.

The fake ``sacct`` reports every array task FAILED (no task of the fake cluster ever runs); what a
task would have written (its run file, submitit's result file) the test stages for the fake
``sbatch`` to copy into the study.
"""

from __future__ import annotations

import io
import pickle
import re
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.errors import ConfigError, RunFailedError
from transfer_influence.execute import make_executor
from transfer_influence.pipeline.run import run_study
from transfer_influence.study.config import parse_config
from transfer_influence.study.design import RunSpec, subset_runs
from transfer_influence.study.store import StudyStore
from transfer_influence.train.worker import Worker

from .conftest import tiny_config_dict

pytest.importorskip("submitit", reason="the SLURM extra is not installed (pip install '.[slurm]'; `make test` installs it)")

MODELS = 4

FAKE_SBATCH = """#!/bin/bash
# Records the script, copies into the study what the test staged for this submission (the files
# its tasks would write), answers like sbatch.
n=$(ls "$RECORD" | grep -c '^sbatch-' || true)
n=$((n + 1))
cp "$1" "$RECORD/sbatch-$n.sh"
if [ -d "$RECORD/on-$n" ]; then cp -r "$RECORD/on-$n"/. "$STUDY"/; fi
echo "Submitted batch job $((4000 + n))"
"""
FAKE_SACCT = """#!/bin/bash
# Every task of every array asked about has FAILED.
echo "JobID|State|NodeList"
while [ $# -gt 0 ]; do
  if [ "$1" = "-j" ]; then echo "$2_[0-9999]|FAILED|node1"; shift; fi
  shift
done
"""
FAKE_NOOP = "#!/bin/bash\nexit 0\n"


def slurm_dict(**overrides: object) -> dict:
    return tiny_config_dict(**{"num_models": MODELS, "execution.executor": "slurm", **overrides})


def serial_study(path: Path, models: int) -> StudyStore:
    run_study(parse_config(tiny_config_dict(num_models=models)), path, progress=False, stream=io.StringIO())
    return StudyStore.open(path)


@pytest.fixture(scope="module")
def finished_serial_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished study of MODELS subset runs, run serially (the reference, and a study to extend)."""
    path = tmp_path_factory.mktemp("serial") / "study"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFER_INFLUENCE_CACHE", str(tmp_path_factory.getbasetemp() / "glyph-cache"))
        serial_study(path, MODELS)
    return path


# ---- the DebugExecutor: a whole study, in this process -------------------------------------------


def test_debug_cluster_runs_a_tiny_study_equal_to_a_serial_one(tmp_path: Path, finished_serial_study: Path) -> None:
    study = tmp_path / "study"
    stream = io.StringIO()
    report = run_study(parse_config(slurm_dict(**{"execution.slurm.cluster": "debug"})), study, progress=False,
                       stream=stream)
    assert "a job array of 6 runs" in stream.getvalue()
    assert sorted(s.run_id for s in report.executed) == sorted(StudyStore.open(finished_serial_study).finished_run_ids())
    store, reference = StudyStore.open(study), StudyStore.open(finished_serial_study)
    for summary in report.executed:
        mask, outputs, record = store.read_run(summary.run_id)
        ref_mask, ref_outputs, _ = reference.read_run(summary.run_id)
        assert np.array_equal(mask, ref_mask)
        assert summary.target_accuracy == record["target_accuracy"]
        for kind, values in outputs.items():
            np.testing.assert_allclose(values, ref_outputs[kind], rtol=1e-5, atol=1e-6)


def test_debug_task_whose_run_raises_every_attempt_stops_the_study_naming_it(
    tmp_path: Path, finished_serial_study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = tmp_path / "study"
    shutil.copytree(finished_serial_study, study)
    original = Worker.run

    def broken(self, spec):  # type: ignore[no-untyped-def]
        if spec.run_id == "subset-000005":
            raise RuntimeError("simulated broken run")
        return original(self, spec)

    monkeypatch.setattr(Worker, "run", broken)
    config = parse_config(slurm_dict(num_models=MODELS + 2, **{"execution.slurm.cluster": "debug"}))
    with pytest.raises(RunFailedError, match=r"run subset-000005 failed in its array task .*simulated broken run"):
        run_study(config, study, progress=False, stream=io.StringIO())
    finished = StudyStore.open(study).finished_run_ids()
    assert "subset-000004" in finished and "subset-000005" not in finished  # the task before it was kept


# ---- a fake sbatch: what is submitted -----------------------------------------------------------


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sbatch, srun, sacct and scancel on PATH; returns the folder where the scripts are recorded."""
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    for name, text in {"sbatch": FAKE_SBATCH, "sacct": FAKE_SACCT, "srun": FAKE_NOOP, "scancel": FAKE_NOOP}.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("RECORD", str(record))
    return record


def submitted_runs(log_dir: Path, job_id: int) -> list[tuple[str, int]]:
    """(kind, index) of each task of array ``job_id``, from the pickles submitit wrote for it."""
    runs = []
    for task in range(len(list(log_dir.glob(f"{job_id}_*/{job_id}_*_submitted.pkl")))):
        with open(log_dir / f"{job_id}_{task}" / f"{job_id}_{task}_submitted.pkl", "rb") as handle:
            submission = pickle.load(handle)
        assert submission.function.__name__ == "run_single"
        _, kind, index = submission.args
        runs.append((kind, index))
    return runs


def test_arrays_cover_exactly_the_missing_runs_with_the_configured_resources(
    tmp_path: Path, finished_serial_study: Path, fake_slurm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = tmp_path / "study"
    shutil.copytree(finished_serial_study, study)
    monkeypatch.setenv("STUDY", str(study))
    # Subset run 4 of a 7-model study "finishes" during the first array: its file appears in the store.
    shutil.copytree(finished_serial_study, tmp_path / "reference")
    reference = serial_study(tmp_path / "reference", MODELS + 1)
    (fake_slurm / "on-1" / "runs").mkdir(parents=True)
    shutil.copy(reference.run_path("subset-000004"), fake_slurm / "on-1" / "runs")
    settings = {
        "execution.max_attempts": 2,
        "execution.slurm.partition": "gpu",
        "execution.slurm.account": "vision",
        "execution.slurm.cpus_per_task": 3,
        "execution.slurm.gpus_per_task": 1,
        "execution.slurm.mem_gb": 6,
        "execution.slurm.time_min": 30,
        "execution.slurm.array_parallelism": 2,
        "execution.slurm.additional": {"qos": "high"},
        "execution.slurm.setup": ["source /opt/venv/bin/activate"],
        "execution.slurm.poll_s": 0.05,
    }
    stream = io.StringIO()
    with pytest.raises(RunFailedError, match=r"run subset-000005 failed 2 times \(last: its array task 4002_0 ended"):
        run_study(parse_config(slurm_dict(num_models=MODELS + 3, **settings)), study, progress=False, stream=stream)

    log_dir = study / "slurm"
    assert submitted_runs(log_dir, 4001) == [("subset", 4), ("subset", 5), ("subset", 6)]
    assert submitted_runs(log_dir, 4002) == [("subset", 5), ("subset", 6)]  # only what the store still lacks
    assert not (fake_slurm / "sbatch-3.sh").exists()
    assert "run subset-000005 attempt 1 of 2 failed: its array task 4001_1 ended without writing the run file" in (
        stream.getvalue()
    )
    first, second = ((fake_slurm / f"sbatch-{n}.sh").read_text() for n in (1, 2))
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --account=vision",
        "#SBATCH --cpus-per-task=3",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --mem=6GB",
        "#SBATCH --time=30",
        "#SBATCH --qos=high",
        "#SBATCH --job-name=transfer-influence-tiny",
        "source /opt/venv/bin/activate",
    ]:
        assert line in first.splitlines(), line
    assert "#SBATCH --array=0-2%2" in first.splitlines()
    assert "#SBATCH --array=0-1%2" in second.splitlines()
    assert re.search(r"^export GLIBC_TUNABLES=.*glibc\.malloc\.mmap_threshold=4294967296", first, re.M)
    assert f"{sys.executable} -u -m submitit.core._submit {log_dir}" in first


def test_task_whose_run_raised_ends_the_study_without_another_array(
    tmp_path: Path, finished_serial_study: Path, fake_slurm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = tmp_path / "study"
    shutil.copytree(finished_serial_study, study)
    monkeypatch.setenv("STUDY", str(study))
    # Task 1 of the first array (subset run 4) raised: submitit's result file holds its traceback.
    result = fake_slurm / "on-1" / "slurm" / "4001_1" / "4001_1_0_result.pkl"
    result.parent.mkdir(parents=True)
    traceback = "Traceback (most recent call last):\n  ...\nRunFailedError: run subset-000004 failed 3 times\n"
    result.write_bytes(pickle.dumps(("error", traceback)))
    config = parse_config(slurm_dict(num_models=MODELS + 2, **{"execution.slurm.poll_s": 0.05}))
    specs = [s for s in subset_runs(config, 8, range(MODELS, MODELS + 2))]
    specs = [specs[1], specs[0]]  # subset-000005 is task 0, subset-000004 task 1
    with pytest.raises(RunFailedError, match=r"run subset-000004 failed in its array task 4001_1 after its attempts "
                       r"\(execution.max_attempts\): RunFailedError: run subset-000004 failed 3 times; task log: "):
        make_executor(config, study, 2).execute(specs, lambda summary: False)
    assert [p.name for p in fake_slurm.glob("sbatch-*")] == ["sbatch-1.sh"]


def test_study_with_nothing_missing_submits_nothing(
    tmp_path: Path, finished_serial_study: Path, fake_slurm: Path
) -> None:
    study = tmp_path / "study"
    shutil.copytree(finished_serial_study, study)
    executor = make_executor(parse_config(slurm_dict()), study, 1)
    specs = subset_runs(parse_config(slurm_dict()), 8, range(MODELS))
    assert executor.execute(specs, lambda summary: False) == []
    assert list(fake_slurm.glob("sbatch-*")) == []


# ---- bad input: one clear error each ------------------------------------------------------------


def test_missing_submitit_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ConfigError, match=r"pip install 'transfer-influence\[slurm\]'"):
        make_executor(parse_config(slurm_dict()), tmp_path, 4)


def test_slurm_commands_missing_from_path_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"sbatch, srun, sacct is not on PATH: run .* on a SLURM login node"):
        make_executor(parse_config(slurm_dict()), tmp_path, 4)


def test_retrains_of_a_sweep_are_refused(tmp_path: Path) -> None:
    executor = make_executor(parse_config(slurm_dict(**{"execution.slurm.cluster": "debug"})), tmp_path, 1)
    retrain = RunSpec("retrain", 0, np.ones(8, dtype=bool), 7, name="without-A-r0")
    with pytest.raises(ConfigError, match=r"numbered runs only, not retrain-without-A-r0"):
        executor.execute([retrain], lambda summary: False)
