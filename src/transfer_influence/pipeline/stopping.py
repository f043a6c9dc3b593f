"""Stop rules: when a study may end before ``num_models`` (a time budget, a reliability target)."""

from __future__ import annotations

import time
from typing import IO, Callable

from ..execute import RunSummary
from ..study.config import StudyConfig
from ..study.store import StudyStore


def stop_rule_for(config: StudyConfig, store: StudyStore, stream: IO[str]) -> Callable[[RunSummary], bool]:
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
    from ..analysis.convergence import study_split_half
    from ..study.results import open_study

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
