"""One study context for the analysis layer: a study opened and checked once.

Every analysis command asks the same things of a study before it computes: is it there and
finished, which of its targets, which output kind and estimator (the flags, else the study's
``analysis`` settings), are its units whole source classes or single source examples, where do this
command's files go, and how are retrains run. ``StudyContext.open`` answers them all up front, with
one clear error for any bad answer, so that nothing is computed on input that will be refused and
no command spells a folder rule or a guard of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from ..errors import InputError, unknown_name_error
from ..estimate.registry import ESTIMATOR_NAMES
from ..study.config import StudyConfig
from ..study.outputs import OUTPUT_KINDS
from ..study.results import StudyResults, open_study
from ..study.store import StudyStore

MIN_MODELS = 3
"""Fewest finished subset models any influence needs (one in, one out, and a spread)."""
UNIT_KINDS = ("class", "example")


@dataclass(frozen=True)
class RetrainOptions:
    """How a command that retrains (counterfactual, handpicked, verify) runs its retrains."""

    serial: bool = False
    workers: int | None = None
    progress: bool = True
    stream: IO[str] | None = None


@dataclass
class StudyContext:
    """A study opened once: its store, its results on one target, the output kind and estimator in
    use, the kind of unit its masks cover, the folder rule and the retrain options.

    ``results`` is read on first use (reading consolidates finished runs), so a command that is
    refused by a later check of its own has read nothing."""

    path: Path
    store: StudyStore
    target: str | None
    """The target as run files name it: None for the primary, else an extra target's name."""
    kind: str
    estimator: str
    retrain: RetrainOptions = field(default_factory=RetrainOptions)
    require_finished: bool = False
    _results: StudyResults | None = field(default=None, repr=False)

    # ---- opening ------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        target: str | None = None,
        kind: str | None = None,
        estimator: str | None = None,
        units: str | None = None,
        command: str = "this command",
        require_finished: bool = False,
        retrain: RetrainOptions | None = None,
        estimators: tuple[str, ...] | None = None,
    ) -> "StudyContext":
        """Open the study at ``path`` and check every choice against it before any work.

        ``units``: 'class' or 'example' when ``command`` works only on that kind of study.
        ``estimators``: the names ``command`` accepts (default: the estimator registry's).
        ``require_finished``: refuse a study with fewer finished models than planned."""
        path = Path(path)
        store = StudyStore.open(path)
        extra = store.extra_target_name(target)
        config = store.config
        context = cls(
            path=path,
            store=store,
            target=extra,
            kind=_checked_kind(kind or config.analysis.output_kind),
            estimator=_checked_estimator(estimator or config.analysis.estimator, estimators, command),
            retrain=retrain or RetrainOptions(),
            require_finished=require_finished,
        )
        if units is not None:
            context.require_units(units, command)
        return context

    def with_analysis(self, kind: str | None = None, estimator: str | None = None) -> "StudyContext":
        """The same study with another output kind or estimator (checked), sharing what is read."""
        return replace(
            self,
            kind=_checked_kind(kind) if kind is not None else self.kind,
            estimator=_checked_estimator(estimator, None, "this command") if estimator is not None else self.estimator,
        )

    # ---- what the study is ----------------------------------------------------------------------
    @property
    def config(self) -> StudyConfig:
        return self.store.config

    @property
    def unit_kind(self) -> str:
        """What a mask column is: a source 'class', or a source 'example' (``design.unit``)."""
        return "example" if self.store.example_units else "class"

    @property
    def unit_word(self) -> str:
        return "source examples" if self.unit_kind == "example" else "classes"

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(self.config.target_names)

    @property
    def target_name(self) -> str:
        """The target's display name (the primary's name when ``target`` is None)."""
        return self.target if self.target is not None else self.target_names[0]

    @property
    def is_primary_target(self) -> bool:
        return self.target is None

    def require_units(self, units: str, command: str) -> None:
        """Refuse, before any work, a command meant for the other kind of study."""
        if units not in UNIT_KINDS:
            raise ValueError(f"units must be one of {UNIT_KINDS}, not {units!r}")
        if self.unit_kind == units:
            return
        if units == "class":
            raise InputError(
                f"{self.path} is an example-level study (design.unit: example): its units are source examples, "
                f"while `{command}` works on source classes. Use `transfer-influence influence {self.path}` for "
                f"example influences, or run `{command}` on a study with design.unit: class"
            )
        raise InputError(
            f"{self.path} is a class-level study (design.unit: class): its units are whole source classes, while "
            f"`{command}` pairs target images with single source examples. Run a study with design.unit: example "
            f"for `{command}`, or use `transfer-influence explain {self.path}` for the most negative source classes "
            "of an image"
        )

    # ---- results ------------------------------------------------------------------------------
    @property
    def results(self) -> StudyResults:
        """The study's finished runs on this target, read once; refused below ``MIN_MODELS`` models
        and, when ``require_finished``, below the planned count."""
        if self._results is None:
            results = open_study(self.path, target=self.target)
            _check_model_count(self.path, results, self.require_finished)
            self._results = results
        return self._results

    @property
    def partial_note(self) -> str:
        """A line for an estimate from an unfinished study ('' when it is finished)."""
        planned, done = self.config.num_models, self.results.num_models
        return f"partial estimate: {done} of {planned} models finished" if done < planned else ""

    # ---- files ----------------------------------------------------------------------------------
    def folder(self, command: str) -> Path:
        """Where ``command`` writes for this target: ``STUDY/<command>/`` for the primary target and
        ``STUDY/<command>/target-<name>/`` for an extra one, so that targets never mix. Created on
        the caller's first write, never here: a refused command leaves no directory."""
        base = self.path / command
        return base if self.target is None else base / target_folder_name(self.target)


def target_folder_name(target: str) -> str:
    """The subfolder of an extra target's files inside a command's folder."""
    return f"target-{target}"


def _checked_kind(kind: str) -> str:
    if kind not in OUTPUT_KINDS:
        raise unknown_name_error("output kind", kind, OUTPUT_KINDS)
    return kind


def _checked_estimator(name: str, allowed: tuple[str, ...] | None, command: str) -> str:
    known = tuple(ESTIMATOR_NAMES) if allowed is None else allowed
    if name not in known:
        raise unknown_name_error("estimator", name, known, see=f"`transfer-influence {command} --help`")
    return name


def _check_model_count(path: Path, results: StudyResults, require_finished: bool) -> None:
    planned = results.config.num_models
    if require_finished and results.num_models < planned:
        raise InputError(
            f"{path} has {results.num_models} of {planned} models finished; pass --partial for an estimate from "
            "the finished ones, or run the study to the end"
        )
    if results.num_models < MIN_MODELS:
        raise InputError(
            f"{path} has {results.num_models} finished models; influences need at least {MIN_MODELS}: run the "
            "study (`transfer-influence run`) first"
        )
