"""Argument types and flag helpers: a bad number or name is refused while parsing (exit 2), before any
work; a renamed flag keeps its old spelling, with a one-line note."""

from __future__ import annotations

import argparse
import warnings
from contextlib import contextmanager
from typing import Iterator, NoReturn, Sequence

from ..errors import InputError, unknown_name_error


# ---- argument types: a bad number is refused while parsing (exit 2), before any work --------------
def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least {least} (got {text!r})") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least} (got {value})")
    return value


def positive_int(text: str) -> int:
    """A count that must be at least 1 (models, workers, seeds, --top, --count)."""
    return _whole_number(text, 1)


def at_least_two(text: str) -> int:
    """A count of models that a standard error across them needs (gradient models)."""
    return _whole_number(text, 2)


def nonnegative_int(text: str) -> int:
    """A whole number that may be 0 (a run index, how many runs to list)."""
    return _whole_number(text, 0)


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number (got {text!r})") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text!r})")
    return value


def positive_float(text: str) -> float:
    """A duration or budget: a finite number above 0."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0 (got {text}): give a positive number, e.g. 10")
    return value


def fraction_open(text: str) -> float:
    """A rate or level strictly between 0 and 1 (a false-discovery rate, a reliability, a subset ratio)."""
    value = _finite(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, both excluded (got {text}): give a fraction "
                                         "such as 0.1 or 0.8")
    return value


def fraction_list(text: str) -> tuple[float, ...]:
    """Comma-separated fractions in (0, 1), e.g. ``--alphas 0.5,0.2,0.1``, each named where it is wrong."""
    values = []
    for part in (part.strip() for part in text.split(",")):
        try:
            values.append(fraction_open(part))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be fractions between 0 and 1 (both excluded) separated by commas, "
                                             f"e.g. 0.5,0.2,0.1 (got {part!r} in {text!r})") from None
    return tuple(dict.fromkeys(values))


def _name_list(text: str, known: Sequence[str], what: str, allow_all: bool = False) -> str:
    """``text`` when it is comma-separated names out of ``known`` (or ``all``), each wrong one named
    with its close matches; returned as given (stripped), for the command to split."""
    if allow_all and text.strip() == "all":
        return "all"
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"must be {what}s separated by commas, e.g. {','.join(known[:2])} (got {text!r})")
    for name in names:
        if name not in known:
            raise argparse.ArgumentTypeError(str(unknown_name_error(what, name, known)))
    return ",".join(names)


def estimator_list(text: str) -> str:
    """Comma-separated names of class-influence estimators (``estimate.registry``), e.g. ``dim,ridge``."""
    from ..estimate.registry import ESTIMATOR_NAMES

    return _name_list(text, sorted(ESTIMATOR_NAMES), "estimator")


def output_kind_list(text: str) -> str:
    """``all`` or comma-separated output kinds (``study.outputs.OUTPUT_KINDS``)."""
    from ..study.outputs import OUTPUT_KINDS

    return _name_list(text, list(OUTPUT_KINDS), "output kind", allow_all=True)

# ---- renamed flags: the old spelling still works, with a one-line note ---------------------------
class RenamedFlagWarning(FutureWarning):
    """A flag given by its old spelling; ``main`` prints it as one ``note:`` line on stderr."""


class _OldSpelling(argparse.Action):
    """The old spelling of a renamed flag, hidden from ``--help``: stores into the new flag's ``dest``
    (appending where the new flag appends) and warns that the flag is renamed."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", append: bool = False,
                 **kwargs: object) -> None:
        super().__init__(option_strings, dest, **kwargs)  # type: ignore[arg-type]
        self.new, self.append = new, append

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        command = parser.prog.split()[-1]
        warnings.warn(f"`{command} {option_string}` is now `{self.new}`; the old spelling still works for now",
                      RenamedFlagWarning, stacklevel=2)
        if self.append:
            values = [*(getattr(namespace, self.dest, None) or []), values]
        setattr(namespace, self.dest, values)


def add_renamed(parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup, old: str, new: str,
                 dest: str, append: bool = False, type: object = None, metavar: str | None = None) -> None:  # noqa: A002
    """Keep ``old`` working as a hidden alias of ``new`` (same ``dest``)."""
    parser.add_argument(old, dest=dest, action=_OldSpelling, new=new, append=append, type=type, metavar=metavar,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)


@contextmanager
def notes_on_one_line() -> Iterator[None]:
    """Show a :class:`RenamedFlagWarning` as ``note: ...`` (one line, no source line) while a
    command runs; other warnings keep their usual form."""
    usual = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, RenamedFlagWarning):
            return f"note: {message}\n"
        return usual(message, category, filename, lineno, line)

    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = usual


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=positive_int, help="number of subset models (overrides num_models)")
    parser.add_argument("--workers", type=positive_int, help="worker processes (default: one per core)")
    parser.add_argument("--serial", action="store_true", help="run in this process (no pool)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--stop-at", type=fraction_open, metavar="R",
                        help="stop early once the split-half Spearman of the class × target-class influences reaches R")


TARGET_HELP = ("the study's target to analyse, by its name (target.name / extra_targets[].name in the config; "
               "default: the primary target)")


def add_target_option(parser: argparse.ArgumentParser, old_spelling: bool = True) -> None:
    """``--target-set NAME``; ``old_spelling``: ``--target NAME`` still works, where ``--target``
    never meant anything else in that command."""
    parser.add_argument("--target-set", dest="target_set", metavar="NAME", help=TARGET_HELP)
    if old_spelling:
        add_renamed(parser, "--target", "--target-set NAME", "target_set", metavar="NAME")


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are the package's one-line ``InputError`` (exit status 2 in
    ``main``), like every other bad input: a bad value names its flag, the problem and the fix."""

    def error(self, message: str) -> NoReturn:
        flag, sep, problem = message.partition(": ")
        if message.startswith("argument ") and sep:  # a value refused by a flag's type or choices
            flag = flag.removeprefix("argument ")
            raise InputError(f"{flag} {problem}" if problem.startswith("must ") else f"{flag}: {problem}")
        raise InputError(f"{self.prog}: {message}; `{self.prog} --help` lists the options")
