"""What several command handlers share: config overrides from flags, and the study context a command
opens from its flags (``study_context``), so that every handler is parse → context → function → print."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError, unknown_name_error
from ..study.config import StudyConfig

if TYPE_CHECKING:
    from ..analysis.context import StudyContext


def apply_overrides(config: StudyConfig, args: argparse.Namespace) -> StudyConfig:
    changes: dict[str, object] = {}
    if args.models is not None:
        changes["num_models"] = args.models
    if args.workers is not None:
        changes["execution.workers"] = args.workers
    if args.serial:
        changes["execution.executor"] = "serial"
    if args.stop_at is not None:
        changes["execution.stop_reliability"] = args.stop_at
    return config.with_overrides(**changes) if changes else config


def apply_executor_options(config: StudyConfig, args: argparse.Namespace) -> StudyConfig:
    """``run --executor`` and ``--address`` as config overrides, checked like the config itself
    (``with_overrides`` refuses a bad value with a ``ConfigError`` naming the setting)."""
    changes: dict[str, object] = {}
    if args.executor is not None:
        if args.serial and args.executor != "serial":
            raise InputError(f"--serial and --executor {args.executor} disagree; give one of them")
        changes["execution.executor"] = args.executor
    if args.address is not None:
        if changes.get("execution.executor", config.execution.executor) != "ray":
            raise InputError("--address is the Ray head node's address: add --executor ray")
        changes["execution.ray.address"] = args.address
    return config.with_overrides(**changes) if changes else config


def study_context(
    args: argparse.Namespace, command: str, units: str | None = None, estimators: tuple[str, ...] | None = None
) -> "StudyContext":
    """The study named on the command line, opened once with the flags' choices: ``--target-set``,
    ``--kind``, ``--estimator`` (checked against ``estimators``, default the registry's), ``--partial``
    (a command without it takes the finished runs as they are), and the retrain flags ``--serial``,
    ``--workers``, ``--quiet``. ``units``: 'class' or 'example' for a command meant for one kind."""
    from ..analysis.context import RetrainOptions, StudyContext

    retrain = RetrainOptions(serial=getattr(args, "serial", False), workers=getattr(args, "workers", None),
                             progress=not getattr(args, "quiet", False))
    return StudyContext.open(
        args.study, target=getattr(args, "target_set", None), kind=getattr(args, "kind", None),
        estimator=getattr(args, "estimator", None), units=units, command=command,
        require_finished=hasattr(args, "partial") and not args.partial, retrain=retrain, estimators=estimators,
    )


def print_partial_note(context: "StudyContext") -> None:
    """Say so when an estimate comes from an unfinished study (``--partial``)."""
    if context.partial_note:
        print(context.partial_note)


def context_target_line(context: "StudyContext") -> str:
    """', target NAME' for a study with several targets (nothing for a one-target study)."""
    return f", target {context.target_name}" if len(context.target_names) > 1 else ""


def open_finished(study: Path, partial: bool, target: str | None = None):  # type: ignore[no-untyped-def]
    """The study's results on its target ``target`` (None: the primary); an unfinished study needs
    ``--partial`` so that nobody mistakes an anytime estimate for the final one."""
    from ..study.results import open_study

    results = open_study(study, target=target)
    planned = results.config.num_models
    if results.num_models < planned:
        if not partial:
            raise InputError(
                f"{study} has {results.num_models} of {planned} models finished; pass --partial for an "
                "estimate from the finished ones, or run the study to the end"
            )
        print(f"partial estimate: {results.num_models} of {planned} models finished")
    if results.num_models < 3:
        raise InputError(f"{study} has {results.num_models} finished models; influences need at least 3")
    return results


def require_class_units(study: Path, command: str) -> None:
    """Refuse, before any work, a command that reads or retrains whole source classes on a study
    whose subsets are drawn over source examples (``design.unit: example``)."""
    from ..study.store import StudyStore

    if StudyStore.open(study).example_units:
        raise InputError(
            f"{study} is an example-level study (design.unit: example): its units are source examples, while "
            f"`{command}` works on source classes. Use `transfer-influence influence {study}` for example "
            "influences, or run `" + command + "` on a study with design.unit: class"
        )


def target_folder(results, folder: Path) -> Path:  # type: ignore[no-untyped-def]
    """``folder`` for the primary target; ``folder/<name>`` for another, so targets never mix."""
    return folder if results.target_name == results.target_names[0] else folder / results.target_name


def target_line(results) -> str:  # type: ignore[no-untyped-def]
    """', target NAME' for a study with several targets (nothing for a one-target study)."""
    return f", target {results.target_name}" if len(results.target_names) > 1 else ""


def analysis_choice(results, args: argparse.Namespace) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Output kind and estimator: the flags, else the study's ``analysis`` settings; checked before any work."""
    kind = args.kind or results.config.analysis.output_kind
    if kind not in results.output_kinds:
        raise unknown_name_error("output kind", kind, list(results.output_kinds))
    return kind, args.estimator or results.config.analysis.estimator


def require_example_units(study: Path, command: str) -> None:
    """Refuse, before any work, a command that pairs target images with single source examples on a
    study whose units are whole source classes (the mirror of ``require_class_units``)."""
    from ..study.store import StudyStore

    if not StudyStore.open(study).example_units:
        raise InputError(
            f"{study} is a class-level study (design.unit: class): its units are whole source classes, while "
            f"`{command}` pairs target images with single source examples. Run a study with design.unit: example "
            f"for `{command}`, or use `transfer-influence explain {study}` for the most negative source classes of an image"
        )
