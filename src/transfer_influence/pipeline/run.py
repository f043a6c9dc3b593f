"""Run a study end to end: data views → store → pending run specs → executor → consolidation.

Resuming is the same call: what is left to do is computed from the store alone (never from an
executor's memory), so it is the same for every executor: a run is done when its file is in
``runs/`` and passes its checks (a bad file is moved aside first and the run counts as missing);
failed runs (``runs/<run_id>.failed.json``) and missing ones are run again.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..execute import RunSummary, make_executor
from ..study.config import StudyConfig
from ..study.design import RunSpec, baseline_runs, check_plan, design_unit_count, subset_runs
from ..study.results import audit_runs, consolidate
from ..study.store import STUDY_FILE, StudyStore, atomic_write_text, study_lock
from ..study.views import build_study_data, save_study_data
from ..train.device import resolved_device_type
from ..train.trainers import check_trainer
from .progress import progress_bar
from .stopping import stop_rule_for

TIMINGS_FILE = "timings.json"
"""Wall time of each ``run`` invocation by phase, appended to; ``plan`` reads throughput from it."""


@dataclass
class RunReport:
    store: StudyStore
    planned: int
    skipped: int
    executed: list[RunSummary] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def pending_specs(config: StudyConfig, store: StudyStore, num_units: int) -> tuple[list[RunSpec], int]:
    """Baselines first (a partial study can already be compared with them), then subset models;
    ``num_units``: the design's units (classes, or source examples for ``design.unit: example``)."""
    specs = baseline_runs(config, num_units) + subset_runs(config, num_units, range(config.num_models))
    finished = store.finished_run_ids()
    todo = [s for s in specs if s.run_id not in finished]
    return todo, len(specs) - len(todo)


def run_study(config: StudyConfig, study_dir: str | Path, progress: bool = True, stream: IO[str] | None = None) -> RunReport:
    study_dir = Path(study_dir)
    stream = stream or sys.stderr
    # The device 'auto' picks here and whether autocast acts on it change a run's numbers: resolved
    # first (a missing GPU is an error before any work) and checked against the study's own.
    numerics = config.run_numerics(resolved_device_type(config.execution.device))
    with study_lock(study_dir):
        started = time.perf_counter()
        data = build_study_data(config)
        if (study_dir / STUDY_FILE).exists():  # a foreign config is named as such, before the plan is judged
            StudyStore.open(study_dir).check_compatible(config, numerics, data.fingerprints())
        num_units = design_unit_count(config, len(data.class_names), len(data.source_train))
        names = None if config.design.unit == "example" else data.class_names
        check_plan(config, num_units, names)  # before anything is written or trained
        check_trainer(config, data)
        store = StudyStore.create_or_open(
            study_dir,
            config,
            numerics,
            data.fingerprints(),
            extra={"data": data.summary(), "class_names": list(data.class_names)},
        )
        store.remove_partial_files()
        if not store.data_path.exists():
            save_study_data(data, store.data_path)
        # A truncated, corrupt, foreign or duplicate file is moved aside and counts as missing. New
        # files are checked once, as they are consolidated; the audit then reads only files changed
        # since their rows were written (and the few baselines).
        consolidate(store, stream)
        audit_runs(store, stream)
        seconds_data = time.perf_counter() - started
        specs, skipped = pending_specs(config, store, num_units)
        report = RunReport(store, planned=len(specs) + skipped, skipped=skipped)
        if skipped:
            print(f"resuming {study_dir}: {skipped} runs already finished, {len(specs)} to go", file=stream)
        failed = store.failures()
        if failed:
            print(f"retrying {len(failed)} runs that failed before (`transfer-influence status {study_dir}` "
                  "shows their errors)", file=stream)
        started = time.perf_counter()
        if specs:
            executor = make_executor(config, study_dir, len(specs), stream)
            stop_rule = stop_rule_for(config, store, stream)
            with progress_bar(len(specs), progress, stream) as on_done:
                report.executed = executor.execute(specs, lambda s: on_done(s) or stop_rule.should_stop(s))
        seconds_runs = time.perf_counter() - started
        started = time.perf_counter()
        consolidate(store, stream)
        report.timings = {
            "data_seconds": seconds_data,
            "runs_wall_seconds": seconds_runs,
            "train_seconds_total": sum(s.seconds.get("train", 0.0) for s in report.executed),
            "transfer_seconds_total": sum(s.seconds.get("transfer", 0.0) for s in report.executed),
            "consolidate_seconds": time.perf_counter() - started,
            "runs_executed": len(report.executed),
        }
        _append_timings(store, report.timings)
        return report


def _append_timings(store: StudyStore, timings: dict[str, float]) -> None:
    path = store.path / TIMINGS_FILE
    history = json.loads(path.read_text()) if path.exists() else []
    history.append({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **timings})
    atomic_write_text(path, json.dumps(history, indent=2))
