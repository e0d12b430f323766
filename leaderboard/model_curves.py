"""Each model's predicted accuracy-vs-ε curve, with AutoAttack's measured points.

The prediction comes from the stored radii. The per-image ``.npz`` of a result holds the first-order
robust radius of every image at each threat norm (``radius_linf``, ``radius_l2``) and, once
rescored, the refined one (``radius_linf_refined``, ``radius_l2_refined``).
:func:`art_fim.curve.accuracy_curves` turns them into the predicted robust accuracy at every budget.
AutoAttack measured the curve at the result's own budget (the reported AutoAttack accuracy) and, for
the project's zoo, at further budgets (:func:`leaderboard.read_results.read_autoattack_points`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from art_fim.curve import accuracy_curves
from art_fim.norms import norm_name
from leaderboard.read_results import AutoAttackPoint, ResultFile, Skipped, read_autoattack_points

#: Budgets of a drawn curve: from 0 to past the largest measured budget and RobustBench's.
GRID_POINTS = 61
#: The curve runs to this multiple of the result's own budget, at least.
SPAN_OF_MAIN_BUDGET = 2.5
#: ... and to this multiple of the largest further budget AutoAttack was run at.
SPAN_OF_LARGEST_BUDGET = 1.25


@dataclass(frozen=True)
class ModelCurve:
    """Predicted and measured robust accuracy of one model at one threat model.

    Attributes:
        model: the model's name.
        dataset: its dataset.
        threat_model: ``"Linf"`` or ``"L2"``.
        eps: the budgets, increasing, ``[M]``.
        first_order: predicted robust accuracy (percent) from the first-order radii, ``[M]``.
        refined: the same from the refined radii, ``[M]``, or ``None`` when they are not stored.
        main_eps: the result's own budget (RobustBench's), or ``None`` if the result does not say.
        autoattack: AutoAttack's measured points, by budget.
    """

    model: str
    dataset: str
    threat_model: str
    eps: np.ndarray
    first_order: np.ndarray
    refined: np.ndarray | None
    main_eps: float | None
    autoattack: tuple[AutoAttackPoint, ...]


def _usable(radius: Any) -> np.ndarray | None:
    """Radii as float64, or ``None`` when absent or not computed (NaN)."""
    if radius is None:
        return None
    radius = np.asarray(radius, dtype=np.float64)
    return None if radius.ndim != 1 or np.isnan(radius).any() else radius


def model_curve(result: ResultFile, curve_dir: Path | None,
                skipped: list[Skipped]) -> ModelCurve | None:
    """The accuracy-vs-ε curve of one scored result at its own threat model.

    Args:
        result: a checked result with its per-image arrays.
        curve_dir: the folder of the zoo's further AutoAttack budgets (``None``: none).
        skipped: where a malformed AutoAttack file is recorded.

    Returns:
        The curve, or ``None`` when the result stores no radii at its threat model.
    """
    record, arrays = result.record, result.per_image
    threat = record.threat_model
    try:
        norm = norm_name(threat)
    except (ValueError, KeyError):
        return None
    first = _usable((arrays or {}).get(f"radius_{norm}"))
    if first is None:
        return None
    refined = _usable((arrays or {}).get(f"radius_{norm}_refined"))
    if refined is not None and refined.shape != first.shape:
        refined = None
    main_eps = ((record.predicted_robust_acc or {}).get(threat) or {}).get("eps")
    main_eps = (
        float(main_eps) if isinstance(main_eps, (int, float)) and math.isfinite(main_eps) else None
    )
    points = read_autoattack_points(curve_dir, record.dataset, threat, record.model, skipped)
    measured = record.reported.autoattack_acc
    if main_eps is not None and isinstance(measured, (int, float)) and math.isfinite(measured):
        points.append(AutoAttackPoint(main_eps, float(measured), record.reported.attack_n_examples,
                                      "reported AutoAttack accuracy"))
    points.sort(key=lambda p: p.eps)
    spans = [SPAN_OF_MAIN_BUDGET * main_eps] if main_eps else []
    spans += [SPAN_OF_LARGEST_BUDGET * p.eps for p in points]
    top = max(spans, default=0.0)
    grid = np.linspace(0.0, top, GRID_POINTS) if top > 0 else None
    curve = accuracy_curves({norm: first}, None if refined is None else {norm: refined},
                            eps=grid)[norm]
    return ModelCurve(
        model=record.model, dataset=record.dataset, threat_model=threat, eps=curve.eps,
        first_order=100.0 * curve.first_order,
        refined=None if curve.refined is None else 100.0 * curve.refined,
        main_eps=main_eps, autoattack=tuple(points),
    )
