"""The labelled result every estimator returns: influences of source *units* on target columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

UnitKind = Literal["class", "example"]


@dataclass(frozen=True)
class InfluenceEstimate:
    """Influence of each source unit (rows: classes, or source examples) on each target column.

    ``values[k, j]`` is unit k's estimated effect on target column j (a target example, or a group
    of them such as a target class); ``stderr`` is its standard error, with ``dof`` residual degrees
    of freedom for t-based intervals and tests. ``n_in``/``n_out`` count the models whose source held
    / lacked the unit. ``estimator`` names how the values were computed: ``dim`` (difference of
    means, Algorithm 1) or ``ridge`` (regression on the inclusion mask).
    """

    values: np.ndarray
    stderr: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    unit_names: tuple[str, ...]
    target_ids: tuple[str, ...]
    dof: float
    output_kind: str | None = None
    estimator: str = "dim"
    unit_kind: UnitKind = "class"

    @property
    def num_models(self) -> int:
        return int(self.n_in[0] + self.n_out[0])

    @property
    def z_scores(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.stderr > 0, self.values / self.stderr, 0.0)

    def critical_value(self, level: float = 0.95) -> float:
        """Two-sided t quantile for a ``level`` interval with this estimate's degrees of freedom."""
        return float(stats.t.ppf(0.5 + level / 2, max(self.dof, 1.0)))

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) t intervals for every value."""
        half = self.critical_value(level) * self.stderr
        return self.values - half, self.values + half

    def p_values(self) -> np.ndarray:
        """Two-sided p-values of 'no influence', from the t distribution with ``dof`` degrees of freedom."""
        return 2 * stats.t.sf(np.abs(self.z_scores.astype(np.float64)), max(self.dof, 1.0))

    def column(self, target: str | int) -> np.ndarray:
        j = self.target_ids.index(str(target)) if isinstance(target, str) else int(target)
        return self.values[:, j]
