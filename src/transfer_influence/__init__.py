"""transfer-influence: how each class of a source dataset drives a transfer-learned model.

The top-level API is torch-free: estimation and analysis run on a study directory with numpy alone.
"""

from .estimate import InfluenceEstimate, class_influence, datamodel_influence, estimate
from .estimate.lasso import LassoEstimate, lasso_datamodel, lasso_path
from .study.config import StudyConfig, load_config
from .study.results import StudyResults, open_study

__all__ = [
    "InfluenceEstimate",
    "LassoEstimate",
    "StudyConfig",
    "StudyResults",
    "class_influence",
    "datamodel_influence",
    "estimate",
    "lasso_datamodel",
    "lasso_path",
    "load_config",
    "open_study",
]
__version__ = "0.1.0"
