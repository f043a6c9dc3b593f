"""Estimators of influence from (inclusion masks, outputs): numpy and scipy only.

``dim`` — difference of means (Algorithm 1), one matrix product; ``ridge`` — regression on the
inclusion mask (datamodels); ``trak`` — gradient-based scores from a few models' projected
gradients (``trak.trak_influence``, not from masks). All return an :class:`InfluenceEstimate`.
"""

from .dim import class_influence
from .groups import group_means
from .registry import ESTIMATOR_NAMES, check_estimator, estimate
from .result import InfluenceEstimate
from .ridge import datamodel_contrasts, datamodel_influence
from .trak import ModelGradients, trak_influence

__all__ = [
    "ESTIMATOR_NAMES",
    "InfluenceEstimate",
    "ModelGradients",
    "check_estimator",
    "class_influence",
    "datamodel_contrasts",
    "datamodel_influence",
    "estimate",
    "group_means",
    "trak_influence",
]
