"""Result containers and dataset summaries."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FisherEstimate:
    """Per-input results of a Fisher estimator.

    Attributes:
        values: the estimate per input (``λ_max`` or trace), shape ``[N]``.
        stderr: its standard error per input (zero for exact methods), shape ``[N]``.
        iterations: matrix-vector products (or probes) used per input, shape ``[N]``.
        converged: whether the iterative method met its tolerance, per input.
        method: the method that produced the values.
        queries: model queries (forward passes) per input, for query-only estimators.
        batch_size: the largest batch actually used (after memory planning), where known.
    """

    values: np.ndarray
    stderr: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    method: str
    queries: np.ndarray | None = field(default=None)
    batch_size: int | None = field(default=None)

    def summary(self) -> dict[str, float]:
        """Dataset summary of :attr:`values` (see :func:`summarize`)."""
        return summarize(self.values)


def summarize(values: np.ndarray, quantiles: tuple[float, ...] = (0.05, 0.25, 0.75, 0.95)) -> dict[str, float]:
    """Summarise per-input Fisher values over a dataset.

    The Fisher norm is heavy-tailed (confident inputs give values near zero, a few
    near-boundary inputs dominate the mean), so the median and the mean of
    ``log10`` are reported beside the mean.

    Args:
        values: per-input non-negative values.
        quantiles: quantile levels to report.

    Returns:
        ``mean``, ``std``, ``median``, ``mean_log10`` (of values floored at 1e-30), ``min``,
        ``max``, ``n`` and ``q<level>`` for each quantile level.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("cannot summarise an empty set of values")
    out = {
        "n": float(v.size),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "median": float(np.median(v)),
        "mean_log10": float(np.log10(np.maximum(v, 1e-30)).mean()),
        "min": float(v.min()),
        "max": float(v.max()),
    }
    for q in quantiles:
        out[f"q{q:g}"] = float(np.quantile(v, q))
    return out
