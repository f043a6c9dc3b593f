"""Run a study end to end: data views → store → pending run specs → executor → consolidation.

Resuming is the same call: finished runs are found by their files and skipped.
"""

from __future__ import annotations

import fcntl
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

from tqdm import tqdm

from .config import StudyConfig
from .executors import RunSummary, make_executor
from .plan import RunSpec, baseline_runs, subset_runs
from .results import consolidate
from .store import LOCK_FILE, StudyStore, atomic_write_text
from .views import build_study_data, save_study_data

class StudyBusyError(RuntimeError):
    """Another process is running the same study directory."""


@contextmanager
def study_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on the study directory for as long as runs are being added."""
    path.mkdir(parents=True, exist_ok=True)
    handle = open(path / LOCK_FILE, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StudyBusyError(f"another process is running the study in {path}; wait for it or stop it first") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@dataclass
class RunReport:
    store: StudyStore
    planned: int
    skipped: int
    executed: list[RunSummary] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def pending_specs(config: StudyConfig, store: StudyStore, num_classes: int) -> tuple[list[RunSpec], int]:
    """Baselines first (a partial study can already be compared with them), then subset models."""
    specs = baseline_runs(config, num_classes) + subset_runs(config, num_classes, range(config.num_models))
    finished = store.finished_run_ids()
    todo = [s for s in specs if s.run_id not in finished]
    return todo, len(specs) - len(todo)


def run_study(config: StudyConfig, study_dir: str | Path, progress: bool = True, stream: IO[str] | None = None) -> RunReport:
    study_dir = Path(study_dir)
    stream = stream or sys.stderr
    with study_lock(study_dir):
        started = time.perf_counter()
        data = build_study_data(config)
        store = StudyStore.create_or_open(
            study_dir,
            config,
            data.fingerprints(),
            extra={"data": data.summary(), "class_names": list(data.class_names)},
        )
        store.remove_partial_files()
        if not store.data_path.exists():
            save_study_data(data, store.data_path)
        seconds_data = time.perf_counter() - started
        specs, skipped = pending_specs(config, store, len(data.class_names))
        report = RunReport(store, planned=len(specs) + skipped, skipped=skipped)
        if skipped:
            print(f"resuming {study_dir}: {skipped} runs already finished, {len(specs)} to go", file=stream)
        started = time.perf_counter()
        if specs:
            executor = make_executor(config, study_dir, len(specs))
            stop_rule = _stop_rule(config, store, stream)
            with _progress_bar(len(specs), progress, stream) as on_done:
                report.executed = executor.execute(specs, lambda s: on_done(s) or stop_rule(s))
        seconds_runs = time.perf_counter() - started
        started = time.perf_counter()
        consolidate(store)
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


def _stop_rule(config: StudyConfig, store: StudyStore, stream: IO[str]) -> Callable[[RunSummary], bool]:
    """True (stop) once the time budget is spent or, checked every ``stop_check_every`` subset
    models, the split-half reliability of the finished runs reaches ``stop_reliability``."""
    execution = config.execution
    deadline = None if execution.stop_after_seconds is None else time.perf_counter() + execution.stop_after_seconds
    reliable = _reliability_rule(config, store, stream)

    announced = []

    def check(summary: RunSummary) -> bool:
        if deadline is not None and time.perf_counter() >= deadline:
            if not announced:
                print(f"  time budget of {execution.stop_after_seconds:g} s spent; stopping", file=stream, flush=True)
                announced.append(True)
            return True
        return reliable(summary)

    return check


def _reliability_rule(config: StudyConfig, store: StudyStore, stream: IO[str]) -> Callable[[RunSummary], bool]:
    target = config.execution.stop_reliability
    if target is None:
        return lambda summary: False
    from .convergence import study_split_half
    from .results import open_study

    level, every = config.execution.stop_level, config.execution.stop_check_every
    state = {"since": 0}

    def check(summary: RunSummary) -> bool:
        if not summary.run_id.startswith("subset-"):
            return False
        state["since"] += 1
        if state["since"] < every:
            return False
        state["since"] = 0
        results = open_study(store.path)
        curve = study_split_half(results, results.outputs("p_true"), "dim", levels=(level,), points=1, repeats=3)[level]
        reached = curve.at_full_size >= target
        print(
            f"  reliability check at {results.num_models} models: split-half Spearman ({level}) "
            f"{curve.at_full_size:.3f}{' ≥' if reached else ' <'} {target:g}" + ("; stopping" if reached else ""),
            file=stream,
            flush=True,
        )
        return reached

    return check


def _append_timings(store: StudyStore, timings: dict[str, float]) -> None:
    path = store.path / "timings.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history.append({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **timings})
    atomic_write_text(path, json.dumps(history, indent=2))


@contextmanager
def _progress_bar(total: int, enabled: bool, stream: IO[str]) -> Iterator:
    """A tqdm bar with ETA and models/minute on a terminal; a line every 10% otherwise (logs, CI)."""
    interactive = enabled and stream.isatty()
    bar = tqdm(total=total, unit="model", file=stream, disable=not interactive, dynamic_ncols=True)
    started = time.perf_counter()
    step = max(1, total // 10)
    count = 0

    def on_done(summary: RunSummary) -> bool:
        nonlocal count
        count += 1
        minutes = (time.perf_counter() - started) / 60
        rate = count / minutes if minutes > 0 else 0.0
        bar.update(1)
        bar.set_postfix_str(f"{rate:.0f} models/min, target acc {summary.target_accuracy:.3f}", refresh=False)
        if enabled and not interactive and (count % step == 0 or count == total):
            eta = (total - count) / rate if rate else float("nan")
            print(
                f"  {count}/{total} runs, {rate:.1f} models/min, ETA {eta:.1f} min, "
                f"last target acc {summary.target_accuracy:.3f}",
                file=stream,
                flush=True,
            )
        return False

    try:
        yield on_done
    finally:
        bar.close()
