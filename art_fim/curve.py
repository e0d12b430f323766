"""Predicted robust accuracy at every budget: the accuracy-vs-ε curve from per-input radii.

A per-input robust radius ``r(x)`` (first-order or refined, :mod:`art_fim.margins`) predicts
robust accuracy at every budget at once: ``acc(ε) = (1/N) #{x : r(x) > 0 and r(x) ≥ ε}``. The
curve costs nothing beyond the radii, is non-increasing in ``ε`` and starts at clean accuracy
(``acc(0)`` counts every correctly classified input). AutoAttack measures one point of it per run.

| Paper link: https://arxiv.org/abs/2606.04767
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Points of the default grid: 0 to the largest finite radius, inclusive.
DEFAULT_POINTS = 41


@dataclass(frozen=True)
class AccuracyCurve:
    """Predicted robust accuracy of one threat norm at each budget.

    Attributes:
        norm: ``"linf"``, ``"l2"`` or ``"l1"``.
        eps: the budgets, increasing, ``[M]``.
        first_order: fraction predicted robust from the first-order radius, ``[M]``.
        refined: the same from the refined radius, ``[M]``, or ``None`` when it was not computed.
    """

    norm: str
    eps: np.ndarray
    first_order: np.ndarray
    refined: np.ndarray | None

    @property
    def best(self) -> np.ndarray:
        """The refined curve if computed (the more accurate estimate), else the first-order one."""
        return self.first_order if self.refined is None else self.refined


def robust_fraction(radius: np.ndarray, eps: float, proven: np.ndarray | None = None) -> float:
    """Return the fraction of inputs predicted robust at ``eps``.

    An input is predicted robust when it is correct (``r > 0``) with ``r ≥ eps`` and, for
    ``eps > 0``, its radius is proven to be the minimum over all classes: a radius taken over a
    subset of classes and not proven (:mod:`art_fim.competitor_proof`) is only an upper
    estimate, so such an input counts as not robust (at ``eps = 0`` it counts when correct,
    which the logits of every class show).

    Args:
        radius: per-input radii ``[N]``.
        eps: the budget.
        proven: ``[N]`` whether each radius is proven (``None``: all are, every class seen).

    Raises:
        ValueError: a negative or non-finite ``eps``.
    """
    if not (
        isinstance(eps, (int, float, np.floating, np.integer)) and math.isfinite(eps) and eps >= 0
    ):
        raise ValueError(f"eps must be a finite number ≥ 0, got {eps!r}")
    radius = np.asarray(radius)
    robust = (radius > 0) & (radius >= eps)
    if proven is not None and eps > 0:
        robust &= np.asarray(proven, dtype=bool)
    return float(robust.mean())


def refuse_missing(radius: np.ndarray, norm: str) -> None:
    """Refuse radii that were not computed (NaN), which no robust fraction may count.

    Raises:
        ValueError: some radius is NaN (the rows of one input's label and competitors did not
            fit ``memory_budget``); counting such an input as non-robust would understate
            robust accuracy.
    """
    radius = np.asarray(radius, dtype=np.float64)
    missing = int(np.isnan(radius).sum())
    if missing:
        raise ValueError(
            f"{missing} of {radius.size} radii for norm {norm} are NaN (not computed: the "
            "Jacobian rows exceeded memory_budget); counting them as non-robust would "
            "understate robust accuracy. Raise memory_budget, lower competitors, or pass "
            "method='exact'."
        )



def default_grid(*radii: np.ndarray, points: int = DEFAULT_POINTS) -> np.ndarray:
    """Budgets from 0 to the largest finite positive radius (where every curve has reached 0).

    Args:
        radii: per-input radii of one norm (several sets share one grid).
        points: number of budgets.
    """
    finite = [np.asarray(r, dtype=np.float64) for r in radii]
    finite = [r[np.isfinite(r) & (r > 0)] for r in finite]
    top = max((float(r.max()) for r in finite if r.size), default=0.0)
    if top == 0.0:
        return np.zeros(1)
    # Just past the largest radius, so the last point is 0 for every curve.
    return np.linspace(0.0, math.nextafter(top, math.inf), points)


def robust_accuracy_curve(
    radius: np.ndarray, eps: Any, proven: np.ndarray | None = None, norm: str = "?"
) -> np.ndarray:
    """Return the fraction predicted robust at each budget.

    That is ``[robust_fraction(radius, e, proven) for e in eps]``: an unproven radius (from
    a subset of classes) counts as not robust above ``ε = 0``.

    Args:
        radius: per-input radii ``[N]`` (0 where the prediction is wrong; NaN is refused).
        eps: budgets ``[M]`` (finite, ``≥ 0``).
        proven: ``[N]`` whether each radius is proven (``None``: all are).
        norm: the norm's name, for the error message.

    Raises:
        ValueError: NaN radii (not computed; they would count as non-robust) or a bad budget.
    """
    refuse_missing(radius, norm)
    radius = np.asarray(radius, dtype=np.float64)
    budgets = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    return np.array([robust_fraction(radius, float(e), proven) for e in budgets])


def accuracy_curves(
    radius: dict[str, Any], refined_radius: dict[str, Any] | None = None, eps: Any = None
) -> dict[str, AccuracyCurve]:
    """The first-order and refined accuracy-vs-ε curves of every norm.

    Args:
        radius: first-order radii per norm name (arrays, or :class:`~art_fim.FisherEstimate`).
        refined_radius: refined radii per norm name (may be empty or ``None``).
        eps: budgets for every norm, or a dict of budgets per norm name; ``None``:
            :func:`default_grid` of that norm's radii.

    Returns:
        An :class:`AccuracyCurve` per norm of ``radius``.
    """
    refined_radius = refined_radius or {}
    curves = {}
    for name, first in radius.items():
        first = np.asarray(getattr(first, "values", first), dtype=np.float64)
        refined = refined_radius.get(name)
        refined = (
            None
            if refined is None
            else np.asarray(getattr(refined, "values", refined), dtype=np.float64)
        )
        budgets = eps.get(name) if isinstance(eps, dict) else eps
        if budgets is None:
            budgets = default_grid(first, *([] if refined is None else [refined]))
        budgets = np.sort(np.atleast_1d(np.asarray(budgets, dtype=np.float64)))
        proven = getattr(radius[name], "proven", None)
        refined_proven = getattr(refined_radius.get(name), "proven", None)
        curves[name] = AccuracyCurve(
            norm=name,
            eps=budgets,
            first_order=robust_accuracy_curve(first, budgets, proven, name),
            refined=(
                None if refined is None
                else robust_accuracy_curve(refined, budgets, refined_proven, name)
            ),
        )
    return curves
