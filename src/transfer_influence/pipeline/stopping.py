"""Stop rules: when a study may end before ``num_models`` (a time budget, a reliability target).

A rule is asked once per finished run and answers whether to stop starting new runs; rules compose
with :class:`AnyOf`, and :func:`stop_rule_for` builds the ones a config asks for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import IO, Callable, Protocol

from ..execute import RunSummary
from ..study.config import StudyConfig
from ..study.store import StudyStore


class StopRule(Protocol):
    def should_stop(self, summary: RunSummary) -> bool:
        """Called once per finished run; True stops the study after the runs in flight."""
        ...


@dataclass
class TimeBudget:
    """Stop once ``seconds`` of wall time have passed since the rule was made (a compute budget)."""

    seconds: float
    stream: IO[str]
    clock: Callable[[], float] = time.perf_counter
    deadline: float = field(init=False)
    announced: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.deadline = self.clock() + self.seconds

    def should_stop(self, summary: RunSummary) -> bool:
        if self.clock() < self.deadline:
            return False
        if not self.announced:
            print(f"  time budget of {self.seconds:g} s spent; stopping", file=self.stream, flush=True)
            self.announced = True
        return True


@dataclass
class ReliabilityTarget:
    """Stop once the split-half Spearman of the influences at ``level`` reaches ``target``, checked
    every ``every`` finished subset models. The influences are the ones the study reports: the
    configured ``estimator`` on the configured ``output_kind``, so the study stops when *they* are
    reliable, not some other estimate."""

    store: StudyStore
    target: float
    level: str
    every: int
    estimator: str
    output_kind: str
    stream: IO[str]
    since_check: int = field(default=0, init=False)

    def should_stop(self, summary: RunSummary) -> bool:
        if not summary.run_id.startswith("subset-"):
            return False
        self.since_check += 1
        if self.since_check < self.every:
            return False
        self.since_check = 0
        return self._check()

    def _check(self) -> bool:
        # Imported here: the analysis stack is needed only by studies that ask for this rule, and
        # through the module so that its functions can be replaced in tests.
        from ..analysis import convergence
        from ..study.results import open_study

        results = open_study(self.store.path)
        curves = convergence.study_split_half(
            results, results.outputs(self.output_kind), self.estimator, levels=(self.level,), points=1, repeats=3
        )
        reliability = curves[self.level].at_full_size
        reached = reliability >= self.target
        print(
            f"  reliability check at {results.num_models} models: split-half Spearman ({self.level}) "
            f"{reliability:.3f}{' ≥' if reached else ' <'} {self.target:g}" + ("; stopping" if reached else ""),
            file=self.stream,
            flush=True,
        )
        return reached


@dataclass
class AnyOf:
    """Stop as soon as any of ``rules`` says so (none: never stop early)."""

    rules: tuple[StopRule, ...] = ()

    def should_stop(self, summary: RunSummary) -> bool:
        return any(rule.should_stop(summary) for rule in self.rules)


def stop_rule_for(config: StudyConfig, store: StudyStore, stream: IO[str]) -> StopRule:
    """The rules ``config.execution`` asks for: a time budget (``stop_after_seconds``, counted from
    now) and a reliability target (``stop_reliability`` at ``stop_level``, checked every
    ``stop_check_every`` subset models with ``config.analysis``'s estimator and output kind)."""
    execution = config.execution
    rules: list[StopRule] = []
    if execution.stop_after_seconds is not None:
        rules.append(TimeBudget(execution.stop_after_seconds, stream))
    if execution.stop_reliability is not None:
        rules.append(
            ReliabilityTarget(
                store,
                execution.stop_reliability,
                execution.stop_level,
                execution.stop_check_every,
                config.analysis.estimator,
                config.analysis.output_kind,
                stream,
            )
        )
    return AnyOf(tuple(rules))
