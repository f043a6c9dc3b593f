"""Executors on a tiny real study: retries reported, run timeouts, a worker-killing run capped at
max_attempts, stop rules that follow the analysis settings, and the single-run ``work`` command.

Faults are injected with the worker's test hook (``FAULT_ENV``): a crash (os._exit) or a hang, once
or on every start, each faulted start leaving a line in a marker file so the starts can be counted.
Tests whose fault would hang a study without a working timeout run the CLI in a subprocess, under a
generous wall-clock guard that only keeps a broken build from hanging the test session.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transfer_influence.cli import main as cli_main
from transfer_influence.errors import RunFailedError
from transfer_influence.evaluate.reliability import ReliabilityCurve
from transfer_influence.execute import RunSummary
from transfer_influence.execute.process import ProcessExecutor
from transfer_influence.execute.work import FAULT_ENV
from transfer_influence.pipeline.run import run_study
from transfer_influence.pipeline.stopping import AnyOf, TimeBudget, stop_rule_for
from transfer_influence.study.config import StudyConfig, parse_config
from transfer_influence.study.design import subset_runs
from transfer_influence.study.results import open_study
from transfer_influence.study.store import StudyStore
from transfer_influence.train.worker import Worker

from .conftest import tiny_config_dict, write_config

BASE_MODELS = 4
"""Subset runs finished in the shared base study (plus one all-source and one random-init baseline)."""

GUARD_S = 300
"""Wall-clock guard for a CLI subprocess: far beyond what a working build needs."""


def base_dict(**overrides: object) -> dict:
    """The base study's config with ``overrides`` (more models, execution and analysis settings)."""
    return tiny_config_dict(**{"num_models": BASE_MODELS, **overrides})


@pytest.fixture(scope="module")
def base_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished tiny study, copied by each test that needs a study to extend."""
    path = tmp_path_factory.mktemp("base") / "study"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFER_INFLUENCE_CACHE", str(tmp_path_factory.getbasetemp() / "glyph-cache"))
        run_study(parse_config(base_dict()), path, progress=False)
    return path


@pytest.fixture
def study(base_study: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "study"
    shutil.copytree(base_study, copy)
    return copy


def config_with(**overrides: object) -> StudyConfig:
    return parse_config(base_dict(**overrides))


def fault_starts(study: Path, run_id: str, hang: bool = False) -> int:
    """How many times the fault hook fired for ``run_id`` (one line per faulted start)."""
    marker = study / f".{'hung' if hang else 'crashed'}-{run_id}"
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def run_cli(args: list[str], fault: str) -> tuple[int, str]:
    """The CLI in a subprocess with the fault hook set; killed (with its workers) past the guard."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "transfer_influence.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, FAULT_ENV: fault},
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=GUARD_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"`{' '.join(args)}` with {FAULT_ENV}={fault} hung past {GUARD_S} s; output:\n{out}")
    return proc.returncode, out


# ---- retries are reported ----------------------------------------------------------------------


def test_serial_retry_is_logged_and_printed_with_run_attempt_and_error(study: Path, monkeypatch, caplog) -> None:
    original = Worker.run
    failed: list[str] = []

    def fails_once(self, spec):
        if spec.run_id == "subset-000005" and not failed:
            failed.append(spec.run_id)
            raise RuntimeError("simulated hiccup")
        return original(self, spec)

    monkeypatch.setattr(Worker, "run", fails_once)
    stream = io.StringIO()
    with caplog.at_level(logging.WARNING, logger="transfer_influence.execute"):
        report = run_study(config_with(num_models=6), study, progress=False, stream=stream)
    expected = "run subset-000005 attempt 1 of 3 failed: RuntimeError('simulated hiccup'); retrying"
    assert [r.getMessage() for r in caplog.records if r.name == "transfer_influence.execute"] == [expected]
    assert expected in stream.getvalue()
    assert {s.run_id: s.attempts for s in report.executed} == {"subset-000004": 1, "subset-000005": 2}


def test_dead_worker_names_its_run_which_alone_is_retried(study: Path, monkeypatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "subset-000005")
    config = config_with(num_models=8, **{"execution.executor": "process", "execution.workers": 2})
    stream = io.StringIO()
    report = run_study(config, study, progress=False, stream=stream)
    assert fault_starts(study, "subset-000005") == 1
    assert "run subset-000005 attempt 1 of 3 failed: its worker process died (exit code 17); retrying" in stream.getvalue()
    assert stream.getvalue().count("failed") == 1  # the other runs in flight were not blamed
    attempts = {s.run_id: s.attempts for s in report.executed}
    assert attempts == {f"subset-{i:06d}": 2 if i == 5 else 1 for i in range(4, 8)}
    assert open_study(study).num_models == 8


# ---- a run that keeps killing its worker --------------------------------------------------------


def test_run_killing_its_worker_every_time_runs_at_most_max_attempts(study: Path, monkeypatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "subset-000005:always")
    config = config_with(
        num_models=7, **{"execution.executor": "process", "execution.workers": 2, "execution.max_attempts": 2}
    )
    with pytest.raises(RunFailedError, match=r"subset-000005 failed 2 times \(last: its worker process died"):
        run_study(config, study, progress=False, stream=io.StringIO())
    assert fault_starts(study, "subset-000005") == 2
    assert (study / "runs" / "subset-000004.npz").exists()  # the run beside it finished and was kept


def test_stop_requested_by_the_callback_lets_runs_in_flight_finish_and_starts_no_more(study: Path) -> None:
    config = config_with(num_models=12, **{"execution.executor": "process", "execution.workers": 2})
    specs = subset_runs(config, 8, range(BASE_MODELS, 12))
    done = ProcessExecutor(study, config, workers=2).execute(specs, lambda summary: True)
    # One run finished and asked to stop; at most the run in flight on each worker followed it.
    assert 1 <= len(done) <= 3
    written = sorted(p.stem for p in (study / "runs").glob("subset-*.npz"))
    assert written == sorted([f"subset-{i:06d}" for i in range(BASE_MODELS)] + [s.run_id for s in done])


# ---- run timeouts -------------------------------------------------------------------------------


def test_hung_run_is_killed_retried_and_the_others_continue(study: Path, tmp_path: Path) -> None:
    config = base_dict(
        num_models=7, **{"execution.executor": "process", "execution.workers": 2, "execution.run_timeout_s": 5}
    )
    cfg = write_config(tmp_path / "c.yaml", config)
    code, out = run_cli(["run", str(cfg), "--out", str(study)], fault="subset-000005:hang")
    assert code == 0, out
    assert fault_starts(study, "subset-000005", hang=True) == 1
    assert "run subset-000005 attempt 1 of 3 failed: timed out after 5 s (execution.run_timeout_s); retrying" in out
    assert out.count("failed") == 1
    assert open_study(study).num_models == 7


@pytest.mark.parametrize("executor", ["process", "serial"])
def test_run_timing_out_every_attempt_fails_saying_so(study: Path, tmp_path: Path, executor: str) -> None:
    # Only the hanging run is pending, so a slow machine cannot time out any other run.
    config = base_dict(
        num_models=BASE_MODELS + 1,
        **{"execution.executor": executor, "execution.run_timeout_s": 2, "execution.max_attempts": 2},
    )
    cfg = write_config(tmp_path / "c.yaml", config)
    code, out = run_cli(["run", str(cfg), "--out", str(study)], fault="subset-000004:hang-always")
    assert code == 2, out
    assert "run subset-000004 attempt 1 of 2 failed: timed out after 2 s" in out
    assert "error: run subset-000004 failed 2 times (last: timed out after 2 s (execution.run_timeout_s))" in out
    assert fault_starts(study, "subset-000004", hang=True) == 2
    assert not (study / "runs" / "subset-000004.npz").exists()


# ---- stop rules ---------------------------------------------------------------------------------


def test_reliability_rule_uses_the_configured_estimator_and_output_kind(study: Path, monkeypatch) -> None:
    import transfer_influence.analysis.convergence as convergence

    calls: list[tuple[str, np.ndarray, dict]] = []

    def recorded(results, outputs, estimator, **options):
        calls.append((estimator, np.array(outputs), options))
        level = options["levels"][0]
        one = np.array([1.0])
        return {level: ReliabilityCurve(level, one * 4, one * 0.99, one * 0, 1.0)}

    monkeypatch.setattr(convergence, "study_split_half", recorded)
    config = config_with(
        num_models=BASE_MODELS + 8,
        **{
            "analysis.estimator": "ridge",
            "analysis.output_kind": "correct",
            "execution.stop_reliability": 0.9,
            "execution.stop_check_every": 8,
            "execution.stop_level": "overall",
        },
    )
    stream = io.StringIO()
    run_study(config, study, progress=False, stream=stream)
    assert len(calls) == 1
    estimator, outputs, options = calls[0]
    assert estimator == "ridge" and options["levels"] == ("overall",)
    np.testing.assert_array_equal(outputs, open_study(study).outputs("correct"))
    assert "split-half Spearman (overall) 0.990 ≥ 0.9; stopping" in stream.getvalue()


def _summary(run_id: str) -> RunSummary:
    return RunSummary(run_id, {}, 0.5, 0.5)


class _CountingRule:
    def __init__(self, stop_at: int) -> None:
        self.calls = 0
        self.stop_at = stop_at

    def should_stop(self, summary: RunSummary) -> bool:
        self.calls += 1
        return self.calls >= self.stop_at


def test_time_budget_and_any_of_compose() -> None:
    now = [100.0]
    stream = io.StringIO()
    budget = TimeBudget(30.0, stream, clock=lambda: now[0])
    later = _CountingRule(stop_at=3)
    rule = AnyOf((budget, later))
    assert not rule.should_stop(_summary("subset-000000"))
    now[0] = 129.9
    assert not rule.should_stop(_summary("subset-000001"))
    now[0] = 130.0
    assert rule.should_stop(_summary("subset-000002")) and rule.should_stop(_summary("subset-000003"))
    assert stream.getvalue().count("time budget of 30 s spent; stopping") == 1
    assert later.calls == 2  # the budget answered first: the later rule was not asked again
    assert AnyOf((TimeBudget(30.0, stream, clock=lambda: 0.0), _CountingRule(stop_at=1))).should_stop(_summary("x"))
    assert not AnyOf().should_stop(_summary("subset-000000"))


def test_stop_rule_for_builds_only_the_configured_rules(study: Path) -> None:
    store = StudyStore.open(study)
    assert stop_rule_for(config_with(), store, io.StringIO()).rules == ()
    rules = stop_rule_for(
        config_with(**{"execution.stop_after_seconds": 60, "execution.stop_reliability": 0.8,
                       "analysis.estimator": "ridge", "analysis.output_kind": "raw_margin"}),
        store,
        io.StringIO(),
    ).rules
    assert [type(r).__name__ for r in rules] == ["TimeBudget", "ReliabilityTarget"]
    assert (rules[1].estimator, rules[1].output_kind, rules[1].target) == ("ridge", "raw_margin", 0.8)


# ---- the work command ---------------------------------------------------------------------------


def test_work_runs_one_run_from_the_stored_config_and_is_idempotent(study: Path, capsys) -> None:
    path = study / "runs" / "subset-000002.npz"
    store = StudyStore.open(study)
    mask, outputs, _ = store.read_run("subset-000002")
    path.unlink()
    assert cli_main(["work", str(study), "--index", "2"]) == 0
    assert "subset-000002 done in" in capsys.readouterr().out
    again_mask, again_outputs, record = store.read_run("subset-000002")
    np.testing.assert_array_equal(again_mask, mask)
    for kind, values in outputs.items():
        np.testing.assert_array_equal(again_outputs[kind], values)
    assert record["pid"] == os.getpid()  # run in this process

    written = path.stat().st_mtime_ns
    assert cli_main(["work", str(study), "--index", "2"]) == 0
    assert "subset-000002 is already done" in capsys.readouterr().out
    assert path.stat().st_mtime_ns == written
    assert cli_main(["work", str(study), "--index", "0", "--kind", "random_init"]) == 0
    assert "random_init-000000 is already done" in capsys.readouterr().out
    assert sorted(p.name for p in (study / "runs").iterdir()) == sorted(
        [f"subset-{i:06d}.npz" for i in range(BASE_MODELS)] + ["all_source-000000.npz", "random_init-000000.npz"]
    )


def test_work_reruns_a_corrupt_run_file_after_moving_it_aside(study: Path, capsys) -> None:
    """An external scheduler's task finds a truncated file where its run should be: not a finished
    run, so it is quarantined with its reason and the run is trained again."""
    store = StudyStore.open(study)
    path = store.run_path("subset-000001")
    _, outputs, _ = store.read_run("subset-000001")
    path.write_bytes(path.read_bytes()[:200])
    assert cli_main(["work", str(study), "--index", "1"]) == 0
    assert "subset-000001 done in" in capsys.readouterr().out
    assert store.check_run("subset-000001").ok
    np.testing.assert_array_equal(store.read_run("subset-000001")[1]["p_true"], outputs["p_true"])
    moved = [p for p in (study / "runs" / "quarantine").iterdir() if p.name.startswith("subset-000001")]
    assert any(p.name.endswith(".reason.txt") for p in moved) and len(moved) == 2


def test_work_refuses_an_index_the_study_does_not_plan_and_a_missing_study(study: Path, tmp_path: Path, capsys) -> None:
    assert cli_main(["work", str(study), "--index", str(BASE_MODELS)]) == 2
    err = capsys.readouterr().err
    assert f"index {BASE_MODELS} is out of range for subset runs" in err and "0 to 3" in err
    assert cli_main(["work", str(study), "--index", "1", "--kind", "all_source"]) == 2
    assert "out of range for all_source runs: the study plans 1 (baselines.repeats)" in capsys.readouterr().err
    assert cli_main(["work", str(tmp_path / "nowhere"), "--index", "0"]) == 2
    assert "not a study directory" in capsys.readouterr().err


def test_work_refuses_a_machine_whose_numerics_differ_from_the_study(study: Path, capsys) -> None:
    (study / "runs" / "subset-000002.npz").unlink()
    meta = json.loads((study / "study.json").read_text())
    meta["numerics"]["device"] = "cuda"  # as if the study's runs had been trained on a GPU
    (study / "study.json").write_text(json.dumps(meta))
    assert cli_main(["work", str(study), "--index", "2"]) == 2
    assert "numerics.device: study has 'cuda'" in capsys.readouterr().err
    assert not (study / "runs" / "subset-000002.npz").exists()


def test_work_killed_mid_run_leaves_no_file_and_a_second_call_finishes_it(study: Path) -> None:
    (study / "runs" / "subset-000001.npz").unlink()
    code, out = run_cli(["work", str(study), "--index", "1"], fault="subset-000001")
    assert code == 17, out  # the hook's os._exit: the process died mid-run
    assert not (study / "runs" / "subset-000001.npz").exists()
    code, out = run_cli(["work", str(study), "--index", "1"], fault="subset-000001")
    assert code == 0, out
    assert "subset-000001 done in" in out
    assert open_study(study).num_models == BASE_MODELS


# ---- one GPU per worker process ---------------------------------------------------------------


def test_each_worker_process_sees_its_own_gpu(study: Path, monkeypatch) -> None:
    """``execution.gpus`` hands one id per worker as CUDA_VISIBLE_DEVICES (recorded in each run file);
    on this CPU machine the runs still train on the CPU, which the variable does not touch."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    config = config_with(num_models=14, **{"execution.executor": "process", "execution.gpus": ["7", "9"]})
    from transfer_influence.execute import make_executor

    executor = make_executor(config, study, 6)
    assert isinstance(executor, ProcessExecutor) and executor.workers == 2 and executor.gpus == ["7", "9"]
    run_study(config, study, progress=False, stream=io.StringIO())
    store = StudyStore.open(study)
    seen = {}
    for index in range(BASE_MODELS, 14):
        record = store.read_run_mask_and_record(f"subset-{index:06d}")[1]
        seen.setdefault(record["cuda_visible_devices"], set()).add(record["pid"])
    assert set(seen) == {"7", "9"}  # both GPUs used, each by its own worker process(es)
    assert not seen["7"] & seen["9"]
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # the driver's own environment is left as it was


def test_no_gpu_ids_on_a_cpu_study(study: Path) -> None:
    from transfer_influence.execute import make_executor, worker_gpus

    config = config_with(num_models=9, **{"execution.executor": "process"})
    assert worker_gpus(config) == [] and make_executor(config, study, 4).gpus == []
