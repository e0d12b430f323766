r"""Correlations between a robustness score and measured accuracies, with bootstrap intervals.

The leaderboard asks whether models with a smaller input-Fisher norm have a higher
AutoAttack accuracy. Over a few dozen models the answer is a rank correlation with an
interval wide enough to be honest about, so every coefficient comes with a paired
bootstrap 95% interval (resampling models, percentile method).

The bootstrap is vectorised: the resampled model indices are drawn at once (the draw of
``scipy.stats.bootstrap(..., paired=True)`` with the same seed), and each coefficient is computed
for every resample in a few array operations, so thousands of resamples take milliseconds.

Robust training also lowers clean accuracy, and the Fisher norm may track clean accuracy
rather than robustness. The partial rank correlation controlling for clean accuracy,

.. math::  ρ_{xy·z} = \frac{ρ_{xy} − ρ_{xz} ρ_{yz}}{\sqrt{(1 − ρ_{xz}^2)(1 − ρ_{yz}^2)}},

with Spearman coefficients ``ρ``, separates the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from art_fim.binomial import wilson_interval

#: A coefficient of each row of paired ``[B, n]`` samples: returns ``[B]``.
RowStatistic = Callable[..., np.ndarray]

_MIN_MODELS = 3
#: Resamples per block of the Kendall statistic, whose pair signs take ``B × n × n`` bytes.
_KENDALL_BLOCK = 256


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
        if math.isnan(self.value):
            return "undefined"
        if math.isnan(self.low) or math.isnan(self.high):
            return f"{self.value:+.2f} [no interval]"
        return f"{self.value:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def _constant(x: np.ndarray) -> np.ndarray:
    """Rows whose values are all equal (their coefficient is undefined)."""
    return np.all(x == x[:, :1], axis=1)


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair; NaN where a row is constant."""
    xm = x - x.mean(axis=1, keepdims=True)
    ym = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sum(xm * ym, axis=1) / np.sqrt(np.sum(xm * xm, axis=1) * np.sum(ym * ym, axis=1))
    r = np.clip(r, -1.0, 1.0)
    r[_constant(x) | _constant(y)] = np.nan
    return r


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ of each row pair: Pearson's r of the ranks (ties get their mean rank)."""
    return pearson_rows(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Kendall's τ_b of each row pair (scipy's default variant, ties allowed).

    .. math:: τ_b = \frac{\sum_{i<j} s^x_{ij} s^y_{ij}}
              {\sqrt{\sum_{i<j} (s^x_{ij})^2 \sum_{i<j} (s^y_{ij})^2}},
              \quad s^x_{ij} = \operatorname{sign}(x_i − x_j),

    i.e. (concordant − discordant) over the geometric mean of the untied pair counts.
    """
    out = np.empty(len(x))
    for start in range(0, len(x), _KENDALL_BLOCK):
        block = slice(start, start + _KENDALL_BLOCK)
        sx = np.sign(x[block, :, None] - x[block, None, :]).astype(np.int8)
        sy = np.sign(y[block, :, None] - y[block, None, :]).astype(np.int8)
        # Over all ordered pairs each unordered pair counts twice, which the ratio cancels.
        both = np.sum(sx * sy, axis=(1, 2), dtype=np.int64)
        norm = np.sum(sx * sx, axis=(1, 2), dtype=np.int64) * np.sum(sy * sy, axis=(1, 2),
                                                                        dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[block] = np.where(norm > 0, both / np.sqrt(norm.astype(np.float64)), np.nan)
    return out


def partial_spearman_rows(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Partial Spearman ρ_xy·z of each row triple (formula in the module docstring)."""
    rx, ry, rz = (stats.rankdata(v, axis=1) for v in (x, y, z))
    r_xy, r_xz, r_yz = pearson_rows(rx, ry), pearson_rows(rx, rz), pearson_rows(ry, rz)
    denominator = np.sqrt(np.maximum((1 - r_xz**2) * (1 - r_yz**2), 0.0))
    # z determining x or y (up to rounding) leaves nothing to correlate.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 1e-9, (r_xy - r_xz * r_yz) / denominator, np.nan)


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Spearman correlation of ``x`` and ``y`` with the rank-linear effect of ``z`` removed."""
    rows = (np.asarray(v, dtype=np.float64)[None, :] for v in (x, y, z))
    return float(partial_spearman_rows(*rows)[0])


STATISTICS: dict[str, RowStatistic] = {
    "spearman": spearman_rows, "kendall": kendall_rows, "pearson": pearson_rows,
}


def bootstrap_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """``[n_resamples, n]`` model indices drawn with replacement.

    The same draw as ``scipy.stats.bootstrap(..., paired=True, rng=np.random.default_rng(seed))``
    makes, so the intervals equal that function's (percentile method) on the same seed.
    """
    return np.random.default_rng(seed).integers(0, n, (n_resamples, n))


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
        n_resamples: bootstrap resamples (at least 1).
        seed: seed of the bootstrap.

    Returns:
        A :class:`Correlation`; value and interval are NaN when fewer than three models, or a
        constant variable, leave the coefficient undefined. Resamples that repeat one model so
        often that a variable is constant have no coefficient and are left out of the interval.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    samples: tuple[np.ndarray, ...] = (x, y)
    if kind == "partial_spearman":
        if control is None:
            raise ValueError("kind='partial_spearman' needs the control variable (control=...)")
        samples = (x, y, np.asarray(control, dtype=np.float64))
        statistic: RowStatistic = partial_spearman_rows
    elif kind in STATISTICS:
        statistic = STATISTICS[kind]
    else:
        raise ValueError(f"kind must be one of {[*STATISTICS, 'partial_spearman']}, got {kind!r}")
    if len({len(s) for s in samples}) != 1:
        raise ValueError(f"paired samples must have equal lengths, got {[len(s) for s in samples]}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    keep = np.all([np.isfinite(s) for s in samples], axis=0)
    samples = tuple(s[keep] for s in samples)
    n = int(keep.sum())
    nan = Correlation(kind, float("nan"), float("nan"), float("nan"), n)
    if n < _MIN_MODELS or any(np.ptp(s) == 0 for s in samples):
        return nan
    value = float(statistic(*(s[None, :] for s in samples))[0])
    if not math.isfinite(value):
        return nan
    index = bootstrap_indices(n, n_resamples, seed)
    distribution = statistic(*(s[index] for s in samples))
    distribution = distribution[np.isfinite(distribution)]
    if distribution.size == 0:
        return Correlation(kind, value, float("nan"), float("nan"), n)
    low, high = np.quantile(distribution, [0.025, 0.975])
    return Correlation(kind, value, float(low), float(high), n)


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


def accuracy_interval(percent: float | None, n: int | None) -> tuple[float, float] | None:
    """Wilson 95% interval (percent) of an accuracy measured on ``n`` images.

    The accuracy is read as ``round(percent / 100 · n)`` correct images out of ``n``
    (:func:`art_fim.binomial.wilson_interval`); ``None`` when either is missing or out of range.
    """
    if (not isinstance(percent, (int, float)) or isinstance(percent, bool)
            or not math.isfinite(percent) or not isinstance(n, int) or isinstance(n, bool)
            or n < 1 or not 0 <= percent <= 100):
        return None
    low, high = wilson_interval(np.array(round(percent / 100 * n)), np.array(n))
    return 100 * float(low), 100 * float(high)
