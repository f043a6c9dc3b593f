"""transfer-influence: how each class of a source dataset drives a transfer-learned model.

The top-level API is torch-free: estimation and analysis run on a study directory with numpy alone.
"""

from .config import StudyConfig, load_config
from .estimators import ClassInfluence, class_influence
from .results import StudyResults, open_study

__all__ = [
    "ClassInfluence",
    "StudyConfig",
    "StudyResults",
    "class_influence",
    "load_config",
    "open_study",
]
__version__ = "0.1.0"
