r"""From a scalar robustness score to robust accuracy: leave-one-model-out isotonic calibration.

A score such as the median ``λ_max``, GREAT Score or the logit margin is a number per model, not an
accuracy, so its error against AutoAttack accuracy is undefined until a map from score to
accuracy is fitted. The fairest such map assumes only monotonicity: isotonic regression
(scikit-learn's ``IsotonicRegression``, pool-adjacent-violators; Barlow et al., 1972), fitted on
the other models of the same threat model and evaluated at the held-out model's score,

.. math::  \hat a_i = \hat f_{-i}(s_i),\qquad
           \hat f_{-i} = \arg\min_{f\ \text{monotone}} \sum_{j≠i} (a_j − f(s_j))^2,

with ``f`` interpolated linearly between the fitted scores and held at its end values outside
them (``out_of_bounds="clip"``). The mean absolute error ``(1/n) Σ |â_i − a_i|`` is what a
calibrated proxy achieves on a model it has not seen, to set beside the error of a prediction
that needs no calibration (the attack-free predicted accuracy). Calibration needs measured
accuracies of other models on the same threat model; the uncalibrated prediction does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression


@dataclass(frozen=True)
class LeaveOneOut:
    """Held-out predictions of a leave-one-model-out isotonic fit.

    Attributes:
        predictions: per-model accuracy predicted by the fit on the other models, ``[n]``.
        errors: ``predictions − accuracy``, ``[n]``.
        mae: mean absolute error.
        increasing: the direction of the fitted maps (``"auto"`` when each fit chose its own).
    """

    predictions: np.ndarray
    errors: np.ndarray
    mae: float
    increasing: bool | Literal["auto"]

    def to_json(self) -> dict[str, object]:
        """Plain-dict form for JSON."""
        return {"predictions": self.predictions.tolist(), "errors": self.errors.tolist(),
                "mae": self.mae, "increasing": self.increasing, "n": int(len(self.errors))}


def leave_one_out_isotonic(
    score: np.ndarray, accuracy: np.ndarray, *, increasing: bool | Literal["auto"]
) -> LeaveOneOut:
    """Leave-one-model-out isotonic predictions of accuracy from a score, and their error.

    Args:
        score: one scalar per model (one threat model).
        accuracy: the models' measured robust accuracy (e.g. AutoAttack, percent).
        increasing: ``True`` where a larger score means a more robust model (GREAT Score, the
            logit margin), ``False`` where it means a less robust one (``λ_max``, the gradient
            norm); ``"auto"`` lets each fit pick the sign of its training models' Spearman
            correlation (scikit-learn's rule), which uses the other models' accuracies only.

    Returns:
        The :class:`LeaveOneOut` predictions, errors and mean absolute error.

    Raises:
        ValueError: unequal lengths, fewer than three models, or non-finite values.
    """
    score = np.asarray(score, dtype=np.float64)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    if score.shape != accuracy.shape or score.ndim != 1:
        raise ValueError(f"score and accuracy must be 1-D of equal length, got shapes "
                         f"{score.shape} and {accuracy.shape}")
    if len(score) < 3:
        raise ValueError(f"leave-one-out calibration needs at least 3 models, got {len(score)}")
    if not (np.isfinite(score).all() and np.isfinite(accuracy).all()):
        raise ValueError("score and accuracy must be finite: drop the models without one")
    predictions = np.empty_like(accuracy)
    for held_out in range(len(score)):
        train = np.arange(len(score)) != held_out
        fit = IsotonicRegression(increasing=increasing, out_of_bounds="clip")
        fit.fit(score[train], accuracy[train])
        predictions[held_out] = fit.predict(score[held_out:held_out + 1])[0]
    errors = predictions - accuracy
    return LeaveOneOut(predictions, errors, float(np.mean(np.abs(errors))), increasing)
