"""Sweeps: extra runs of a finished study (retrains on chosen masks) in a study-like store beside it.

A sweep directory is a ``StudyStore`` holding the parent study's config, data fingerprints and data
views (a hard link of its ``data.npz`` where the file system allows, else a copy), so the same
executors and workers run its specs and every run file is written atomically under its run id.
Running a sweep again skips the runs whose files exist: an interrupted sweep resumes where it
stopped. A directory created for another study (other config or data) is refused.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..progress import Progress
from ..study.atomic import new_temp_file, replace_durably
from ..study.config import StudyConfig
from ..study.design import RunSpec
from ..study.store import STUDY_FILE, StudyStore, study_lock
from ..train.device import resolved_device_type
from .base import RunSummary


@dataclass
class SweepReport:
    store: StudyStore
    planned: int
    skipped: int
    executed: list[RunSummary] = field(default_factory=list)


def run_sweep(
    parent: StudyStore,
    sweep_dir: str | Path,
    specs: list[RunSpec],
    config: StudyConfig | None = None,
    progress: bool = True,
    stream: IO[str] | None = None,
    label: str = "retrains",
) -> SweepReport:
    """Run the ``specs`` whose files are missing in ``sweep_dir`` (created or reopened for
    ``parent``); ``config`` is the parent's config with other execution settings (executor, workers).

    The runs' numbers depend on the machine's device type and autocast, checked against the sweep's
    own as a study's are: a sweep never mixes runs of different numerics.
    """
    sweep_dir = Path(sweep_dir)
    stream = stream or sys.stderr
    config = config or parent.config
    numerics = config.run_numerics(resolved_device_type(config.execution.device))
    fingerprints = dict(parent.metadata["fingerprints"])
    with study_lock(sweep_dir):
        if (sweep_dir / STUDY_FILE).exists():  # named as foreign before anything is written
            StudyStore.open(sweep_dir).check_compatible(config, numerics, fingerprints)
        extra = {key: parent.metadata[key] for key in ("data", "class_names") if key in parent.metadata}
        store = StudyStore.create_or_open(sweep_dir, config, numerics, fingerprints, extra={**extra, "sweep_of": str(parent.path)})
        store.remove_partial_files()
        if not store.data_path.exists():
            _link_or_copy(parent.data_path, store.data_path)
        finished = store.finished_run_ids()
        unique = list({spec.run_id: spec for spec in specs}.values())
        todo = [spec for spec in unique if spec.run_id not in finished]
        report = SweepReport(store, planned=len(unique), skipped=len(unique) - len(todo))
        if report.skipped and todo:
            print(f"resuming {sweep_dir}: {report.skipped} runs already finished, {len(todo)} to go", file=stream)
        if todo:
            from . import make_executor  # the package's one executor choice; the package exports this module

            executor = make_executor(config, sweep_dir, len(todo), stream)
            with Progress(len(todo), "run", label=label, stream=stream, enabled=progress) as bar:

                def on_done(summary: RunSummary) -> bool:
                    bar.update(f"target acc {summary.target_accuracy:.3f}")
                    return False

                report.executed = executor.execute(todo, on_done)
        return report


def _link_or_copy(source: Path, destination: Path) -> None:
    """The parent's data views, byte for byte: a hard link costs no space; across file systems a
    copy is made under a temporary name and renamed, so a killed copy never looks whole."""
    temp = new_temp_file(destination)
    try:
        temp.unlink()  # the unique name is reserved under the sweep lock; the link takes its place
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
        replace_durably(temp, destination)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
