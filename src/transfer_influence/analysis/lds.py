"""The linear datamodeling score of a study's influences (``evaluate.lds`` on its models).

Why a study-level call: the diagnostics and the report score a study by output kind, estimator and
level; this reads the study's masks, outputs, target labels and design blocks, fits the estimator
on the training models of the diagnostics' held-out split and scores it on the held-out models.
"""

from __future__ import annotations

import numpy as np

from ..evaluate.lds import LdsResult, level_lds
from ..study.results import StudyResults


def study_lds(
    results: StudyResults,
    kind: str = "p_true",
    estimator: str = "ridge",
    level: str = "example",
    held_out_fraction: float = 0.25,
    seed: int = 0,
) -> LdsResult:
    """LDS of ``estimator`` (``dim``, ``ridge`` or ``lasso``) on ``kind`` outputs at ``level``
    (``example``: the TRAK/dattri LDS; ``target_class``; ``overall``), fitted on the models outside
    the held-out split of ``diagnose`` and scored on the held-out ones (whole design blocks)."""
    return level_lds(
        results.masks, np.asarray(results.outputs(kind)), results.target_labels, len(results.target_class_names),
        level, estimator, blocks=results.blocks, held_out_fraction=held_out_fraction, seed=seed,
    )
