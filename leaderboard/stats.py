r"""Correlations between a robustness score and measured accuracies, with bootstrap intervals.

The leaderboard asks whether models with a smaller input-Fisher norm have a higher
AutoAttack accuracy. Over a few dozen models the answer is a rank correlation with an
interval wide enough to be honest about, so every coefficient comes with a paired
bootstrap 95% interval (resampling models; ``scipy.stats.bootstrap``, percentile method).

Robust training also lowers clean accuracy, and the Fisher norm may track clean accuracy
rather than robustness. The partial rank correlation controlling for clean accuracy,

.. math::  ρ_{xy·z} = \frac{ρ_{xy} − ρ_{xz} ρ_{yz}}{\sqrt{(1 − ρ_{xz}^2)(1 − ρ_{yz}^2)}},

with Spearman coefficients ``ρ``, separates the two.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

Statistic = Callable[..., float]

_MIN_MODELS = 3


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its bootstrap interval.

    Attributes:
        kind: ``"spearman"``, ``"kendall"``, ``"pearson"`` or ``"partial_spearman"``.
        value: the coefficient on all models (NaN when undefined).
        low: lower end of the 95% bootstrap interval.
        high: upper end of the 95% bootstrap interval.
        n: number of models.
    """

    kind: str
    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int | str]:
        """Plain-dict form for JSON."""
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.spearmanr(x, y).statistic)


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.kendalltau(x, y).statistic)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.pearsonr(x, y).statistic)


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Spearman correlation of ``x`` and ``y`` with the rank-linear effect of ``z`` removed."""
    r_xy, r_xz, r_yz = _spearman(x, y), _spearman(x, z), _spearman(y, z)
    denominator = math.sqrt(max((1 - r_xz**2) * (1 - r_yz**2), 0.0))
    # z determining x or y (up to rounding) leaves nothing to correlate.
    return (r_xy - r_xz * r_yz) / denominator if denominator > 1e-9 else float("nan")


STATISTICS: dict[str, Statistic] = {"spearman": _spearman, "kendall": _kendall, "pearson": _pearson}


def correlate(
    x: np.ndarray,
    y: np.ndarray,
    kind: str = "spearman",
    *,
    control: np.ndarray | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Correlation:
    """Correlation of paired samples with a paired-bootstrap 95% interval.

    Args:
        x: one value per model (e.g. the median input-Fisher norm).
        y: one value per model (e.g. AutoAttack accuracy).
        kind: ``"spearman"``, ``"kendall"``, ``"pearson"`` or ``"partial_spearman"``.
        control: per-model values to control for (required for ``"partial_spearman"``).
        n_resamples: bootstrap resamples.
        seed: seed of the bootstrap.

    Returns:
        A :class:`Correlation`; value and interval are NaN when fewer than three models, or a
        constant variable, leave the coefficient undefined.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    samples: tuple[np.ndarray, ...] = (x, y)
    if kind == "partial_spearman":
        if control is None:
            raise ValueError("kind='partial_spearman' needs the control variable (control=...)")
        samples = (x, y, np.asarray(control, dtype=np.float64))
        statistic: Statistic = partial_spearman
    elif kind in STATISTICS:
        statistic = STATISTICS[kind]
    else:
        raise ValueError(f"kind must be one of {[*STATISTICS, 'partial_spearman']}, got {kind!r}")
    if len({len(s) for s in samples}) != 1:
        raise ValueError(f"paired samples must have equal lengths, got {[len(s) for s in samples]}")
    keep = np.all([np.isfinite(s) for s in samples], axis=0)
    samples = tuple(s[keep] for s in samples)
    n = int(keep.sum())
    nan = Correlation(kind, float("nan"), float("nan"), float("nan"), n)
    if n < _MIN_MODELS or any(np.ptp(s) == 0 for s in samples):
        return nan
    with warnings.catch_warnings():
        # Resamples that repeat one model make a variable constant: the coefficient is NaN
        # there, and scipy warns; such resamples are dropped from the interval below.
        warnings.simplefilter("ignore")
        value = statistic(*samples)
        if not math.isfinite(value):
            return nan
        result = stats.bootstrap(
            samples, statistic, paired=True, vectorized=False, n_resamples=n_resamples,
            method="percentile", rng=np.random.default_rng(seed),
        )
        distribution = result.bootstrap_distribution
    distribution = distribution[np.isfinite(distribution)]
    if distribution.size == 0:
        return Correlation(kind, value, float("nan"), float("nan"), n)
    low, high = np.quantile(distribution, [0.025, 0.975])
    return Correlation(kind, float(value), float(low), float(high), n)


def correlation_table(
    score: np.ndarray,
    robust_accuracy: np.ndarray,
    clean_accuracy: np.ndarray,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Correlation]:
    """Every correlation the leaderboard reports for one score.

    Args:
        score: per-model robustness score (e.g. median ``λ_max``; smaller = smoother).
        robust_accuracy: per-model AutoAttack accuracy.
        clean_accuracy: per-model clean accuracy.
        n_resamples: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        ``{"<kind>_vs_autoattack": ..., "spearman_vs_clean": ...,
        "partial_spearman_vs_autoattack_given_clean": ...}``.
    """
    options = {"n_resamples": n_resamples, "seed": seed}
    table = {f"{kind}_vs_autoattack": correlate(score, robust_accuracy, kind, **options)
             for kind in STATISTICS}
    table["spearman_vs_clean"] = correlate(score, clean_accuracy, "spearman", **options)
    table["partial_spearman_vs_autoattack_given_clean"] = correlate(
        score, robust_accuracy, "partial_spearman", control=clean_accuracy, **options
    )
    return table
