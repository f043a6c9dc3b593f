"""The command line's parser: every command, its flags and their help."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import Parser, add_renamed, at_least_two, add_run_options, add_target_option, estimator_list, fraction_list, fraction_open, nonnegative_int, output_kind_list, positive_float, positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="transfer-influence",
        description="Measure how each source class drives a transfer-learned model's target predictions.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="plan, train and store a study (resumable: run again to continue)")
    run.add_argument("config", type=Path, help="study config (YAML)")
    run.add_argument("--out", type=Path, help="study directory (default: studies/<name>)")
    add_run_options(run)
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
    infl.add_argument("--estimator", choices=["dim", "ridge", "trak"],
                      help="dim: difference of means (Algorithm 1); ridge: regression on the inclusion mask "
                      "(default: the study's analysis.estimator); trak: gradients of a few full-source models "
                      "(docs/gradient-influence.md)")
    grad = infl.add_argument_group("trak (gradient influence, with --estimator trak)")
    grad.add_argument("--gradient-models", type=at_least_two, metavar="M",
                      help="full-source models whose gradients are ensembled, at least 2 (default 4); stored in "
                      "STUDY/gradients/, so a second call trains only the missing ones")
    grad.add_argument("--gradient-dims", type=positive_int, metavar="D",
                      help="dimension of the random projection of the gradients (default 512)")
    grad.add_argument("--gradient-ridge", type=positive_float, metavar="R",
                      help="kernel ridge, as a fraction of the kernel's mean eigenvalue (default 0.001)")
    grad.add_argument("--aggregate", choices=["sum", "mean"],
                      help="a class's influence: the sum (default) or the mean of its source examples' scores")
    grad.add_argument("--gradient-device", choices=["cpu", "cuda", "auto"],
                      help="where the gradient models train and are differentiated (default: the study's "
                      "execution.device)")
    infl.add_argument("--partial", action="store_true",
                      help="estimate from the runs finished so far, while the study is still running")
    infl.add_argument("--fdr", type=fraction_open, default=0.1,
                      help="false-discovery rate for the significant-class list, between 0 and 1 (default 0.1)")
    add_target_option(infl)

    diag = sub.add_parser("diagnose", help="convergence diagnostics: split-half, bootstrap, held-out, knockoff FDR")
    diag.add_argument("study", type=Path)
    diag.add_argument("--kinds", type=output_kind_list, default="all", help="comma-separated output kinds, or 'all'")
    diag.add_argument("--estimators", type=estimator_list, default="dim,ridge",
                      help="comma-separated estimators (default dim,ridge)")
    diag.add_argument("--reliability", dest="target", type=fraction_open, default=0.8, metavar="R",
                      help="split-half Spearman to project the model count for, between 0 and 1 (default 0.8)")
    add_renamed(diag, "--target", "--reliability R", "target", type=fraction_open, metavar="R")
    diag.add_argument("--partial", action="store_true", help="allow a study that is still running")
    add_target_option(diag, old_spelling=False)

    plan = sub.add_parser("plan", help="run short pilots and recommend alpha, design and number of models for a budget")
    plan.add_argument("config", type=Path)
    plan.add_argument("--out", type=Path, help="directory for the pilot studies (default: studies/<name>-pilots)")
    plan.add_argument("--alphas", type=fraction_list, default="0.5,0.2,0.1",
                      help="candidate subset ratios, each between 0 and 1 (default 0.5,0.2,0.1)")
    plan.add_argument("--pilot-seconds", type=positive_float, default=60.0, help="training time per pilot")
    plan.add_argument("--reliability", type=fraction_open, default=0.8, metavar="R",
                      help="split-half Spearman to reach, between 0 and 1 (default 0.8)")
    add_renamed(plan, "--target", "--reliability R", "reliability", type=fraction_open, metavar="R")
    plan.add_argument("--budget-minutes", type=positive_float, default=10.0, help="training time the real study may take")
    plan.add_argument("--level", default="target_class", choices=["overall", "target_class", "example"])

    report = sub.add_parser("report", help="write plots, tables and report.html for a study")
    report.add_argument("study", type=Path)
    report.add_argument("--kind", help="output kind (default: the config's analysis.output_kind)")
    report.add_argument("--estimator", choices=["dim", "ridge"], help="default: the config's analysis.estimator")
    add_target_option(report)

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
    add_target_option(project)

    explain = sub.add_parser("explain", help="the most negative source classes of a target image, or of the most "
                             "often mispredicted ones (paper §4.2)")
    explain.add_argument("study", type=Path)
    explain.add_argument("--image", action="append", metavar="ID",
                         help="target test id (repeat for several; default: the most often mispredicted images)")
    add_renamed(explain, "--target", "--image ID", "image", append=True, metavar="ID")
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
    add_run_options(demo)

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
    add_target_option(cf)
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
    add_target_option(whatif)
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
    add_target_option(hp)
    cmp = sub.add_parser("compare-rankings", help="compare the counterfactual sweeps of a study's own ranking and "
                         "of rankings from other studies (--ranking-from), paired seed by seed")
    cmp.add_argument("study", type=Path, help="a study directory with counterfactual sweeps")
    add_target_option(cmp)
    add_verify_parser(sub)
    return parser


def add_verify_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verify = sub.add_parser("verify", help="retrain with and without an image's most negative source class and count "
                            "the labels predicted for it (paper Fig. 6 right, App. E.4; resumable)")
    verify.add_argument("study", type=Path, help="a study directory with finished runs")
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("--image", metavar="ID", help="target test id of the image to verify")
    add_renamed(which, "--target", "--image ID", "image", metavar="ID")
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
