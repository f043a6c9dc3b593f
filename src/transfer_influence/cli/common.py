"""What several command handlers share: config overrides from flags, and the study context a command
opens from its flags (``study_context``), so that every handler is parse → context → function → print."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import InputError
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
