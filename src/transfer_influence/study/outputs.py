"""The per-example outputs f_i(t_j) recorded for every transferred model (numpy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.special import softmax

OUTPUT_KINDS: tuple[str, ...] = ("p_true", "correct", "raw_margin", "softmax_margin")
"""Per target example: softmax probability of the true class; 1.0 if predicted correctly; true
logit minus the largest other logit; true probability minus the largest other probability."""


def output_kinds_from_logits(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The four outputs recorded for every target test example (see ``OUTPUT_KINDS``)."""
    rows = np.arange(labels.shape[0])
    probs = softmax(logits, axis=1)
    true_logit = logits[rows, labels]
    others = logits.copy()
    others[rows, labels] = -np.inf
    best_other = others.argmax(axis=1)
    return {
        "p_true": probs[rows, labels].astype(np.float32),
        "correct": (logits.argmax(axis=1) == labels).astype(np.float32),
        "raw_margin": (true_logit - logits[rows, best_other]).astype(np.float32),
        "softmax_margin": (probs[rows, labels] - probs[rows, best_other]).astype(np.float32),
    }


def predicted_labels(per_head_logits: Sequence[np.ndarray]) -> np.ndarray:
    """The label a run predicts for every target test example: the argmax of the softmax
    probabilities averaged over its heads (the ensemble the averaged outputs describe), as int16.

    Stored beside the outputs rather than among them: a label is not a number to average over
    models, so estimators never see it; it serves counting which labels a model predicts."""
    if not per_head_logits:
        raise ValueError("predicted labels need the logits of at least one head")
    mean_probs = np.mean([softmax(np.asarray(logits, dtype=np.float64), axis=1) for logits in per_head_logits], axis=0)
    return mean_probs.argmax(axis=1).astype(np.int16)
