"""Result containers and dataset summaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from art_fim.curve import accuracy_curves, refuse_missing, robust_fraction
from art_fim.norms import norm_name


@dataclass(frozen=True)
class FisherEstimate:
    """Per-input results of a Fisher estimator.

    Attributes:
        values: the estimate per input (``λ_max``, trace or robust radius), shape ``[N]``.
        stderr: its standard error per input (zero for exact methods), shape ``[N]``.
        iterations: matrix-vector products (or probes) used per input, shape ``[N]``.
        converged: whether the iterative method met its tolerance, per input.
        method: the method that produced the values.
        queries: model queries (forward passes) per input, for query-only estimators.
        dof: degrees of freedom of the scaled-χ² interval per input (Hutchinson; see
            :mod:`art_fim.hutchinson`), or ``None`` for a normal interval.
        batch_size: the largest batch actually used (after memory planning), where known.
        precision: the arithmetic the products ran in, ``"float32"`` or ``"tf32"``
            (:mod:`art_fim.precision`), where known.
        proven: for a robust radius taken over a subset of classes, whether each input's value
            is proven to be the minimum over all classes (:mod:`art_fim.competitor_proof`;
            with probability ``≥ 1 − δ`` per input); an unproven value is an upper estimate
            and counts as not robust. ``None``: every class was seen.
    """

    values: np.ndarray
    stderr: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    method: str
    queries: np.ndarray | None = field(default=None)
    dof: np.ndarray | None = field(default=None)
    batch_size: int | None = field(default=None)
    precision: str | None = field(default=None)
    proven: np.ndarray | None = field(default=None)

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Return a ``level`` confidence interval per input, ``(low, high)``.

        With :attr:`dof` (Hutchinson): ``[ν v / χ²_ν(1 − α/2), ν v / χ²_ν(α/2)]``, which
        follows the skew of the quadratic forms; otherwise ``v ± z_{1−α/2} · stderr``,
        floored at zero (a zero-width interval for exact values).
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        alpha = 1.0 - level
        if self.dof is None:
            half = stats.norm.ppf(1 - alpha / 2) * self.stderr
            return np.maximum(self.values - half, 0.0), self.values + half
        dof = np.asarray(self.dof, dtype=np.float64)
        finite = np.isfinite(dof) & (dof > 0)
        safe = np.where(finite, dof, 1.0)
        upper, lower = stats.chi2.ppf(1 - alpha / 2, safe), stats.chi2.ppf(alpha / 2, safe)
        low = np.where(finite, safe * self.values / upper, self.values)
        high = np.where(finite, safe * self.values / lower, self.values)
        return low, high

    def summary(self) -> dict[str, float]:
        """Dataset summary of :attr:`values` (see :func:`summarize`)."""
        return summarize(self.values)


@dataclass(frozen=True)
class FisherStatistics:
    """Every per-input statistic of one Jacobian pass (see :func:`art_fim.fisher_statistics`).

    Attributes:
        spectral_norm: ``λ_max(F(x))``.
        trace: ``tr F(x)``.
        radius: first-order robust radius per threat norm, keyed ``"linf"``, ``"l2"``, ``"l1"``
            (in the classifier's input scale; 0 where the prediction is wrong).
        refined_radius: the refined radius per threat norm (empty unless asked for).
        eigenvector: top unit eigenvector of ``F(x)`` per input, ``[N, *input_shape]``, or ``None``.
        labels: the labels the radii refer to (the predictions when none were given), ``[N]``.
        predictions: the predicted classes (argmax of the outputs), ``[N]``.
        correct: whether the prediction equals the label, ``[N]``.
        competitors: how many competitors per input the radii considered: ``K − 1`` (all)
            on the exact route, the ``m`` nearest by logit margin on the matrix-free route.
        refine_competitors: how many of those (the nearest by first-order radius) were
            re-measured at the boundary point by the refinement (0 without refinement).
        precision: the arithmetic the products ran in (``"float32"`` or ``"tf32"``).
        proof_failure: where the radii came from a subset of classes, the probability ``δ``
            per input that the proof's bounds fail (:mod:`art_fim.margin_norm_bound`);
            ``None`` where every class was seen.
    """

    spectral_norm: FisherEstimate
    trace: FisherEstimate
    radius: dict[str, FisherEstimate]
    refined_radius: dict[str, FisherEstimate]
    eigenvector: np.ndarray | None
    labels: np.ndarray
    predictions: np.ndarray
    correct: np.ndarray
    competitors: int | None = None
    refine_competitors: int = 0
    precision: str | None = None
    proof_failure: float | None = None

    def accuracy_curves(self, eps: Any = None) -> dict[str, Any]:
        """Predicted robust accuracy at every budget, first-order and refined, per norm.

        Args:
            eps: budgets (one array for every norm, or a dict per norm name); ``None``: a grid
                from 0 to where every curve reaches 0 (:func:`art_fim.curve.default_grid`).

        Returns:
            An :class:`~art_fim.curve.AccuracyCurve` per norm name (``"linf"``, ``"l2"``, ``"l1"``).
        """
        return accuracy_curves(self.radius, self.refined_radius, eps)

    @property
    def proven_fraction(self) -> dict[str, float]:
        """The fraction of inputs whose radius is proven to be the minimum over all classes.

        Keyed by norm name for the first-order radius (``"linf"``) and with ``"_refined"``
        for the refined one; ``1.0`` where every class was seen. An unproven radius is an upper
        estimate and counts as not robust in :meth:`predicted_robust_accuracy`.
        """
        out = {}
        for suffix, table in (("", self.radius), ("_refined", self.refined_radius)):
            for name, estimate in table.items():
                proven = estimate.proven
                out[name + suffix] = 1.0 if proven is None else float(np.mean(proven))
        return out

    @property
    def accuracy(self) -> float:
        """Fraction of inputs classified correctly."""
        return float(self.correct.mean())

    def predicted_robust_accuracy(
        self, eps: float, norm: Any = np.inf, refined: bool | None = None
    ) -> float:
        """Return the fraction of inputs correctly classified with radius ``≥ eps``.

        This is the predicted robust accuracy at ``eps``. An input whose radius is not proven
        to be the minimum over all classes (radii from a subset of classes,
        :attr:`proven_fraction`) counts as not robust.

        Args:
            eps: perturbation budget in the classifier's input scale (e.g. ``8/255``).
            norm: threat norm, one of those the radii were computed for.
            refined: use the refined radius; ``None``: the refined one when it was computed.

        Raises:
            ValueError: a negative or non-finite ``eps``, a norm (or refinement) not computed, or
                radii that are NaN (not computed within ``memory_budget``).
        """
        name = norm_name(norm)
        use_refined = bool(self.refined_radius) if refined is None else refined
        table = self.refined_radius if use_refined else self.radius
        if name not in table:
            what = "refined radius" if use_refined else "radius"
            raise ValueError(
                f"no {what} for norm {name} was computed (have: {', '.join(table) or 'none'}); "
                "pass it in norms= (and refine=True for the refined radius)."
            )
        refuse_missing(table[name].values, name)
        return robust_fraction(table[name].values, eps, table[name].proven)


def summarize(
    values: np.ndarray, quantiles: tuple[float, ...] = (0.05, 0.25, 0.75, 0.95)
) -> dict[str, float]:
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
