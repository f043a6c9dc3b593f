"""One run of an existing study, chosen by kind and index, in this process: what an external
scheduler (a cluster array job, a shell loop) calls once per run instead of ``run``'s pool.

The run is rebuilt from the study's *stored* config with the same ``RunSpec`` the study itself would
draw, so its file is the one ``run`` would have written. It is idempotent (a finished run is left
alone) and takes no study lock, so that many can run side by side: run files are written atomically
under their run id, and two writers of one run leave one whole file. Like ``run``, it refuses a
machine whose device type or autocast differs from the study's. Attempts, retries and
``execution.run_timeout_s`` follow the serial executor's policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, get_args

from ..errors import InputError
from ..study.config import StudyConfig
from ..study.design import RunKind, RunSpec, baseline_runs, subset_runs
from ..study.integrity import quarantine_run_file
from ..study.store import StudyStore
from ..train.device import resolved_device_type
from .base import RunSummary
from .serial import SerialExecutor

RUN_KINDS: tuple[str, ...] = get_args(RunKind)


@dataclass(frozen=True)
class SingleRunOutcome:
    run_id: str
    path: Path
    summary: RunSummary | None
    """None when the run had already finished and nothing was done."""


def run_spec_for(config: StudyConfig, num_classes: int, kind: str, index: int) -> RunSpec:
    """The study's own spec for run ``kind``-``index``; an index the study does not plan is refused."""
    if kind not in RUN_KINDS:
        raise InputError(f"unknown run kind {kind!r}; choose one of {', '.join(RUN_KINDS)}")
    if kind == "subset":
        planned, setting = config.num_models, "num_models"
    else:
        planned, setting = config.baselines.repeats, "baselines.repeats"
    if not 0 <= index < planned:
        span = f"0 to {planned - 1}" if planned else "none"
        raise InputError(
            f"index {index} is out of range for {kind} runs: the study plans {planned} ({setting}), so valid "
            f"indices are {span}; to add runs, raise {setting} with `transfer-influence run`"
        )
    if kind == "subset":
        return subset_runs(config, num_classes, [index])[0]
    return next(s for s in baseline_runs(config, num_classes) if s.kind == kind and s.index == index)


def run_single(study_dir: str | Path, kind: str, index: int, stream: IO[str] | None = None) -> SingleRunOutcome:
    """Run ``kind``-``index`` of the study in ``study_dir`` unless its file already exists."""
    store = StudyStore.open(study_dir)
    config = store.config
    spec = run_spec_for(config, store.num_design_units(), kind, index)
    path = store.run_path(spec.run_id)
    if path.exists():
        check = store.check_run(spec.run_id, config)
        if check.ok:
            return SingleRunOutcome(spec.run_id, path, None)
        # A truncated, corrupt or foreign file is not a finished run: moved aside, then run again.
        quarantine_run_file(check, stream)
    # The stored config is the study's own, but this machine may resolve another device type or
    # autocast than the study's runs used: refused, as `run` refuses it, rather than mixed in.
    numerics = config.run_numerics(resolved_device_type(config.execution.device))
    store.check_compatible(config, numerics, store.metadata["fingerprints"])
    if not store.data_path.is_file():
        raise InputError(
            f"{store.path} has no {store.data_path.name}: the study was never fully created; "
            "run `transfer-influence run CONFIG --out STUDY` once to create it"
        )
    [summary] = SerialExecutor(store.path, config, stream).execute([spec], lambda summary: False)
    return SingleRunOutcome(spec.run_id, path, summary)
