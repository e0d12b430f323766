r"""Which attack-free score tracks AutoAttack: every score of a group side by side.

Per dataset/threat model, one row per score (the Fisher scores, the predicted accuracy, the
baselines and the peers), each with

* its Spearman correlation with AutoAttack accuracy and that coefficient's paired-bootstrap 95%
  interval (:func:`leaderboard.stats.correlation_table`);
* the mean absolute error of a leave-one-model-out isotonic map from the score to AutoAttack
  accuracy (:func:`leaderboard.calibration.leave_one_out_isotonic`), in points: a scalar score
  predicts no accuracy until it is calibrated on other models, so this is the error the score
  would have as a calibrated proxy. The fit runs in the direction the score declares
  (:data:`leaderboard.labels.SCORES`: increasing for larger = more robust, decreasing for
  λ_max and the gradient norm); the error of fits that learn their direction from their
  training models (scikit-learn's ``increasing="auto"``) is given beside it;
* for the predicted accuracy also its uncalibrated error, the mean of
  ``|predicted − AutoAttack|``, which needs no other model;
* its cost: the median over the models of its seconds per image divided by AutoAttack's,

.. math::  \operatorname{median}_i \frac{t_{\text{score}, i}}{t_{\text{AutoAttack}, i}},

sorted by ``|ρ_Spearman|``, largest first (an undefined coefficient last).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from leaderboard import labels
from leaderboard.calibration import LeaveOneOut, leave_one_out_isotonic
from leaderboard.read_results import finite_number
from leaderboard.stats import Correlation

#: The correlation the table is sorted by.
SPEARMAN = "spearman_vs_autoattack"


@dataclass(frozen=True)
class Cost:
    """A metric's cost per image beside AutoAttack's, over the models that know both.

    Attributes:
        seconds: median seconds per image.
        ratio: median over the models of its seconds per image over AutoAttack's.
        n: models.
    """

    seconds: float
    ratio: float
    n: int


@dataclass(frozen=True)
class Tracking:
    """One score's row of the table.

    Attributes:
        score: its column (``"spectral_norm_median"``).
        higher_is_robust: the direction it declares (sets the calibration's).
        spearman: its Spearman correlation with AutoAttack accuracy (``None``: not computed).
        calibrated: the leave-one-model-out isotonic fit in the declared direction (``None``:
            fewer than 3 models have the score).
        models: the models it is over, in the order of its predictions.
        learned_mae: the same error with each fit's direction learned from its training models.
        uncalibrated_mae: mean ``|predicted − AutoAttack|`` (the predicted accuracy only).
        uncalibrated_n: the models it is over.
        cost: its cost per image beside AutoAttack's (``None``: not known).
    """

    score: str
    higher_is_robust: bool
    spearman: Correlation | None
    calibrated: LeaveOneOut | None
    models: tuple[str, ...]
    learned_mae: float | None
    uncalibrated_mae: float | None
    uncalibrated_n: int
    cost: Cost | None

    @property
    def order(self) -> float:
        """``|ρ_Spearman|``, ``-1`` where undefined (those rows go last)."""
        value = self.spearman.value if self.spearman is not None else math.nan
        return abs(value) if math.isfinite(value) else -1.0

    def to_json(self) -> dict[str, Any]:
        """The keys this row adds beside its correlations in ``correlations.json``."""
        out: dict[str, Any] = {}
        if self.calibrated is not None:
            out["isotonic_loo_vs_autoattack"] = {**self.calibrated.to_json(),
                                                 "models": list(self.models),
                                                 "learned_direction_mae": self.learned_mae}
        if self.uncalibrated_mae is not None:
            out["uncalibrated_abs_error_vs_autoattack"] = {"mae": self.uncalibrated_mae,
                                                           "n": self.uncalibrated_n}
        if self.cost is not None:
            out["cost_vs_autoattack"] = {"seconds_per_image": self.cost.seconds,
                                         "median_ratio": self.cost.ratio, "n": self.cost.n}
        return out


def cost_of(rows: list[dict[str, Any]], column: str) -> Cost | None:
    """Median seconds per image of ``column`` and its median ratio to AutoAttack's.

    Over the rows that know both; ``None`` where none does.
    """
    attack = "autoattack_seconds_per_image"
    pairs = [(r[column], r[attack]) for r in rows
             if finite_number(r.get(column)) and finite_number(r.get(attack)) and r[attack] > 0]
    if not pairs:
        return None
    return Cost(float(np.median([p[0] for p in pairs])),
                float(np.median([p[0] / p[1] for p in pairs])), len(pairs))


def calibrate(members: list[dict[str, Any]], score: str, increasing: bool | Literal["auto"]
              ) -> tuple[LeaveOneOut | None, tuple[str, ...]]:
    """The leave-one-model-out isotonic fit of AutoAttack accuracy on ``score``, and its models.

    Over the members with both a finite score and a finite AutoAttack accuracy; ``None`` where
    fewer than three have them.
    """
    usable = [m for m in members
              if finite_number(m.get(score)) and finite_number(m.get("autoattack_acc"))]
    if len(usable) < 3:
        return None, ()
    with warnings.catch_warnings():
        # scikit-learn's "auto" warns whenever a fold's Spearman interval spans zero.
        warnings.simplefilter("ignore", UserWarning)
        fit = leave_one_out_isotonic(np.array([m[score] for m in usable], dtype=float),
                                     np.array([m["autoattack_acc"] for m in usable], dtype=float),
                                     increasing=increasing)
    return fit, tuple(m["model"] for m in usable)


def tracking_table(members: list[dict[str, Any]],
                   correlations: Mapping[str, Mapping[str, Correlation]],
                   cost_columns: Mapping[str, str],
                   uncalibrated: tuple[float, int] | None = None) -> list[Tracking]:
    """Every correlated score of one group, most closely tracking AutoAttack first.

    Args:
        members: the group's scored rows (:func:`leaderboard.render.flatten`) with AutoAttack
            accuracy.
        correlations: ``score -> kind -> Correlation`` of the group.
        cost_columns: ``score -> its seconds-per-image column``.
        uncalibrated: ``(mean |predicted − AutoAttack|, models)`` of the group, for the
            predicted accuracy's row.

    Returns:
        One :class:`Tracking` per score of ``correlations``, sorted by ``|ρ_Spearman|``
        descending (stable; undefined coefficients last).
    """
    rows = []
    for score, kinds in correlations.items():
        meaning = labels.SCORES.get(score)
        higher = meaning.higher_is_robust if meaning is not None else False
        fit, models = calibrate(members, score, higher)
        learned = calibrate(members, score, "auto")[0] if fit is not None else None
        own = score == "predicted_robust_acc" and uncalibrated is not None
        column = cost_columns.get(score)
        rows.append(Tracking(
            score, higher, kinds.get(SPEARMAN), fit, models, learned.mae if learned else None,
            uncalibrated[0] if own else None, uncalibrated[1] if own else 0,
            cost_of(members, column) if column else None,
        ))
    return sorted(rows, key=lambda t: -t.order)
