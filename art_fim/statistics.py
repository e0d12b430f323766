"""Every per-input statistic from one Jacobian per batch, and attack-free robust accuracy.

The exact route computes the ``K`` rows of the logit Jacobian ``J`` of each input once; from
them come, with no further pass through the model,

* ``λ_max(F(x))``, ``tr F(x)`` and the top eigenvector of the input Fisher ``F = Jᵀ M J``
  (:func:`art_fim.exact.spectral_statistics`, https://arxiv.org/abs/2606.04767), and
* the first-order robust radius in each threat norm,
  ``r_q(x) = min_{j≠y} (z_y − z_j) / ‖∇(z_y − z_j)‖_{q*}`` (:mod:`art_fim.radius`), whose
  fraction ``≥ ε`` is an attack-free estimate of robust accuracy at ``ε``.

The optional refinement costs one more Jacobian per batch and threat norm, at the
first-order boundary point. ART-facing functions: :func:`fisher_statistics`,
:func:`robust_radius` and :func:`predicted_robust_accuracy`.

Caveat: the first-order radius is a prediction, not a bound. It is optimistic where the
margins curve towards the boundary (their gradients grow on the way), and meaningless for
gradient-masked models (obfuscated or shattered gradients, randomised defences), whose
gradients at ``x`` say nothing about their attackability; the refinement corrects the first
case in part, nothing corrects the second. Check such models with an attack.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from art_fim.adapters import ClassifierAdapter, adapter_for
from art_fim.blackbox import blackbox_for
from art_fim.checks import check_inputs
from art_fim.exact import spectral_statistics
from art_fim.finite_differences import box_bounds
from art_fim.jacobian import InputJacobian
from art_fim.metric import FisherInformationMetric, Method
from art_fim.radius import (
    boundary_point,
    check_labels,
    margin_dual_norms,
    margins,
    norm_name,
    parse_norm,
    radius_from_margins,
    refined_radius,
    robust_fraction,
)
from art_fim.results import FisherEstimate, FisherStatistics
from art_fim.streams import input_generators

logger = logging.getLogger(__name__)

_ROUTES = ("auto", "exact", "blackbox")


def fisher_statistics(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray | None = None,
    norms: tuple[Any, ...] = (np.inf, 2),
    eigenvector: bool = False,
    refine: bool = False,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    **kwargs: Any,
) -> FisherStatistics:
    """Compute ``λ_max``, ``tr F``, robust radii (and the top eigenvector) from one Jacobian per batch.

    The values equal those of separate :func:`~art_fim.fisher_spectral_norm`,
    :func:`~art_fim.fisher_trace` and :func:`robust_radius` calls with the same settings, at
    the cost of one of them. With ``method="auto"``, inputs whose ``K`` Jacobian rows do not
    fit the memory budget even one input at a time (``K`` in the thousands) take the
    matrix-free routes instead (Lanczos for ``λ_max``, Hutchinson for the trace, on one
    Jacobian object per batch); the radii, which need the rows, are then NaN (raise
    ``memory_budget`` to get them; ``method="exact"`` refuses such inputs, saying so).

    | Paper link: https://arxiv.org/abs/2606.04767

    :param classifier: As for :func:`~art_fim.fisher_spectral_norm`.
    :param x: Inputs ``[N, *input_shape]`` in the classifier's own scale.
    :param y: Labels (indices ``[N]`` or one-hot ``[N, nb_classes]``); ``None``: the predicted
        classes, so that each radius is the distance to the decision boundary.
    :param norms: Threat norms of the radii: any of ``np.inf``, ``2``, ``1`` (empty: none).
    :param eigenvector: Also return the top eigenvector of ``F(x)`` (white-box only).
    :param refine: Also compute the refined radius (one more Jacobian per batch and norm;
        white-box only).
    :param method: ``"auto"``, ``"exact"`` or ``"blackbox"`` (``λ_max``, trace and ``ℓ2``
        radius from a query sketch; ``ℓ∞`` / ``ℓ1`` radii in coordinate mode only).
    :param batch_size: Inputs per batch.
    :param verbose: Show a progress bar.
    :param kwargs: Further :class:`~art_fim.FisherInformationMetric` parameters.
    :return: A :class:`~art_fim.results.FisherStatistics`.
    """
    norms = tuple(dict.fromkeys(parse_norm(norm) for norm in norms))
    if method not in _ROUTES:
        raise ValueError(
            f"method={method!r} cannot give the robust radius, which needs the K Jacobian rows; "
            f"choose one of {', '.join(_ROUTES)}."
        )
    metric = FisherInformationMetric(classifier, method=method, batch_size=batch_size, verbose=verbose, **kwargs)
    if method == "blackbox":
        if eigenvector or refine:
            raise ValueError(
                "eigenvector=True and refine=True need input gradients at new points; the query-only "
                "route gives neither. Use a white-box classifier, or leave them False."
            )
        return _blackbox_statistics(metric, x, y, norms)
    adapter = adapter_for(classifier, metric.output_type)
    x = check_inputs(x, adapter.input_shape, adapter.clip_values)
    labels = None if y is None else check_labels(y, len(x))
    bounds = box_bounds(adapter.clip_values, tuple(x.shape[1:]))
    bounds_t = None if bounds is None else (torch.tensor(bounds[0]), torch.tensor(bounds[1]))
    parts: list[dict[str, Any]] = []
    with adapter.evaluating(), tqdm(
        total=len(x), desc="Fisher statistics", unit="input", disable=not verbose
    ) as bar:
        route, size, class_chunk = metric._plan(adapter, x, "spectral_norm")
        bar.set_description(f"Fisher statistics ({route})")
        if route != "exact" and norms:
            logger.warning(
                "the Jacobian rows of one input exceed the memory budget: λ_max and the trace take "
                "the matrix-free routes and the robust radii are not computed (NaN); raise "
                "memory_budget to compute them."
            )
        for start in range(0, len(x), size):
            batch = x[start : start + size]
            jac = adapter.jacobian(batch, class_chunk)
            if start == 0 and y is not None:
                check_labels(y, len(x), jac.num_classes)  # the class range, now that K is known
            target = (
                jac.logits.argmax(1) if labels is None
                else torch.from_numpy(labels[start : start + size]).to(jac.device)
            )
            if route == "exact":
                part, pending = _exact_batch(jac, target, norms, eigenvector, refine, batch, bounds_t)
                del jac  # the refinement's Jacobians need the memory of this one's graph
                part.update(_refine_batch(adapter, pending, target, class_chunk))
                parts.append(part)
            else:
                generators = input_generators(metric.seed, start, jac.batch_size)
                parts.append(_matrix_free_batch(metric, route, jac, target, norms, generators))
            bar.update(len(batch))
    return _assemble(parts, norms, refine, route, eigenvector, x.shape[1:], min(size, len(x)))


def _exact_batch(
    jac: InputJacobian,
    labels: Tensor,
    norms: tuple[float, ...],
    eigenvector: bool,
    refine: bool,
    batch: np.ndarray,
    bounds: tuple[Tensor, Tensor] | None,
) -> tuple[dict[str, Any], dict[float, tuple[np.ndarray, Tensor, Tensor]]]:
    """All statistics of one batch from its ``K`` Jacobian rows.

    Returns:
        The batch's statistics, and per norm to refine: the boundary points (shaped and typed
        like ``batch``), the margins and their dual gradient norms at ``x``.
    """
    rows = jac.rows()
    lam, trace, vector = spectral_statistics(rows, jac.probs, eigenvector)
    margin = margins(jac.logits, labels)
    out: dict[str, Any] = {
        "spectral_norm": lam, "trace": trace, "eigenvector": vector, "labels": labels,
        "predictions": jac.logits.argmax(1), "correct": jac.logits.argmax(1) == labels,
        "num_classes": jac.num_classes,
    }
    pending: dict[float, tuple[np.ndarray, Tensor, Tensor]] = {}
    flat = torch.from_numpy(np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)).to(rows.device)
    box = None if bounds is None else (bounds[0].to(rows.device), bounds[1].to(rows.device))
    for norm in norms:
        dual = margin_dual_norms(rows, labels, norm)
        out[norm_name(norm)] = radius_from_margins(margin, dual, labels)
        if refine:
            point = boundary_point(flat, rows, labels, margin, dual, norm, box)
            moved = point.cpu().numpy().reshape(batch.shape).astype(batch.dtype, copy=False)
            pending[norm] = (moved, margin, dual)
    return out, pending


def _refine_batch(
    adapter: ClassifierAdapter,
    pending: dict[float, tuple[np.ndarray, Tensor, Tensor]],
    labels: Tensor,
    class_chunk: int | None,
) -> dict[str, Tensor]:
    """The refined radius per norm: one more Jacobian, at the boundary points."""
    out = {}
    for norm, (moved, margin, dual) in pending.items():
        at_boundary = margin_dual_norms(adapter.jacobian(moved, class_chunk).rows(), labels, norm)
        out[f"{norm_name(norm)}_refined"] = refined_radius(margin, dual, at_boundary, labels)
    return out


def _matrix_free_batch(
    metric: FisherInformationMetric,
    route: str,
    jac: InputJacobian,
    labels: Tensor,
    norms: tuple[float, ...],
    generators: list[torch.Generator],
) -> dict[str, Any]:
    """``λ_max`` (Lanczos / power) and the trace (Hutchinson) on one Jacobian object; no radii."""
    spectral = metric._estimate_batch(jac, route, "spectral_norm", generators)
    trace = metric._estimate_batch(jac, "hutchinson", "trace", generators)
    nan = torch.full((jac.batch_size,), math.nan, dtype=torch.float64)
    out: dict[str, Any] = {
        "spectral": spectral, "trace_estimate": trace, "eigenvector": None, "labels": labels,
        "predictions": jac.logits.argmax(1), "correct": jac.logits.argmax(1) == labels,
        "num_classes": jac.num_classes,
    }
    out.update({norm_name(norm): nan for norm in norms})
    return out


def _assemble(
    parts: list[dict[str, Any]],
    norms: tuple[float, ...],
    refine: bool,
    route: str,
    eigenvector: bool,
    input_shape: tuple[int, ...],
    batch_size: int,
) -> FisherStatistics:
    """Concatenate the batches into a :class:`FisherStatistics` (``batch_size``: the largest batch formed)."""

    def cat(key: str) -> np.ndarray:
        return np.concatenate([np.asarray(part[key].cpu().numpy()) for part in parts])

    n = sum(len(part["labels"]) for part in parts)
    zeros, ones = np.zeros(n), np.ones(n, dtype=bool)
    classes = np.concatenate([np.full(len(part["labels"]), part["num_classes"]) for part in parts])

    def exact(values: np.ndarray, method: str = "exact", passes: int = 1) -> FisherEstimate:
        return FisherEstimate(values, zeros, passes * classes, ones, method, batch_size=batch_size)

    def iterative(key: str, method: str) -> FisherEstimate:
        columns = zip(*(part[key] for part in parts))
        values, stderr, iterations, converged, dof = (np.concatenate(c) for c in columns)
        return FisherEstimate(values, stderr, iterations, converged, method,
                              dof=dof if method == "hutchinson" else None, batch_size=batch_size)

    if route == "exact":
        spectral, trace = exact(cat("spectral_norm")), exact(cat("trace"))
    else:
        spectral, trace = iterative("spectral", route), iterative("trace_estimate", "hutchinson")
    radius = {norm_name(norm): exact(cat(norm_name(norm))) for norm in norms}
    refined = (
        {norm_name(norm): exact(cat(f"{norm_name(norm)}_refined"), "exact+refined", 2) for norm in norms}
        if refine and route == "exact" else {}
    )
    vectors = cat("eigenvector").reshape(n, *input_shape) if eigenvector and route == "exact" else None
    return FisherStatistics(
        spectral_norm=spectral, trace=trace, radius=radius, refined_radius=refined, eigenvector=vectors,
        labels=cat("labels").astype(np.int64), predictions=cat("predictions").astype(np.int64),
        correct=cat("correct").astype(bool),
    )


def _blackbox_statistics(
    metric: FisherInformationMetric, x: np.ndarray, y: np.ndarray | None, norms: tuple[float, ...]
) -> FisherStatistics:
    """λ_max, trace and radii from one set of queries per input (:class:`~art_fim.BlackBoxFisher`)."""
    fisher = blackbox_for(metric)
    quantities = ("spectral_norm", "trace", *(f"radius_{norm_name(norm)}" for norm in norms))
    estimates = fisher.estimate_many(x, quantities, y)
    predict = fisher._predict_fn()
    scores = np.concatenate([predict(x[i : i + metric.batch_size]) for i in range(0, len(x), metric.batch_size)])
    predictions = scores.argmax(1)
    labels = predictions if y is None else check_labels(y, len(predictions), scores.shape[1])
    return FisherStatistics(
        spectral_norm=estimates["spectral_norm"], trace=estimates["trace"],
        radius={norm_name(norm): estimates[f"radius_{norm_name(norm)}"] for norm in norms},
        refined_radius={}, eigenvector=None, labels=labels, predictions=predictions.astype(np.int64),
        correct=predictions == labels,
    )


def robust_radius(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    norm: Any = np.inf,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    refine: bool = False,
    **kwargs: Any,
) -> np.ndarray:
    """Compute the first-order robust radius per input: the linearised distance to the boundary.

    .. math::  r_q(x) = \\min_{j ≠ y} \\frac{z_y − z_j}{‖∇_x (z_y − z_j)‖_{q^*}}

    with ``q*`` the dual norm (``ℓ1`` for an ``ℓ∞`` threat, ``ℓ2`` for ``ℓ2``, ``ℓ∞`` for
    ``ℓ1``), and ``0`` where the prediction is wrong. Exact for linear models without box
    constraints; invariant to rescaling the logits. It is an estimate, not a certificate:
    optimistic where the margins curve towards the boundary, and meaningless for
    gradient-masked models (see the module docstring). ``refine=True`` divides each margin
    by the larger of its dual gradient norms at ``x`` and at the first-order boundary point
    (one more Jacobian per batch): never larger, and equal for linear models.

    | Paper link: https://arxiv.org/abs/1705.08475 (the linearised margin bound)

    :param classifier: As for :func:`~art_fim.fisher_spectral_norm`.
    :param x: Inputs ``[N, *input_shape]`` in the classifier's own scale.
    :param y: Labels, indices ``[N]`` or one-hot ``[N, nb_classes]``.
    :param norm: Threat norm: ``np.inf``, ``2`` or ``1``.
    :param method: ``"auto"`` (exact), ``"exact"`` or ``"blackbox"`` (``ℓ2`` from the query
        sketch; ``ℓ∞`` and ``ℓ1`` in coordinate mode only).
    :param batch_size: Inputs per batch.
    :param verbose: Show a progress bar.
    :param refine: Return the refined radius.
    :param kwargs: Further :class:`~art_fim.FisherInformationMetric` parameters.
    :return: Radius per input in the classifier's input scale, shape ``[N]``.
    """
    return _radius_estimate(classifier, x, y, norm, method, batch_size, verbose, refine, **kwargs).values


def predicted_robust_accuracy(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps: float,
    norm: Any = np.inf,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    refine: bool = False,
    **kwargs: Any,
) -> float:
    """Estimate robust accuracy at ``eps`` without an attack: the fraction correct with radius ``≥ eps``.

    See :func:`robust_radius` for the radius and its caveats (optimistic on curved or
    gradient-masked models).

    :param classifier: As for :func:`~art_fim.fisher_spectral_norm`.
    :param x: Inputs ``[N, *input_shape]`` in the classifier's own scale.
    :param y: Labels, indices ``[N]`` or one-hot ``[N, nb_classes]``.
    :param eps: Perturbation budget in the classifier's input scale (e.g. ``8/255``).
    :param norm: Threat norm: ``np.inf``, ``2`` or ``1``.
    :param method: ``"auto"``, ``"exact"`` or ``"blackbox"``.
    :param batch_size: Inputs per batch.
    :param verbose: Show a progress bar.
    :param refine: Use the refined radius.
    :param kwargs: Further :class:`~art_fim.FisherInformationMetric` parameters.
    :return: A fraction in ``[0, 1]``.
    """
    robust_fraction(np.zeros(1), eps)  # check eps before any work
    radius = robust_radius(classifier, x, y, norm, method, batch_size, verbose, refine, **kwargs)
    return robust_fraction(radius, eps)


def _radius_estimate(
    classifier: Any, x: np.ndarray, y: np.ndarray, norm: Any, method: Method, batch_size: int, verbose: bool,
    refine: bool, **kwargs: Any,
) -> FisherEstimate:
    """The radius of one norm; ``"auto"`` means exact here, since the radius needs the rows."""
    if y is None:
        raise ValueError("y is required: pass the labels (indices or one-hot) of x.")
    name = norm_name(norm)
    if method == "blackbox":
        if refine:
            raise ValueError("refine=True needs input gradients at new points, which the query-only route lacks.")
        metric = FisherInformationMetric(classifier, method=method, batch_size=batch_size, verbose=verbose, **kwargs)
        return blackbox_for(metric).estimate(x, f"radius_{name}", y)
    stats = fisher_statistics(
        classifier, x, y, norms=(norm,), refine=refine, method="exact" if method == "auto" else method,
        batch_size=batch_size, verbose=verbose, **kwargs,
    )
    return (stats.refined_radius if refine else stats.radius)[name]
