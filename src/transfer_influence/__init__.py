"""transfer-influence: how each class of a source dataset drives a transfer-learned model.

The top-level API is torch-free: estimation and analysis run on a study directory with numpy alone.
"""

from .estimate import InfluenceEstimate, class_influence, datamodel_influence, estimate
from .study.config import StudyConfig, load_config
from .study.results import StudyResults, open_study

__all__ = [
    "InfluenceEstimate",
    "StudyConfig",
    "StudyResults",
    "class_influence",
    "datamodel_influence",
    "estimate",
    "load_config",
    "open_study",
]
__version__ = "0.1.0"
