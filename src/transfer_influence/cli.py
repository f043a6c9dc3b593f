"""Command line: ``transfer-influence run|work|influence|diagnose|report|plan|demo|counterfactual|compare-rankings|handpicked|whatif|project|explain|verify|leaks``."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NoReturn, Sequence

from .errors import InputError, UserError, unknown_name_error

if TYPE_CHECKING:
    from .analysis.planted import LeakFindings, PlantedScore
    from .data.planted import PlantedFaults
from .study.config import StudyConfig, load_config, packaged_config

EXIT_USAGE = 2
"""A problem the user can fix: bad config, bad input, a study that does not match."""
EXIT_INTERNAL = 1
"""A bug in transfer-influence: the message says so, ``--debug`` shows the traceback."""
EXIT_INTERRUPTED = 130


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
    from .estimate.registry import ESTIMATOR_NAMES

    return _name_list(text, sorted(ESTIMATOR_NAMES), "estimator")


def output_kind_list(text: str) -> str:
    """``all`` or comma-separated output kinds (``study.outputs.OUTPUT_KINDS``)."""
    from .study.outputs import OUTPUT_KINDS

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


def _add_renamed(parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup, old: str, new: str,
                 dest: str, append: bool = False, type: object = None, metavar: str | None = None) -> None:  # noqa: A002
    """Keep ``old`` working as a hidden alias of ``new`` (same ``dest``)."""
    parser.add_argument(old, dest=dest, action=_OldSpelling, new=new, append=append, type=type, metavar=metavar,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)


@contextmanager
def _notes_on_one_line() -> Iterator[None]:
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


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=positive_int, help="number of subset models (overrides num_models)")
    parser.add_argument("--workers", type=positive_int, help="worker processes (default: one per core)")
    parser.add_argument("--serial", action="store_true", help="run in this process (no pool)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--stop-at", type=fraction_open, metavar="R",
                        help="stop early once the split-half Spearman of the class × target-class influences reaches R")


TARGET_HELP = ("the study's target to analyse, by its name (target.name / extra_targets[].name in the config; "
               "default: the primary target)")


def _add_target_option(parser: argparse.ArgumentParser, old_spelling: bool = True) -> None:
    """``--target-set NAME``; ``old_spelling``: ``--target NAME`` still works, where ``--target``
    never meant anything else in that command."""
    parser.add_argument("--target-set", dest="target_set", metavar="NAME", help=TARGET_HELP)
    if old_spelling:
        _add_renamed(parser, "--target", "--target-set NAME", "target_set", metavar="NAME")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are the package's one-line ``InputError`` (exit status 2 in
    ``main``), like every other bad input: a bad value names its flag, the problem and the fix."""

    def error(self, message: str) -> NoReturn:
        flag, sep, problem = message.partition(": ")
        if message.startswith("argument ") and sep:  # a value refused by a flag's type or choices
            flag = flag.removeprefix("argument ")
            raise InputError(f"{flag} {problem}" if problem.startswith("must ") else f"{flag}: {problem}")
        raise InputError(f"{self.prog}: {message}; `{self.prog} --help` lists the options")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="transfer-influence",
        description="Measure how each source class drives a transfer-learned model's target predictions.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="plan, train and store a study (resumable: run again to continue)")
    run.add_argument("config", type=Path, help="study config (YAML)")
    run.add_argument("--out", type=Path, help="study directory (default: studies/<name>)")
    _add_run_options(run)
    run.add_argument("--executor", choices=["process", "serial", "ray", "slurm"],
                     help="how runs execute (overrides execution.executor): ray needs the [ray] extra, slurm the "
                     "[slurm] extra and a SLURM login node")
    run.add_argument("--address", metavar="HOST:PORT",
                     help="with --executor ray: the Ray head node to join (overrides execution.ray.address; "
                     "default: start a local Ray)")

    work = sub.add_parser(
        "work",
        help="run one run of a study created by `run`, in this process (for cluster schedulers; idempotent)",
        description="Run exactly one run of an existing study from its stored config and write its run file. "
        "A run whose file exists is left alone (exit 0), so a scheduler may call this again safely.",
    )
    work.add_argument("study", type=Path, help="study directory (created by `transfer-influence run`)")
    work.add_argument("--index", type=nonnegative_int, required=True, help="run index: 0 to num_models-1 for subset runs, "
                      "0 to baselines.repeats-1 for baselines")
    work.add_argument("--kind", default="subset", choices=["subset", "all_source", "random_init"],
                      help="which run of that index (default: subset)")

    status = sub.add_parser("status", help="done / failed / running / missing runs of a study, its models per "
                            "minute and an ETA (read-only: works beside any executor)")
    status.add_argument("study", type=Path, help="study directory")
    status.add_argument("--list", type=nonnegative_int, default=20, metavar="N",
                        help="missing runs listed by name (default 20; 0: only their number)")

    infl = sub.add_parser("influence", help="estimate class influences from a study's finished runs")
    infl.add_argument("study", type=Path)
    infl.add_argument("--kind", help="output kind: p_true, correct, raw_margin, softmax_margin "
                      "(default: the study's analysis.output_kind)")
    infl.add_argument("--top", type=positive_int, default=10, help="classes to print at each end of the ranking")
    infl.add_argument("--out", type=Path, help="directory for CSV/NPY files (default: STUDY/influence)")
    infl.add_argument("--estimator", choices=["dim", "ridge"],
                      help="dim: difference of means (Algorithm 1); ridge: regression on the inclusion mask "
                      "(default: the study's analysis.estimator)")
    infl.add_argument("--partial", action="store_true",
                      help="estimate from the runs finished so far, while the study is still running")
    infl.add_argument("--fdr", type=fraction_open, default=0.1,
                      help="false-discovery rate for the significant-class list, between 0 and 1 (default 0.1)")
    _add_target_option(infl)

    diag = sub.add_parser("diagnose", help="convergence diagnostics: split-half, bootstrap, held-out, knockoff FDR")
    diag.add_argument("study", type=Path)
    diag.add_argument("--kinds", type=output_kind_list, default="all", help="comma-separated output kinds, or 'all'")
    diag.add_argument("--estimators", type=estimator_list, default="dim,ridge",
                      help="comma-separated estimators (default dim,ridge)")
    diag.add_argument("--reliability", dest="target", type=fraction_open, default=0.8, metavar="R",
                      help="split-half Spearman to project the model count for, between 0 and 1 (default 0.8)")
    _add_renamed(diag, "--target", "--reliability R", "target", type=fraction_open, metavar="R")
    diag.add_argument("--partial", action="store_true", help="allow a study that is still running")
    _add_target_option(diag, old_spelling=False)

    plan = sub.add_parser("plan", help="run short pilots and recommend alpha, design and number of models for a budget")
    plan.add_argument("config", type=Path)
    plan.add_argument("--out", type=Path, help="directory for the pilot studies (default: studies/<name>-pilots)")
    plan.add_argument("--alphas", type=fraction_list, default="0.5,0.2,0.1",
                      help="candidate subset ratios, each between 0 and 1 (default 0.5,0.2,0.1)")
    plan.add_argument("--pilot-seconds", type=positive_float, default=60.0, help="training time per pilot")
    plan.add_argument("--reliability", type=fraction_open, default=0.8, metavar="R",
                      help="split-half Spearman to reach, between 0 and 1 (default 0.8)")
    _add_renamed(plan, "--target", "--reliability R", "reliability", type=fraction_open, metavar="R")
    plan.add_argument("--budget-minutes", type=positive_float, default=10.0, help="training time the real study may take")
    plan.add_argument("--level", default="target_class", choices=["overall", "target_class", "example"])

    report = sub.add_parser("report", help="write plots, tables and report.html for a study")
    report.add_argument("study", type=Path)
    report.add_argument("--kind", help="output kind (default: the config's analysis.output_kind)")
    report.add_argument("--estimator", choices=["dim", "ridge"], help="default: the config's analysis.estimator")
    _add_target_option(report)

    project = sub.add_parser("project", help="target images a source class influences most, or the source classes "
                             "behind the images of a target class (paper §4.1)")
    project.add_argument("study", type=Path)
    which = project.add_mutually_exclusive_group(required=True)
    which.add_argument("--source-class", help="show the target images this source class influences most (+ and −)")
    which.add_argument("--target-class", help="group this target class's images by their most positive source class")
    project.add_argument("--top", type=positive_int, default=8,
                         help="target images at each end (--source-class; at most half the target images), or per group")
    project.add_argument("--kind", help="output kind (default: the study's analysis.output_kind)")
    project.add_argument("--estimator", choices=["dim", "ridge"], help="default: the study's analysis.estimator")
    project.add_argument("--out", type=Path, help="directory for the PNG and CSV (default: STUDY/projection)")
    project.add_argument("--partial", action="store_true", help="use the runs finished so far")
    _add_target_option(project)

    explain = sub.add_parser("explain", help="the most negative source classes of a target image, or of the most "
                             "often mispredicted ones (paper §4.2)")
    explain.add_argument("study", type=Path)
    explain.add_argument("--image", action="append", metavar="ID",
                         help="target test id (repeat for several; default: the most often mispredicted images)")
    _add_renamed(explain, "--target", "--image ID", "image", append=True, metavar="ID")
    explain.add_argument("--count", type=positive_int, default=5,
                         help="mispredicted images to explain when no --image is given")
    explain.add_argument("--top", type=positive_int, default=5, help="most negative source classes to list per image")
    explain.add_argument("--kind", help="output kind (default: the study's analysis.output_kind)")
    explain.add_argument("--estimator", choices=["dim", "ridge"], help="default: the study's analysis.estimator")
    explain.add_argument("--out", type=Path, help="directory for the PNG and CSV (default: STUDY/explain)")
    explain.add_argument("--partial", action="store_true", help="use the runs finished so far")
    explain.add_argument("--target-set", dest="target_set", metavar="NAME", help="the study's target dataset, by its "
                         "name (default: the primary target); --image names an image of it")

    leaks = sub.add_parser("leaks", help="source examples with the most positive (candidate leaks) and most negative "
                           "(candidate mislabeled) influence on each target image, of an example-level study (paper §4.3)")
    leaks.add_argument("study", type=Path, help="an example-level study (design.unit: example)")
    leaks.add_argument("--top", type=positive_int, default=10, help="pairs at each end to print and draw (default 10)")
    leaks.add_argument("--per-target", type=positive_int, default=3, metavar="K",
                       help="source examples kept at each end per target image in the table (default 3)")
    leaks.add_argument("--kind", help="output kind (default: the study's analysis.output_kind)")
    leaks.add_argument("--estimator", choices=["lasso", "ridge", "dim"], default="lasso",
                       help="lasso: sparse datamodel per target, λ chosen on held-out models (default); ridge: "
                       "regression on the inclusion mask; dim: difference of means")
    leaks.add_argument("--out", type=Path, help="directory for pairs.csv and pairs.png (default: STUDY/leaks)")
    leaks.add_argument("--partial", action="store_true", help="use the runs finished so far")
    leaks.add_argument("--curve", action="store_true", help="in a study with planted faults (source.plant): detection "
                       "against the number of models, to STUDY/leaks/planted_curve.csv and .png")
    leaks.add_argument("--models", help="model counts for --curve, comma-separated (default: 100, 200, 400 … all)")
    leaks.add_argument("--curve-estimators", dest="curve_estimators",
                       help="estimators for --curve, comma-separated from lasso,ridge,dim (default: --estimator)")
    leaks.add_argument("--recall-k", dest="recall_k", type=positive_int, default=10,
                       help="a planted leak is found when it is among this many most positive source examples of its "
                       "own target image (default 10)")

    demo = sub.add_parser("demo", help="run the embedded default study (glyphs + clothing → MNIST digits) and its report")
    demo.add_argument("--out", type=Path, default=Path("demo-study"))
    demo.add_argument("--config", type=Path, help="use this config instead of the packaged demo")
    demo.add_argument("--variant", choices=["harm", "leaks"], help="harm: the packaged demo plus 20 junk classes of digit "
                      "glyphs with scrambled labels, a planted harm to recover (configs/demo_harm.yaml); leaks: an "
                      "example-level study whose source holds planted leaks and mislabels, then its leak pairs (ridge) and "
                      "their detection against the number of models (configs/leaks.yaml, about 27 minutes on 2 cores)")
    _add_run_options(demo)

    cf = sub.add_parser("counterfactual", help="retrain without the most positive / negative / random k classes "
                        "(source examples, in an example-level study) and compare with the full source (paper Fig. 2; "
                        "resumable)")
    cf.add_argument("study", type=Path, help="a study directory with finished runs")
    cf.add_argument("--k", help="comma-separated numbers of classes to remove (default: 5,10,15,20,30,40,50 below K; "
                    "in an example-level study, source examples: 10,20,40,80,160)")
    cf.add_argument("--repeats", type=positive_int, default=10, help="seeds per arm, the same in every arm, and as many fresh "
                    "seeds to confirm the chosen removal (at least 3; default 10)")
    cf.add_argument("--ranking-from", type=Path, help="rank classes by this other study's influences (same class names)")
    cf.add_argument("--estimator", choices=["dim", "ridge"], help="default: the ranking study's analysis.estimator")
    cf.add_argument("--kind", help="output kind to rank by (default: the ranking study's analysis.output_kind)")
    cf.add_argument("--serial", action="store_true", help="retrain in this process (no pool)")
    cf.add_argument("--workers", type=positive_int, help="worker processes (default: one per core)")
    cf.add_argument("--quiet", action="store_true", help="no progress output")
    _add_target_option(cf)
    whatif = sub.add_parser("whatif", help="predict the full source's target accuracy without some classes, "
                            "from the study's datamodel, before retraining")
    whatif.add_argument("study", type=Path)
    whatif.add_argument("--remove", required=True, help="comma-separated source classes to remove")
    whatif.add_argument("--level", choices=["log", "linear"], default="log",
                        help="interpolate accuracy between the subsets and the full source in log classes "
                        "(default: accuracy saturates as classes are added) or linearly in classes")
    whatif.add_argument("--scaling", choices=["dilution", "none"], default="dilution",
                        help="class effects in the full source: scaled by their share of it (dilution) or not")
    whatif.add_argument("--partial", action="store_true", help="use the runs finished so far")
    _add_target_option(whatif)
    hp = sub.add_parser("handpicked", help="retrain on only the source classes related to the target classes "
                        "and compare with the full source (paper App. A.4; resumable)")
    hp.add_argument("study", type=Path, help="a study directory")
    hp.add_argument("--mapping", type=Path, help="YAML: target class name → list of related source class names "
                    "(default for digit targets and a glyph source: the built-in look-alikes; for source "
                    "classes named by WordNet ids: the target's synset and its hyponyms in WordNet)")
    hp.add_argument("--repeats", type=positive_int, default=10, help="seeds, the counterfactual's full-source ones (default 10)")
    hp.add_argument("--serial", action="store_true", help="retrain in this process (no pool)")
    hp.add_argument("--workers", type=positive_int, help="worker processes (default: one per core)")
    hp.add_argument("--quiet", action="store_true", help="no progress output")
    _add_target_option(hp)
    cmp = sub.add_parser("compare-rankings", help="compare the counterfactual sweeps of a study's own ranking and "
                         "of rankings from other studies (--ranking-from), paired seed by seed")
    cmp.add_argument("study", type=Path, help="a study directory with counterfactual sweeps")
    _add_target_option(cmp)
    _add_verify_parser(sub)
    return parser


def _add_verify_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verify = sub.add_parser("verify", help="retrain with and without an image's most negative source class and count "
                            "the labels predicted for it (paper Fig. 6 right, App. E.4; resumable)")
    verify.add_argument("study", type=Path, help="a study directory with finished runs")
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("--image", metavar="ID", help="target test id of the image to verify")
    _add_renamed(which, "--target", "--image ID", "image", metavar="ID")
    which.add_argument("--summary", action="store_true",
                       help="App. E.4: how often removing the most negative class helps the most negatively influenced images")
    verify.add_argument("--remove", metavar="CLASS", help="with --image: the source class to remove "
                        "(default: the image's most negative one)")
    verify.add_argument("--pairs", type=positive_int, help="with --summary: most negative (class, image) pairs (default 30)")
    verify.add_argument("--classes", type=positive_int,
                        help="with --summary: classes retrained away, the most frequent among the pairs (default 10)")
    verify.add_argument("--repeats", type=positive_int, default=10, help="seeds with and without the class (default 10)")
    verify.add_argument("--kind", help="output kind of the influences (default: the study's analysis.output_kind)")
    verify.add_argument("--estimator", choices=["dim", "ridge"], help="default: the study's analysis.estimator")
    verify.add_argument("--serial", action="store_true", help="retrain in this process (no pool)")
    verify.add_argument("--workers", type=positive_int, help="worker processes (default: one per core)")
    verify.add_argument("--quiet", action="store_true", help="no progress output")
    verify.add_argument("--target-set", dest="target_set", metavar="NAME", help="the study's target dataset, by its "
                        "name (default: the primary target); --image names an image of it")


def _apply_overrides(config: StudyConfig, args: argparse.Namespace) -> StudyConfig:
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


def _apply_executor_options(config: StudyConfig, args: argparse.Namespace) -> StudyConfig:
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


def _cmd_run(args: argparse.Namespace) -> int:
    from .pipeline.run import run_study

    config = _apply_executor_options(_apply_overrides(load_config(args.config), args), args)
    out = args.out or Path("studies") / config.name
    report = run_study(config, out, progress=not args.quiet)
    t = report.timings
    print(
        f"{out}: {report.planned} runs planned, {report.skipped} already finished, {len(report.executed)} run now "
        f"in {t['runs_wall_seconds']:.0f} s"
    )
    return 0


def _cmd_work(args: argparse.Namespace) -> int:
    from .execute.single import run_single

    outcome = run_single(args.study, args.kind, args.index, stream=sys.stderr)
    if outcome.summary is None:
        print(f"{outcome.run_id} is already done ({outcome.path}); nothing to run")
    else:
        print(
            f"{outcome.run_id} done in {sum(outcome.summary.seconds.values()):.1f} s "
            f"(target accuracy {outcome.summary.target_accuracy:.3f}): {outcome.path}"
        )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .pipeline.status import format_status, study_status

    print(format_status(study_status(args.study), max_listed=args.list))
    return 0


def _open_finished(study: Path, partial: bool, target: str | None = None):  # type: ignore[no-untyped-def]
    """The study's results on its target ``target`` (None: the primary); an unfinished study needs
    ``--partial`` so that nobody mistakes an anytime estimate for the final one."""
    from .study.results import open_study

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


def _require_class_units(study: Path, command: str) -> None:
    """Refuse, before any work, a command that reads or retrains whole source classes on a study
    whose subsets are drawn over source examples (``design.unit: example``)."""
    from .study.store import StudyStore

    if StudyStore.open(study).example_units:
        raise InputError(
            f"{study} is an example-level study (design.unit: example): its units are source examples, while "
            f"`{command}` works on source classes. Use `transfer-influence influence {study}` for example "
            "influences, or run `" + command + "` on a study with design.unit: class"
        )


def _target_folder(results, folder: Path) -> Path:  # type: ignore[no-untyped-def]
    """``folder`` for the primary target; ``folder/<name>`` for another, so targets never mix."""
    return folder if results.target_name == results.target_names[0] else folder / results.target_name


def _target_line(results) -> str:  # type: ignore[no-untyped-def]
    """', target NAME' for a study with several targets (nothing for a one-target study)."""
    return f", target {results.target_name}" if len(results.target_names) > 1 else ""


def _cmd_influence(args: argparse.Namespace) -> int:
    import numpy as np

    from .analysis.rankings import example_influence, overall_influence, per_target_class_influence, ranked
    from .evaluate.fdr import significant_classes
    from .report.tables import write_overall_csv, write_per_target_csv

    results = _open_finished(args.study, args.partial, args.target_set)
    kind, estimator = _analysis_choice(results, args)  # an unknown --kind is refused before the folder exists
    out = args.out or _target_folder(results, args.study / "influence")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    overall = overall_influence(results, kind, estimator)
    per_class = per_target_class_influence(results, kind, estimator)
    examples = example_influence(results, kind, estimator)
    seconds = time.perf_counter() - started
    suffix = f"{kind}_{estimator}"
    write_overall_csv(overall, out / f"overall_{suffix}.csv")
    write_per_target_csv(per_class, out / f"per_target_class_{suffix}.csv")
    np.save(out / f"example_values_{suffix}.npy", examples.values)
    np.save(out / f"example_stderr_{suffix}.npy", examples.stderr)
    order = ranked(overall)
    units = "source examples" if results.unit_kind == "example" else "classes"
    print(f"{results.num_models} models, {len(results.class_names)} {units}, {len(results.target_ids)} targets"
          f"{_target_line(results)}, output {kind}, estimator {estimator}; estimated in {seconds:.2f} s")
    half = overall.critical_value(0.95)
    for title, rows in (("most positive", order[: args.top]), ("most negative", order[-args.top :][::-1])):
        print(f"{title} overall influence (± 95% interval):")
        for row in rows:
            print(f"  {row.name:>14}  {row.influence:+.5f} ± {half * row.stderr:.5f}")
    significant = significant_classes(overall, 0, args.fdr)
    for sign, keep in (("positive", lambda v: v > 0), ("negative", lambda v: v < 0)):
        names = [name for name, value, _ in significant if keep(value)]
        print(f"significantly {sign} at FDR {args.fdr:g} (one-sided Benjamini–Hochberg): {len(names)} {units}"
              + (": " + ", ".join(names) if names else ""))
    print(f"tables in {out}")
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from .analysis.convergence import diagnose
    from .report.tables import diagnostics_lines, write_diagnostics_csv

    results = _open_finished(args.study, args.partial, args.target_set)
    kinds = results.output_kinds if args.kinds == "all" else tuple(args.kinds.split(","))
    estimators = tuple(args.estimators.split(","))
    analysis = results.config.analysis  # bootstrap and knockoffs of the study's own choice, as the report's
    primary = (analysis.output_kind if analysis.output_kind in kinds else kinds[0],
               analysis.estimator if analysis.estimator in estimators else estimators[0])
    started = time.perf_counter()
    diag = diagnose(results, kinds, estimators, primary=primary, target_reliability=args.target)
    out = _target_folder(results, args.study / "diagnose")  # its own folder: `report` never overwrites it
    out.mkdir(parents=True, exist_ok=True)
    diag.save(out / "diagnostics.json")
    rows = diag.table()
    write_diagnostics_csv(rows, out / "diagnostics.csv")
    print(f"{results.num_models} models, α = {results.config.design.alpha:g}, design {results.config.design.kind}; "
          f"diagnosed in {time.perf_counter() - started:.1f} s")
    print("\n".join(diagnostics_lines(diag, rows, args.target)))
    print(f"diagnostics: {out / 'diagnostics.json'}, {out / 'diagnostics.csv'}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from .pipeline.pilots import run_pilots

    config = load_config(args.config)
    if config.design.unit != "class":
        raise InputError(
            f"{args.config}: `plan` pilots class-level designs; this config draws subsets of source examples "
            "(design.unit: example). Run the study with `transfer-influence run` and read it with `influence`"
        )
    out = args.out or Path("studies") / f"{config.name}-pilots"
    recommendation = run_pilots(  # --alphas, --pilot-seconds, --reliability and --budget-minutes checked by their types
        config, out, args.alphas, args.pilot_seconds, args.reliability, args.budget_minutes, args.level, stream=sys.stdout
    )
    recommendation.write(sys.stdout)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report.build import build_report
    from .report.leak_report import build_leak_report
    from .study.store import StudyStore

    if StudyStore.open(args.study).example_units:
        if args.target_set:
            raise InputError("--target: the report of an example-level study is drawn for its primary target")
        print(f"report: {build_leak_report(args.study, kind=args.kind, estimator=args.estimator)}")
        return 0
    report = build_report(args.study, kind=args.kind, estimator=args.estimator, target=args.target_set)
    if report.findings is not None:
        print("findings:\n" + "\n".join(report.findings.lines()))
    print(f"report: {report.html_path}")
    return 0


def _analysis_choice(results, args: argparse.Namespace) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Output kind and estimator: the flags, else the study's ``analysis`` settings; checked before any work."""
    kind = args.kind or results.config.analysis.output_kind
    if kind not in results.output_kinds:
        raise unknown_name_error("output kind", kind, list(results.output_kinds))
    return kind, args.estimator or results.config.analysis.estimator


def _check_projection_request(results, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """The class named and ``--top`` against the study's data, before any estimate: ``--top`` past
    the images there are would only be cut after the estimate (and a huge figure drawn)."""
    from .analysis.projection import check_top, find_source_class, find_target_class, source_projection_limit

    count = len(results.target_ids)
    if args.source_class is not None:
        find_source_class(results.class_names, args.source_class)
        most = source_projection_limit(count)
        check_top(args.top, most, f"{most}, half of the study's {count} target test images (no image is listed at both ends)")
    else:
        find_target_class(results.target_class_names, args.target_class)
        check_top(args.top, count, f"the study's {count} target test images")


def _cmd_project(args: argparse.Namespace) -> int:
    from .analysis.projection import (
        check_top, find_source_class, find_target_class, load_study_images, project_source_class, project_target_class,
    )
    from .analysis.rankings import example_influence
    from .report.build import class_thumbnails
    from .report.plots import plot_source_projection, plot_target_projection
    from .report.projection_tables import file_stem, write_source_projection_csv, write_target_projection_csv

    check_top(args.top)
    _require_class_units(args.study, "project")
    results = _open_finished(args.study, args.partial, args.target_set)
    kind, estimator = _analysis_choice(results, args)
    _check_projection_request(results, args)
    out = args.out or _target_folder(results, args.study / "projection")
    out.mkdir(parents=True, exist_ok=True)
    influence = example_influence(results, kind, estimator)
    images = load_study_images(args.study, results.target_name)
    print(f"{results.num_models} models, output {kind}, estimator {estimator}")
    if args.source_class is not None:
        projection = project_source_class(
            influence, results.target_labels, results.target_class_names, args.source_class, args.top
        )
        stem = out / f"source_{file_stem(args.source_class)}_{kind}_{estimator}"
        write_source_projection_csv(projection, stem.with_suffix(".csv"))
        plot_source_projection(projection, images, stem.with_suffix(".png"))
        for title, entries in (("most positive", projection.most_positive), ("most negative", projection.most_negative)):
            print(f"target images with the {title} influence of source class {args.source_class!r}:")
            for entry in entries:
                print(f"  {entry.target_id:>20}  true {entry.true_label:>8}  {entry.influence:+.5f} ± {entry.stderr:.5f}")
    else:
        grouping = project_target_class(influence, results.target_labels, results.target_class_names, args.target_class)
        stem = out / f"target_{file_stem(args.target_class)}_{kind}_{estimator}"
        write_target_projection_csv(grouping, stem.with_suffix(".csv"))
        plot_target_projection(grouping, images, class_thumbnails(images), stem.with_suffix(".png"), args.top)
        print(f"images of target class {args.target_class!r} by their most positive source class:")
        for group in grouping.groups:
            print(f"  {group.source_class:>14}: {len(group.members)} images")
        print(f"  {'(none positive)':>14}: {len(grouping.unclaimed)} images")
    print(f"figure: {stem.with_suffix('.png')}\ntable: {stem.with_suffix('.csv')}")
    return 0


def _require_example_units(study: Path, command: str) -> None:
    """Refuse, before any work, a command that pairs target images with single source examples on a
    study whose units are whole source classes (the mirror of ``_require_class_units``)."""
    from .study.store import StudyStore

    if not StudyStore.open(study).example_units:
        raise InputError(
            f"{study} is a class-level study (design.unit: class): its units are whole source classes, while "
            f"`{command}` pairs target images with single source examples. Run a study with design.unit: example "
            f"for `{command}`, or use `transfer-influence explain {study}` for the most negative source classes of an image"
        )


def _cmd_leaks(args: argparse.Namespace) -> int:
    _leaks(args)
    return 0


def _leaks(args: argparse.Namespace) -> "LeakFindings":
    """``leaks``: fit, print and write the pairs (and the planted-fault scores and curve); the
    findings are returned for the demo's report, which then needs no second fit."""
    from .analysis.leaks import check_per_target
    from .analysis.planted import study_leak_findings, study_planted_curve
    from .analysis.projection import check_top, load_study_images
    from .data.planted import read_planted
    from .report.leak_tables import write_leak_pairs_csv, write_planted_curve_csv
    from .report.plots import plot_leak_pairs, plot_planted_curve

    check_top(args.top)
    check_per_target(args.per_target)
    _require_example_units(args.study, "leaks")
    results = _open_finished(args.study, args.partial)
    kind = args.kind or results.config.analysis.output_kind
    curve_request = _planted_curve_request(args, read_planted(results.unit_names), results.num_models)  # before any fit
    findings = study_leak_findings(results, kind, args.estimator, args.per_target, args.recall_k, results.config.seed)
    ranking = findings.ranking
    out = args.out or args.study / "leaks"
    out.mkdir(parents=True, exist_ok=True)
    write_leak_pairs_csv(ranking, out / "pairs.csv")
    plot_leak_pairs(ranking, load_study_images(args.study), out / "pairs.png", args.top)
    print(f"{results.num_models} models, {len(results.unit_names)} source examples, {len(results.target_ids)} target "
          f"images, output {kind}, estimator {args.estimator}; fitted in {findings.seconds:.2f} s")
    for title, pairs in (("most positive (candidate leaks)", ranking.positive),
                         ("most negative (candidate mislabeled / misleading)", ranking.negative)):
        print(f"{title}: {len(pairs)} pairs")
        for pair in pairs[: args.top]:
            print(f"  #{pair.rank:<3} target {pair.target_id:>16} ({pair.target_label})  source {pair.source_id:>16} "
                  f"({pair.source_class})  {pair.coefficient:+.5f}")
    print(f"table: {out / 'pairs.csv'}\nfigure: {out / 'pairs.png'}")
    if findings.planted is not None:
        print("planted faults (source.plant):")
        _print_planted(findings.planted)
    if curve_request is not None:
        counts, estimators = curve_request
        print(f"detection against the number of models ({', '.join(estimators)}):")
        scores = study_planted_curve(results, kind, estimators, counts, args.recall_k, results.config.seed,
                                     on_step=_print_planted, fitted={(results.num_models, args.estimator): findings.coefficients})
        write_planted_curve_csv(scores, out / "planted_curve.csv")
        plot_planted_curve(scores, out / "planted_curve.png")
        print(f"curve: {out / 'planted_curve.csv'}, {out / 'planted_curve.png'}")
    return findings


def _planted_curve_request(args: argparse.Namespace, planted: "PlantedFaults", available: int) -> tuple[list[int], list[str]] | None:
    """The model counts and estimators of ``--curve``, checked before any fitting."""
    from .analysis.leaks import check_leak_estimator
    from .analysis.planted import check_model_counts, default_model_counts

    if args.recall_k < 1:
        raise InputError(f"--recall-k must be at least 1 (got {args.recall_k})")
    if not args.curve:
        if args.models or args.curve_estimators:
            raise InputError("--models and --curve-estimators go with --curve")
        return None
    if planted.empty:
        raise InputError(
            f"--curve scores detection of planted faults, and {args.study} has none (no source.plant in its config); "
            "run a study with planted faults, such as configs/leaks.yaml"
        )
    try:
        counts = [int(m) for m in args.models.split(",")] if args.models else default_model_counts(available)
    except ValueError:
        raise InputError(f"--models {args.models!r}: give whole numbers separated by commas, e.g. --models 100,200,400") from None
    estimators = list(dict.fromkeys(check_leak_estimator(e.strip()) for e in (args.curve_estimators or args.estimator).split(",")))
    return check_model_counts(counts, available), estimators


def _print_planted(score: "PlantedScore") -> None:
    row = score.row()
    k = score.top_k
    print(f"  {score.estimator:>5} on {score.num_models:>5} models: leaks in the top {k} of their own image "
          f"{row[f'leak_recall_top{k}']:.0%} (exact {row[f'exact_recall_top{k}']:.0%}, augmented "
          f"{row[f'augmented_recall_top{k}']:.0%}; median rank {row['leak_median_rank']:g}); mislabels among the "
          f"{score.num_mislabels} most negative: {row['mislabel_precision_min']:.0%} "
          f"({row['mislabel_enrichment_min']:.1f}x random; by summed effect {row['mislabel_enrichment_sum']:.1f}x)")


def _cmd_explain(args: argparse.Namespace) -> int:
    from .analysis.debugging import explain_targets, find_target, most_mispredicted
    from .analysis.projection import check_top, load_study_images
    from .report.plots import plot_explanations
    from .report.projection_tables import file_stem, write_explanations_csv

    check_top(args.top)  # --count and --top are positive by their types
    _require_class_units(args.study, "explain")
    results = _open_finished(args.study, args.partial, args.target_set)
    kind, estimator = _analysis_choice(results, args)
    if args.image:
        columns = [find_target(results, image) for image in args.image]
        name, title = "targets_" + file_stem("+".join(args.image)), "Most negative source classes of the chosen target images"
    else:
        columns = list(most_mispredicted(results, args.count))
        name, title = "most_mispredicted", "Most negative source classes of the most often mispredicted target images"
    out = args.out or _target_folder(results, args.study / "explain")
    out.mkdir(parents=True, exist_ok=True)
    explanations = explain_targets(results, columns, kind, estimator, args.top)
    stem = out / f"{name}_{kind}_{estimator}"
    write_explanations_csv(explanations, stem.with_suffix(".csv"))
    plot_explanations(explanations, load_study_images(args.study, results.target_name), stem.with_suffix(".png"), title)
    print(f"{results.num_models} models, output {kind}, estimator {estimator}")
    for e in explanations:
        print(f"{e.target_id} (true {e.true_label}): right in {e.accuracy:.0%} of models, mean p_true {e.mean_p_true:.3f}")
        for s in e.suspects:
            print(f"  {s.name:>14}  {s.influence:+.5f} [{s.ci95_low:+.5f}, {s.ci95_high:+.5f}]  accuracy "
                  f"{s.accuracy_with:.2f} with ({s.models_with}) / {s.accuracy_without:.2f} without ({s.models_without}), "
                  f"p_true {s.p_true_with:.3f} / {s.p_true_without:.3f}")
    print(f"figure: {stem.with_suffix('.png')}\ntable: {stem.with_suffix('.csv')}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .evaluate.reliability import LEVEL_NAMES
    from .pipeline.run import run_study
    from .report.build import build_report

    if args.config and args.variant:
        raise InputError("demo: give either --config or --variant, not both")
    packaged = packaged_config({"harm": "demo_harm", "leaks": "leaks"}.get(args.variant or "", "demo"))
    config = _apply_overrides(load_config(args.config or packaged), args)
    started = time.perf_counter()
    run = run_study(config, args.out, progress=not args.quiet)
    if config.design.unit == "example":  # no class report: pair leaks instead (and score planted ones)
        print(f"\nstudy: {args.out}; runs {run.timings['runs_wall_seconds']:.0f} s")
        from .report.leak_report import build_leak_report

        curve = ["--curve", "--curve-estimators", "dim,ridge"] if config.source.plant is not None else []
        findings = _leaks(_parser().parse_args(["leaks", str(args.out), "--estimator", "ridge", *curve]))
        print(f"report: {build_leak_report(args.out, findings=findings)}")
        return 0
    report_started = time.perf_counter()
    report = build_report(args.out)
    report_seconds = time.perf_counter() - report_started
    total = time.perf_counter() - started
    t = run.timings
    print(f"\nstudy: {args.out} ({report.overall.num_models} models)")
    if report.findings is not None:
        print("findings:\n" + "\n".join(report.findings.lines()))
    for label, (mean, std, count) in report.baselines.rows.items():
        print(f"  target accuracy, {label}: {mean:.3f} ± {std:.3f} (n={count})")
    if report.lookalikes is not None:
        lk = report.lookalikes
        print(f"  digits with a look-alike glyph in their top {lk.top_k}: {lk.num_hits}/{len(lk.checked)}")
    if report.diagnostics is not None:
        analysis = config.analysis
        curves = report.diagnostics.reliability[(analysis.output_kind, analysis.estimator)]
        print(
            f"  split-half Spearman ({analysis.estimator}, {analysis.output_kind}, α = {config.design.alpha:g}): "
            + ", ".join(f"{LEVEL_NAMES[level]} " + (f"{curve.at_full_size:.2f}" if curve.models_per_half.size else "not measured")
                        for level, curve in curves.items())
        )
        for note in report.diagnostics.notes:
            print(f"  note: {note}")
    print(
        f"time: data {t['data_seconds']:.1f} s, runs {t['runs_wall_seconds']:.1f} s "
        f"(train {t['train_seconds_total']:.0f} s + transfer {t['transfer_seconds_total']:.0f} s of worker time), "
        f"report {report_seconds:.1f} s, total {total:.1f} s"
    )
    print(f"report: {report.html_path}")
    return 0


def _cmd_counterfactual(args: argparse.Namespace) -> int:
    from .analysis.counterfactual import run_counterfactual, write_counterfactual
    from .analysis.recommendation import recommendation_lines
    from .report.plots import plot_counterfactual

    try:
        ks = [int(k) for k in args.k.split(",")] if args.k else None
    except ValueError:
        raise InputError(f"--k {args.k!r}: give whole numbers separated by commas, e.g. --k 5,10,20") from None
    result = run_counterfactual(
        args.study, ks, args.repeats, args.ranking_from, args.estimator, args.kind,
        serial=args.serial, workers=args.workers, progress=not args.quiet, target=args.target_set,
    )
    files = write_counterfactual(result)
    plot_counterfactual(result, result.sweep_dir / "counterfactual.png")
    r = result.ranking
    print(f"ranking: {r.estimator} on {r.kind} from {r.source} ({r.num_models} models"
          f"{', selection half of the target' if r.on_selection_half else ''}); scored on "
          f"{int((~result.selection).sum())} held-apart target images; {len(result.seeds)} paired seeds; "
          f"{len(result.executed)} retrains run now")
    curve = r.whatif
    if curve is None:
        print(f"what-if rule: not available ({r.whatif_note})")
    else:
        print(f"what-if rule: removing the {curve.best_k} most negative classes is predicted best "
              f"({curve.predicted_gain:+.4f} accuracy on the selection half; k = 0 … {len(curve.predicted) - 1} predicted)")
    print(f"{'selection':>11} {'k':>4} {'mean':>7} {'std':>7} {'n':>3} {'diff':>8} {'SE':>7}  > 2 SE*")
    for a in result.arms:
        diff = "" if a.differences is None else f"{a.diff_vs_full:+8.4f} {a.diff_se:7.4f}  {'yes' if a.beats_full else 'no'}"
        print(f"{a.arm.selection:>11} {a.arm.k:>4} {a.mean:7.4f} {a.std:7.4f} {a.accuracy.size:>3} {diff}")
    print("* each arm's own comparison on the selection seeds, unadjusted for picking the best of many: not a recommendation")
    for line in recommendation_lines(result.recommendation):
        print(line)
    print(f"the source to train on: {files['recommended']}; the recommendation's numbers: {files['recommendation']}")
    print(f"summary: {files['summary']}; figure: {result.sweep_dir / 'counterfactual.png'}")
    return 0


def _cmd_compare_rankings(args: argparse.Namespace) -> int:
    from .analysis.ranking_comparison import best_removal_lines, comparison_rows, read_ranking_sweeps, write_comparison

    sweeps = read_ranking_sweeps(args.study, args.target_set)
    rows = comparison_rows(sweeps)
    path = write_comparison(args.study, rows, args.target_set)

    def pm(mean: object, se: object) -> str:
        return "" if mean == "" else f"{float(mean):+.4f} ± {float(se):.4f}"  # type: ignore[arg-type]

    print(f"{len(sweeps[0].seeds)} paired seeds; differences ± their standard error")
    print(f"{'ranking':>22} {'models':>6} {'arm':>14} {'vs full':>18} {'random − top':>18} {'bottom − ' + sweeps[0].label:>18}")
    for row in rows:
        arm = f"{row['selection']}-{row['k']}"
        print(f"{str(row['ranking']):>22} {row['models']:>6} {arm:>14} {pm(row['diff_vs_full'], row['diff_vs_full_se']):>18} "
              f"{pm(row['random_minus_top'], row['random_minus_top_se']):>18} "
              f"{pm(row['bottom_minus_first_ranking_bottom'], row['bottom_minus_first_ranking_bottom_se']):>18}")
    for line in best_removal_lines(sweeps):
        print(line)
    print(f"table: {path}")
    return 0


def _cmd_whatif(args: argparse.Namespace) -> int:
    from .analysis.whatif import what_if_removed

    _require_class_units(args.study, "whatif")
    results = _open_finished(args.study, args.partial, args.target_set)
    result = what_if_removed(results, [c.strip() for c in args.remove.split(",") if c.strip()], scaling=args.scaling,
                            level=args.level)
    half = result.differential_half_width(0.95)
    intervals = [f"[{a:.4f}, {b:.4f}]" for a, b in zip(*result.interval(0.95))] if result.has_interval else None
    print(f"predicted target accuracy of the full source ({result.num_classes} classes) without "
          f"{', '.join(result.removed)}:")
    print(f"{'targets':>14} {'full source':>11} {'predicted':>9} {'95% interval':>17} {'vs average classes':>19}")
    for j, column in enumerate(result.columns):
        interval = intervals[j] if intervals is not None else f"{'none':>17}"
        print(f"{column:>14} {result.full_accuracy[j]:>11.4f} {result.predicted[j]:>9.4f} "
              f"{interval} {result.differential[j]:>+10.4f} ± {half[j]:.4f}")
    if intervals is None:
        print(f"no interval: {result.interval_note}")
    if result.any_clipped:
        clipped = [c for c, flag in zip(result.columns, result.clipped) if flag]  # type: ignore[arg-type]
        print(f"clipped: the linear prediction fell outside 0–1 for {', '.join(clipped)} "
              "and is shown at the bound; an accuracy cannot leave it, so the datamodel's extrapolation is off there")
    print(f"note: {result.extrapolation}; the last column is the change from removing these classes rather "
          f"than as many average ones, within sources of {result.subset_size} classes (no extrapolation; "
          f"± its 95% t half-width)")
    return 0


def _cmd_handpicked(args: argparse.Namespace) -> int:
    from .analysis.handpicked import run_handpicked, write_handpicked

    _require_class_units(args.study, "handpicked")
    result = run_handpicked(args.study, args.mapping, args.repeats, serial=args.serial, workers=args.workers,
                            progress=not args.quiet, target=args.target_set)
    files = write_handpicked(result)
    full, picked = result.full, result.hand_picked
    print(f"relation: {result.relation.origin}; keeping {len(result.kept)} of {len(result.class_names)} source classes "
          f"({', '.join(result.class_names[c] for c in result.kept)}); scored on {int(result.scoring.sum())} held-apart "
          f"target images; {len(result.seeds)} paired seeds; {len(result.executed)} retrains run now")
    if result.relation.unmapped:
        print(f"target classes with no related source class: {', '.join(result.relation.unmapped)}")
    print(f"full source  {full.mean:.4f} ± {full.std:.4f}")
    print(f"hand-picked  {picked.mean:.4f} ± {picked.std:.4f}  difference {picked.diff_vs_full:+.4f} "
          f"(SE {picked.diff_se:.4f}; > 2 SE: {'yes' if picked.beats_full else 'no'})")
    print(f"summary: {files['summary']}; details: {files['hand_picked']}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    if args.summary and args.remove is not None:
        raise InputError("--remove goes with --image: the summary removes each image's most negative class itself")
    if args.image is not None and (args.pairs is not None or args.classes is not None):
        raise InputError("--pairs and --classes go with --summary, not --image")
    _require_class_units(args.study, "verify")
    options = dict(repeats=args.repeats, kind=args.kind, estimator=args.estimator, serial=args.serial,
                   workers=args.workers, progress=not args.quiet, target_set=args.target_set)
    return _verify_target(args, options) if args.image is not None else _verify_summary(args, options)


def _verify_target(args: argparse.Namespace, options: dict) -> int:  # type: ignore[type-arg]
    from .analysis.verify import target_file_stem, verify_target, write_target
    from .report.plots import plot_verification
    from .report.tables import class_label as _label

    result = verify_target(args.study, args.image, args.remove, **options)
    files = write_target(result)
    figure = result.sweep_dir / f"{target_file_stem(result.target_id)}.png"
    plot_verification(result, figure)
    how = "its most negative source class" if result.chosen else "source class"
    print(f"{result.target_id} (true {result.true_label_name}): {result.repeats} seeds of the full source with and "
          f"without {how} {_label(result.removed)} (influence {result.influence:+.5f}, {result.output_kind}, "
          f"{result.estimator}); {len(result.executed)} retrains run now")
    print(f"{'label':>14} {'with':>6} {'without':>8}")
    for row in result.rows():
        if row["count_with"] or row["count_without"] or row["is_true_label"]:
            mark = " (true)" if row["is_true_label"] else ""
            print(f"{_label(str(row['label'])):>14} {row['share_with']:>6.0%} {row['share_without']:>8.0%}{mark}")
    print(f"correct: {result.correct_with:.0%} with, {result.correct_without:.0%} without ({result.change} without the class)")
    print(f"table: {files['table']}; details: {files['details']}; figure: {figure}")
    return 0


def _verify_summary(args: argparse.Namespace, options: dict) -> int:  # type: ignore[type-arg]
    from .analysis.verify import DEFAULT_CLASSES, DEFAULT_PAIRS, verify_summary, write_summary

    pairs = DEFAULT_PAIRS if args.pairs is None else args.pairs
    classes = DEFAULT_CLASSES if args.classes is None else args.classes
    summary = verify_summary(args.study, pairs, classes, **options)
    files = write_summary(summary)
    print(f"{summary.num_models} models, {summary.output_kind}, {summary.estimator}; {len(summary.seeds)} seeds with and "
          f"without each of {len(summary.classes)} classes ({', '.join(summary.classes)}); "
          f"{len(summary.executed)} retrains run now")
    print(f"{'pairs':>38} {'count':>5} {'better':>7} {'worse':>7} {'same':>7}")
    for title, shares in (
        (f"top {len(summary.top_pairs)} pairs with a retrained class", summary.pair_shares),
        (f"{summary.per_class} most negative images per class", summary.class_image_shares),
    ):
        print(f"{title:>38} {shares.count:>5} {shares.better:>7.1%} {shares.worse:>7.1%} {shares.same:>7.1%}")
    print("better / worse / same: predicted correctly by more / fewer / as many seeds without the class")
    print(f"table: {files['table']}; details: {files['details']}")
    return 0


COMMANDS = {
    "run": _cmd_run,
    "work": _cmd_work,
    "status": _cmd_status,
    "influence": _cmd_influence,
    "diagnose": _cmd_diagnose,
    "plan": _cmd_plan,
    "report": _cmd_report,
    "project": _cmd_project,
    "explain": _cmd_explain,
    "demo": _cmd_demo,
    "counterfactual": _cmd_counterfactual,
    "compare-rankings": _cmd_compare_rankings,
    "whatif": _cmd_whatif,
    "handpicked": _cmd_handpicked,
    "verify": _cmd_verify,
    "leaks": _cmd_leaks,
}


def main(argv: Sequence[str] | None = None) -> int:
    with _notes_on_one_line():
        try:
            args = _parser().parse_args(argv)
        except InputError as exc:  # a bad flag or value, refused before any work
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; the exit status tells a user error (2) from a bug (1)."""
    try:
        return COMMANDS[args.command](args)
    except (UserError, FileNotFoundError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - anything else is a bug: say so, keep the traceback reachable
        if args.debug:
            traceback.print_exc()
        print(
            f"internal error: {exc.__class__.__name__}: {exc}\n"
            "this is a bug in transfer-influence; run again with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
