"""The study report: PNG figures, CSV tables and one self-contained static HTML page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis.baselines import BaselineSummary, baseline_summary
from ..analysis.convergence import Diagnostics, diagnose
from ..analysis.lookalikes import LookalikeCheck, lookalike_check
from ..analysis.rankings import overall_influence, per_target_class_influence
from ..errors import InputError
from ..estimate import InfluenceEstimate
from ..study.results import open_study
from ..study.store import DATA_FILE
from .page import render_page
from .plots import plot_baselines, plot_bootstrap_and_knockoffs, plot_overall, plot_per_target_class, plot_reliability
from .tables import write_baselines_csv, write_overall_csv, write_per_target_csv

REPORT_DIR = "report"


def class_thumbnails(study_dir: Path) -> dict[str, np.ndarray]:
    """One representative image per source class: the training example nearest the class mean."""
    with np.load(study_dir / DATA_FILE, allow_pickle=False) as archive:
        images = archive["source_train__images"]
        labels = archive["source_train__labels"]
        names = [str(c) for c in archive["source_train__classes"]]
    thumbs: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        members = images[labels == k].astype(np.float32)
        if not len(members):
            continue
        centre = members.mean(axis=0)
        best = int(np.argmin(((members - centre) ** 2).reshape(len(members), -1).sum(axis=1)))
        image = members[best]
        thumbs[name] = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0)) / 255.0
    return thumbs


@dataclass
class Report:
    directory: Path
    html_path: Path
    overall: InfluenceEstimate
    per_target_class: InfluenceEstimate
    baselines: BaselineSummary
    lookalikes: LookalikeCheck | None
    diagnostics: Diagnostics | None


def build_report(
    study_dir: str | Path,
    kind: str | None = None,
    estimator: str | None = None,
    top_k: int = 15,
    per_class_k: int = 5,
    diagnostics: bool = True,
) -> Report:
    """Figures, tables and report.html; output kind and estimator default to the config's ``analysis``."""
    study_dir = Path(study_dir)
    results = open_study(study_dir)
    kind = kind or results.config.analysis.output_kind
    estimator = estimator or results.config.analysis.estimator
    if results.num_models < 3:
        raise InputError(f"{study_dir} has {results.num_models} finished models; a report needs at least 3")
    out = study_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    overall = overall_influence(results, kind, estimator)
    per_class = per_target_class_influence(results, kind, estimator)
    baselines = baseline_summary(results)
    thumbs = class_thumbnails(study_dir)
    plot_overall(overall, thumbs, top_k, out / "overall_influence.png")
    plot_per_target_class(per_class, thumbs, per_class_k, out / "per_target_class.png")
    plot_baselines(baselines, out / "baselines.png")
    write_overall_csv(overall, out / "overall_influence.csv")
    write_per_target_csv(per_class, out / "per_target_class_influence.csv")
    write_baselines_csv(baselines, out / "baselines.csv")
    lookalikes = lookalike_check(per_class, top_k=3)
    diag = None
    if diagnostics and results.num_models >= 8:
        diag = diagnose(results, kinds=results.output_kinds, primary=(kind, estimator), repeats=3)
        diag.save(out / "diagnostics.json")
        plot_reliability(diag, kind, out / "reliability.png")
        plot_bootstrap_and_knockoffs(diag, out / "bootstrap_knockoffs.png")
    html_path = out / "report.html"
    html_path.write_text(render_page(results, overall, per_class, baselines, lookalikes, diag, out, per_class_k))
    return Report(out, html_path, overall, per_class, baselines, lookalikes, diag)
