"""Confidence intervals for a Monte Carlo proportion (successes out of trials)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import ndtri
from scipy.stats import beta

IntervalMethod = Literal["wilson", "clopper-pearson"]


def _check(
    successes: np.ndarray, trials: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    k, n = np.asarray(successes, dtype=np.float64), np.asarray(trials, dtype=np.float64)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError("need 0 ≤ successes ≤ trials and trials ≥ 1")
    return k, n


def wilson_interval(
    successes: np.ndarray, trials: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    r"""Wilson score interval for a binomial proportion.

    .. math::  \frac{\hat p + \frac{c^2}{2n}
               ± c\sqrt{\frac{\hat p(1-\hat p)}{n} + \frac{c^2}{4n^2}}}{1 + c^2/n},
               \quad c = Φ^{-1}\big(\tfrac{1 + \text{confidence}}{2}\big).

    Unlike the normal ("Wald") interval it does not collapse to a point at ``p̂ ∈ {0, 1}``,
    which is where robustness probabilities usually sit.

    Args:
        successes: ``k`` per input.
        trials: ``n`` per input (broadcast against ``k``).
        confidence: two-sided coverage level.

    Returns:
        ``(lower, upper)`` arrays.
    """
    k, n = _check(successes, trials, confidence)
    c = ndtri(0.5 + confidence / 2.0)
    p = k / n
    centre = (p + c * c / (2 * n)) / (1 + c * c / n)
    half = c * np.sqrt(p * (1 - p) / n + c * c / (4 * n * n)) / (1 + c * c / n)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def clopper_pearson_interval(
    successes: np.ndarray, trials: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Clopper–Pearson ("exact") interval: quantiles of Beta(k, n − k + 1) and Beta(k + 1, n − k).

    Its coverage is at least ``confidence`` for every true proportion (conservative).

    Args:
        successes: ``k`` per input.
        trials: ``n`` per input.
        confidence: two-sided coverage level.

    Returns:
        ``(lower, upper)`` arrays.
    """
    k, n = _check(successes, trials, confidence)
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore"):  # Beta(0, ·) at k = 0 and Beta(·, 0) at k = n
        lower = np.where(k > 0, beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        upper = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return lower, upper


def binomial_interval(
    successes: np.ndarray,
    trials: np.ndarray,
    confidence: float = 0.95,
    method: IntervalMethod = "wilson",
) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch to :func:`wilson_interval` or :func:`clopper_pearson_interval`."""
    if method == "wilson":
        return wilson_interval(successes, trials, confidence)
    if method == "clopper-pearson":
        return clopper_pearson_interval(successes, trials, confidence)
    raise ValueError(f"interval must be 'wilson' or 'clopper-pearson', got {method!r}")
