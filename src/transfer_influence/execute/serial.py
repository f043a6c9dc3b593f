"""Runs in the calling process: debugging, tiny studies, one GPU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import RunFailedError
from ..study.config import StudyConfig
from ..study.design import RunSpec
from .base import ProgressCallback, RunSummary
from .work import execute_one, init_worker


@dataclass
class SerialExecutor:
    study_dir: Path
    config: StudyConfig

    def execute(self, specs: list[RunSpec], on_done: ProgressCallback) -> list[RunSummary]:
        init_worker(str(self.study_dir), self.config.model_dump_json(), self.config.execution.threads_per_worker)
        done: list[RunSummary] = []
        for spec in specs:
            for attempt in range(1, self.config.execution.max_attempts + 1):
                try:
                    summary = execute_one(spec)
                except Exception as exc:  # noqa: BLE001 - any failure of a run is retried
                    if attempt == self.config.execution.max_attempts:
                        raise RunFailedError(f"run {spec.run_id} failed {attempt} times; last error: {exc!r}") from exc
                    continue
                summary.attempts = attempt
                done.append(summary)
                if on_done(summary):
                    return done
                break
        return done
