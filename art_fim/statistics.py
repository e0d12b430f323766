"""Every per-input statistic from one Jacobian per batch, and attack-free robust accuracy.

The exact route computes the ``K`` rows of the logit Jacobian ``J`` of each input once; from
them come, with no further pass through the model,

* ``λ_max(F(x))``, ``tr F(x)`` and the top eigenvector of the input Fisher ``F = Jᵀ M J``
  (:func:`art_fim.exact.spectral_statistics`, https://arxiv.org/abs/2606.04767), and
* the first-order robust radius in each threat norm,
  ``r_q(x) = min_{j≠y} (z_y − z_j) / ‖∇(z_y − z_j)‖_{q*}`` (:mod:`art_fim.radius`), whose
  fraction ``≥ ε`` is an attack-free estimate of robust accuracy at ``ε``.

The refinement (on by default: it halves the error against AutoAttack) re-measures the
margins' gradients at the first-order boundary point, for the few competitors that can set
the minimum (``refine_competitors``, the nearest by first-order radius). For ImageNet-size
label spaces (``K`` in the thousands) ``method="auto"`` takes the matrix-free route: Lanczos
for ``λ_max``, Hutchinson for the trace, and the radii from the rows of the ``competitors``
nearest classes by logit margin instead of all ``K``. ART-facing functions:
:func:`fisher_statistics`, :func:`robust_radius` and :func:`predicted_robust_accuracy`.

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

from art_fim.adapters import ClassifierAdapter
from art_fim.blackbox import blackbox_for
from art_fim.box_search import box_radius_from_margins, refined_box_radius
from art_fim.checks import check_labels, check_positive_int
from art_fim.competitors import class_subset, nearest_competitors, refinement_classes
from art_fim.curve import robust_fraction
from art_fim.exact import spectral_statistics
from art_fim.finite_differences import box_bounds
from art_fim.jacobian import InputJacobian
from art_fim.margins import (
    boundary_point,
    margin_dual_norms,
    margins,
    radius_from_margins,
    refined_radius,
)
from art_fim.memory import Footprint, plan_exact
from art_fim.metric import FisherInformationMetric, Method, Plan
from art_fim.norms import norm_name, parse_norm
from art_fim.results import FisherEstimate, FisherStatistics

logger = logging.getLogger(__name__)

_ROUTES = ("auto", "exact", "lanczos", "blackbox")
#: Competitors per input whose rows the matrix-free route computes for the radii (as targeted
#: attacks take the nearest classes by logit margin).
DEFAULT_COMPETITORS = 20
#: Competitors per input and norm whose gradients the refinement re-measures at the boundary point.
DEFAULT_REFINE_COMPETITORS = 3


def fisher_statistics(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray | None = None,
    norms: tuple[Any, ...] = (np.inf, 2),
    eigenvector: bool = False,
    refine: bool | None = None,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    competitors: int = DEFAULT_COMPETITORS,
    refine_competitors: int = DEFAULT_REFINE_COMPETITORS,
    box: bool = True,
    **kwargs: Any,
) -> FisherStatistics:
    """Compute ``λ_max``, ``tr F``, robust radii (and the top eigenvector) from one Jacobian.

    The values equal those of separate :func:`~art_fim.fisher_spectral_norm`,
    :func:`~art_fim.fisher_trace` and :func:`robust_radius` calls with the same settings, at
    the cost of one of them (plus the refinement's few gradients at the boundary points).
    Routes: ``"exact"`` forms the ``K`` Jacobian rows (``λ_max``, trace and radii over all
    ``K − 1`` competitors); ``"lanczos"`` is matrix-free (Lanczos for ``λ_max``, Hutchinson
    with standard errors for the trace) and takes the radii from the rows of the label and
    its ``competitors`` nearest classes by logit margin (all of them, bit for bit the exact
    radii, when ``competitors ≥ K − 1``); ``"auto"`` takes the cheaper of the two
    (:func:`~art_fim.metric.prefers_matrix_free`: Lanczos for ``K > 2 · num_iter``, i.e.
    ImageNet) or the one that fits the memory budget. The result's ``competitors`` records
    how many competitors the radii saw.

    | Paper link: https://arxiv.org/abs/2606.04767

    Args:
        classifier: As for :func:`~art_fim.fisher_spectral_norm`.
        x: Inputs ``[N, *input_shape]`` in the classifier's own scale.
        y: Labels (indices ``[N]`` or one-hot ``[N, nb_classes]``); ``None``: the predicted
            classes, so that each radius is the distance to the decision boundary.
        norms: Threat norms of the radii: any of ``np.inf``, ``2``, ``1`` (empty: none).
        eigenvector: Also return the top eigenvector of ``F(x)`` (exact route only).
        refine: Also compute the refined radius (``False`` keeps the one-pass, first-order
            estimate; ``None``: refined on the white-box routes, which can, first-order on
            the query-only one, which cannot).
        method: ``"auto"``, ``"exact"``, ``"lanczos"`` or ``"blackbox"`` (``λ_max``, trace and
            ``ℓ2`` radius from a query sketch; ``ℓ∞`` / ``ℓ1`` radii in coordinate mode only).
        batch_size: Inputs per batch.
        verbose: Show a progress bar.
        competitors: Competitors per input the matrix-free route's radii consider.
        refine_competitors: Competitors per input and norm whose margin gradients the
            refinement re-measures at the boundary point (the nearest by first-order radius).
        box: Take each linearised margin's distance inside the classifier's ``clip_values``
            (exact for linear models; :func:`art_fim.radius.box_radius_from_margins`);
            ``False``: the unconstrained ``g / ‖∇g‖_{q*}``. No effect without ``clip_values``.
        kwargs: Further :class:`~art_fim.FisherInformationMetric` parameters (``precision``,
            ``memory_budget``, ``num_iter``, ...).

    Returns:
        A :class:`~art_fim.results.FisherStatistics`.
    """
    norms = tuple(dict.fromkeys(parse_norm(norm) for norm in norms))
    if method not in _ROUTES:
        raise ValueError(
            f"method={method!r} cannot give the robust radius, which needs Jacobian rows; "
            f"choose one of {', '.join(_ROUTES)}."
        )
    check_positive_int("competitors", competitors)
    check_positive_int("refine_competitors", refine_competitors)
    metric = FisherInformationMetric(
        classifier, method=method, batch_size=batch_size, verbose=verbose, **kwargs
    )
    if method == "blackbox":
        if eigenvector or refine:  # asked for explicitly: refine=None means "where possible"
            raise ValueError(
                "eigenvector=True and refine=True need input gradients at new points; the "
                "query-only route gives neither. Pass refine=False (and eigenvector=False), or use "
                "a white-box classifier."
            )
        return _blackbox_statistics(metric, x, y, norms)
    return _whitebox_statistics(
        metric,
        x,
        y,
        norms,
        eigenvector,
        refine is not False,
        int(competitors),
        int(refine_competitors),
        bool(box),
    )


def _whitebox_statistics(
    metric: FisherInformationMetric,
    x: np.ndarray,
    y: np.ndarray | None,
    norms: tuple[float, ...],
    eigenvector: bool,
    refine: bool,
    competitors: int,
    refine_competitors: int,
    box: bool,
) -> FisherStatistics:
    engine = metric.engine()
    adapter = engine.adapter
    parts: list[dict[str, Any]] = []
    radius_norms = norms  # those whose radii are computed
    with engine.run(x, "Fisher statistics") as run:
        x = run.x
        labels = None if y is None else check_labels(y, len(x))
        bounds = box_bounds(adapter.clip_values, tuple(x.shape[1:]))
        bounds_t = None if bounds is None else (torch.tensor(bounds[0]), torch.tensor(bounds[1]))
        plan = metric.plan(engine, x, "spectral_norm")
        route, size, class_chunk = plan.method, plan.batch_size, plan.class_chunk
        if route != "exact":
            if eigenvector:
                raise ValueError(
                    "eigenvector=True needs the K Jacobian rows of the exact route; pass "
                    "method='exact' (and raise memory_budget if it does not fit) or leave "
                    "eigenvector False."
                )
            fits = _competitor_plan(plan, competitors)
            if fits is None and norms:
                logger.warning(
                    "the Jacobian rows of one input's label and competitors exceed the memory "
                    "budget: λ_max and the trace take the matrix-free routes and the robust radii "
                    "are not computed (NaN); raise memory_budget or lower competitors to compute "
                    "them."
                )
                radius_norms, refine = (), False
            size, class_chunk = fits or (size, None)
        run.describe(f"Fisher statistics ({route})")
        kept = (
            plan.footprint.classes - 1
            if route == "exact"
            else min(competitors, plan.footprint.classes - 1)
        )
        for chunk in run.batches(size):
            start, batch = chunk.start, chunk.x
            jac = adapter.jacobian(batch, class_chunk)
            if start == 0 and y is not None:
                check_labels(y, len(x), jac.num_classes)  # the class range, now that K is known
            target = (
                jac.logits.argmax(1) if labels is None
                else torch.from_numpy(labels[start : start + size]).to(jac.device)
            )
            if route == "exact":
                part, radii = _exact_batch(jac, target, eigenvector)
                classes = None
            else:
                part, radii, classes = _matrix_free_batch(
                    metric, route, jac, target, competitors, chunk.generators
                )
            rows, logits = radii
            part.update(
                _radius_batch(
                    rows, logits, target, radius_norms, batch, bounds_t, refine, classes, box
                )
            )
            pending = part.pop("pending")
            nan = torch.full((len(batch),), math.nan, dtype=torch.float64)
            part.update({norm_name(norm): nan for norm in norms if norm not in radius_norms})
            del jac  # the refinement's Jacobians need the memory of this one's graph
            part.update(_refine_batch(adapter, pending, class_chunk, refine_competitors, rows))
            del rows
            parts.append(part)
    return _assemble(
        parts, norms, refine, route, eigenvector, x.shape[1:], min(size, len(x)), kept,
        refine_competitors if refine else 0, metric.precision,
    )


def _competitor_plan(plan: Plan, competitors: int) -> tuple[int, int] | None:
    """Batch size and classes per backward pass for the matrix-free route's competitor rows.

    Both the Krylov route's batch (already in ``plan``) and the rows of the label and its
    ``m`` competitors must fit the budget; ``None`` when even one class at a time does not.
    """
    footprint = plan.footprint
    classes = min(competitors + 1, footprint.classes)
    fits = plan_exact(Footprint(classes, footprint.dim, footprint.itemsize, footprint.activations),
                      plan.budget, plan.batch_size)
    return None if fits is None else (min(plan.batch_size, fits[0]), fits[1])


def _exact_batch(
    jac: InputJacobian, labels: Tensor, eigenvector: bool
) -> tuple[dict[str, Any], tuple[Tensor, Tensor]]:
    """``λ_max``, the trace (and eigenvector) of one batch from its ``K`` Jacobian rows.

    Returns:
        The batch's statistics, and the rows and logits for the radii.
    """
    rows = jac.rows()
    lam, trace, vector = spectral_statistics(rows, jac.probs, eigenvector)
    out: dict[str, Any] = {
        "spectral_norm": lam, "trace": trace, "eigenvector": vector, "labels": labels,
        "predictions": jac.logits.argmax(1), "correct": jac.logits.argmax(1) == labels,
        "num_classes": jac.num_classes,
    }
    return out, (rows, jac.logits)


def _matrix_free_batch(
    metric: FisherInformationMetric,
    route: str,
    jac: InputJacobian,
    labels: Tensor,
    competitors: int,
    generators: list[torch.Generator],
) -> tuple[dict[str, Any], tuple[Tensor, Tensor], Tensor]:
    """``λ_max`` (Lanczos / power), the trace (Hutchinson) and the competitor rows of one batch.

    Returns:
        The batch's statistics, the rows and logits of the label and its nearest competitors
        (``[B, m + 1, d]``, ``[B, m + 1]``), and those classes (``[B, m + 1]``).
    """
    spectral = metric.estimate_batch(jac, route, "spectral_norm", generators)
    trace = metric.estimate_batch(jac, "hutchinson", "trace", generators)
    classes = nearest_competitors(jac.logits, labels, competitors)
    out: dict[str, Any] = {
        "spectral_norm": spectral, "trace": trace, "eigenvector": None, "labels": labels,
        "predictions": jac.logits.argmax(1), "correct": jac.logits.argmax(1) == labels,
        "num_classes": jac.num_classes,
    }
    return out, (jac.class_rows(classes), jac.logits.gather(1, classes)), classes


def _radius_batch(
    rows: Tensor,
    logits: Tensor,
    labels: Tensor,
    norms: tuple[float, ...],
    batch: np.ndarray,
    bounds: tuple[Tensor, Tensor] | None,
    refine: bool,
    classes: Tensor | None,
    box: bool,
) -> dict[str, Any]:
    """First-order radii per norm from the rows of the label and its competitors.

    Args:
        rows: ``[B, c, d]`` rows of the classes considered (all ``K``, or a subset).
        logits: ``[B, c]`` their logits.
        labels: ``[B]`` class indices.
        norms: threat norms.
        batch: the inputs (for the boundary points' shape and dtype).
        bounds: the flattened input box, or ``None``.
        refine: prepare the refinement.
        classes: ``[B, c]`` the class of each column (``None``: all ``K`` in order).
        box: take the distances inside ``bounds``.

    Returns:
        ``{norm name: radius}`` and ``"pending"``: per norm to refine, the boundary points
        (shaped and typed like ``batch``), the margins, their dual norms at ``x``, the label's
        column, the columns' classes, and the flattened inputs and box when the box applies.
    """
    own = labels if classes is None else class_subset(classes, labels)
    everything = torch.arange(rows.shape[1], device=rows.device).expand(len(labels), -1)
    columns = everything if classes is None else classes
    margin = margins(logits, own)
    out: dict[str, Any] = {}
    pending: dict[float, tuple[Any, ...]] = {}
    flat = torch.from_numpy(np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)).to(
        rows.device
    )
    limits = None if bounds is None else (bounds[0].to(rows.device), bounds[1].to(rows.device))
    inside = (flat, limits) if box and limits is not None else None
    for norm in norms:
        dual = margin_dual_norms(rows, own, norm)
        out[norm_name(norm)] = (
            radius_from_margins(margin, dual, own) if inside is None
            else box_radius_from_margins(margin, dual, rows, own, flat, limits, norm)
        )
        if refine:
            point = boundary_point(flat, rows, own, margin, dual, norm, limits)
            moved = point.cpu().numpy().reshape(batch.shape).astype(batch.dtype, copy=False)
            pending[norm] = (moved, margin, dual, own, columns, inside)
    out["pending"] = pending
    return out


def _refine_batch(
    adapter: ClassifierAdapter,
    pending: dict[float, tuple[Any, ...]],
    class_chunk: int | None,
    refine_competitors: int,
    rows_at_x: Tensor,
) -> dict[str, Tensor]:
    """The refined radius per norm: nearest competitors' margin gradients at the boundary points.

    One forward pass at the boundary points and ``refine_competitors + 1`` VJPs per norm;
    the competitors not re-measured keep their norms at ``x``. Inside the box, the distances
    use the gradients at ``x`` (``rows_at_x``) with the margins scaled by the refinement.
    """
    out = {}
    for norm, (moved, margin, dual, own, columns, inside) in pending.items():
        chosen = refinement_classes(margin, dual, own, refine_competitors)  # columns of `margin`
        rows = adapter.jacobian(moved, class_chunk).class_rows(columns.gather(1, chosen))
        at_boundary = dual.scatter(
            1, chosen, margin_dual_norms(rows, class_subset(chosen, own), norm)
        )
        del rows
        out[f"{norm_name(norm)}_refined"] = (
            refined_radius(margin, dual, at_boundary, own)
            if inside is None
            else refined_box_radius(
                margin, dual, at_boundary, rows_at_x, own, inside[0], inside[1], norm
            )
        )
    return out


def _assemble(
    parts: list[dict[str, Any]],
    norms: tuple[float, ...],
    refine: bool,
    route: str,
    eigenvector: bool,
    input_shape: tuple[int, ...],
    batch_size: int,
    competitors: int,
    refine_competitors: int,
    precision: str,
) -> FisherStatistics:
    """Concatenate the batches into a :class:`FisherStatistics` (``batch_size``: the largest)."""

    def cat(key: str) -> np.ndarray:
        return np.concatenate([np.asarray(part[key].cpu().numpy()) for part in parts])

    n = sum(len(part["labels"]) for part in parts)
    zeros, ones = np.zeros(n), np.ones(n, dtype=bool)
    classes = np.concatenate([np.full(len(part["labels"]), part["num_classes"]) for part in parts])

    def exact(values: np.ndarray, method: str = "exact", passes: int = 1) -> FisherEstimate:
        return FisherEstimate(
            values,
            zeros,
            passes * classes,
            ones,
            method,
            batch_size=batch_size,
            precision=precision,
        )

    def iterative(key: str, method: str) -> FisherEstimate:
        columns = zip(*(part[key] for part in parts))
        values, stderr, iterations, converged, dof = (np.concatenate(c) for c in columns)
        return FisherEstimate(values, stderr, iterations, converged, method,
                              dof=dof if method == "hutchinson" else None, batch_size=batch_size,
                              precision=precision)

    if route == "exact":
        spectral, trace = exact(cat("spectral_norm")), exact(cat("trace"))
        radius_method = "exact"
    else:
        spectral, trace = iterative("spectral_norm", route), iterative("trace", "hutchinson")
        radius_method = f"competitors={competitors}"
    radius = {norm_name(norm): exact(cat(norm_name(norm)), radius_method) for norm in norms}
    refined = (
        {
            norm_name(norm): exact(cat(f"{norm_name(norm)}_refined"), f"{radius_method}+refined", 2)
            for norm in norms
        }
        if refine
        else {}
    )
    vectors = (
        cat("eigenvector").reshape(n, *input_shape) if eigenvector and route == "exact" else None
    )
    return FisherStatistics(
        spectral_norm=spectral,
        trace=trace,
        radius=radius,
        refined_radius=refined,
        eigenvector=vectors,
        labels=cat("labels").astype(np.int64),
        predictions=cat("predictions").astype(np.int64),
        correct=cat("correct").astype(bool),
        competitors=competitors,
        refine_competitors=refine_competitors,
        precision=precision,
    )


def _blackbox_statistics(
    metric: FisherInformationMetric, x: np.ndarray, y: np.ndarray | None, norms: tuple[float, ...]
) -> FisherStatistics:
    """λ_max, trace and radii from one set of queries per input (``BlackBoxFisher``)."""
    fisher = blackbox_for(metric)
    quantities = ("spectral_norm", "trace", *(f"radius_{norm_name(norm)}" for norm in norms))
    estimates = fisher.estimate_many(x, quantities, y)
    outputs = fisher.outputs(x)
    predictions = outputs.argmax(1)
    labels = predictions if y is None else check_labels(y, len(predictions), outputs.shape[1])
    return FisherStatistics(
        spectral_norm=estimates["spectral_norm"],
        trace=estimates["trace"],
        radius={norm_name(norm): estimates[f"radius_{norm_name(norm)}"] for norm in norms},
        refined_radius={},
        eigenvector=None,
        labels=labels,
        predictions=predictions.astype(np.int64),
        correct=predictions == labels,
        competitors=outputs.shape[1] - 1,
        precision=metric.precision,
    )


def robust_radius(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    norm: Any = np.inf,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    refine: bool | None = None,
    **kwargs: Any,
) -> np.ndarray:
    r"""Compute the robust radius per input: the (refined) linearised distance to the boundary.

    The first-order radius is

    .. math::  r_q(x) = \min_{j ≠ y} \frac{z_y − z_j}{‖∇_x (z_y − z_j)‖_{q^*}}

    with ``q*`` the dual norm (``ℓ1`` for an ``ℓ∞`` threat, ``ℓ2`` for ``ℓ2``, ``ℓ∞`` for
    ``ℓ1``), and ``0`` where the prediction is wrong: exact for linear models without box
    constraints, invariant to rescaling the logits. By default it is refined: each margin is
    divided by the larger of its dual gradient norms at ``x`` and at the first-order boundary
    point (for the competitors that can set the minimum), never larger than ``r_q`` and
    equal for linear models; ``refine=False`` returns ``r_q`` itself (one Jacobian pass). It
    is an estimate, not a certificate: optimistic where the margins curve towards the
    boundary, and meaningless for gradient-masked models (see the module docstring).

    | Paper link: https://arxiv.org/abs/1705.08475 (the linearised margin bound)

    Args:
        classifier: As for :func:`~art_fim.fisher_spectral_norm`.
        x: Inputs ``[N, *input_shape]`` in the classifier's own scale.
        y: Labels, indices ``[N]`` or one-hot ``[N, nb_classes]``.
        norm: Threat norm: ``np.inf``, ``2`` or ``1``.
        method: ``"auto"``, ``"exact"``, ``"lanczos"`` (radii from the nearest competitors) or
            ``"blackbox"`` (``ℓ2`` from the query sketch; ``ℓ∞`` and ``ℓ1`` in coordinate mode
            only; first-order).
        batch_size: Inputs per batch.
        verbose: Show a progress bar.
        refine: Refine the radius (``None``: wherever the route can, i.e. white-box).
        kwargs: Further :func:`fisher_statistics` / :class:`~art_fim.FisherInformationMetric`
            parameters.

    Returns:
        Radius per input in the classifier's input scale, shape ``[N]``.
    """
    return _radius_estimate(
        classifier, x, y, norm, method, batch_size, verbose, refine, **kwargs
    ).values


def predicted_robust_accuracy(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps: float,
    norm: Any = np.inf,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    refine: bool | None = None,
    **kwargs: Any,
) -> float:
    """Estimate robust accuracy at ``eps`` without an attack: the fraction correct, radius ≥ eps.

    Uses the refined radius by default (within a point of AutoAttack on the project's zoo);
    see :func:`robust_radius` for the radius and its caveats (optimistic on curved or
    gradient-masked models). For the whole accuracy-vs-ε curve from one pass, use
    :meth:`~art_fim.FisherStatistics.accuracy_curves` on :func:`fisher_statistics`.

    Args:
        classifier: As for :func:`~art_fim.fisher_spectral_norm`.
        x: Inputs ``[N, *input_shape]`` in the classifier's own scale.
        y: Labels, indices ``[N]`` or one-hot ``[N, nb_classes]``.
        eps: Perturbation budget in the classifier's input scale (e.g. ``8/255``).
        norm: Threat norm: ``np.inf``, ``2`` or ``1``.
        method: ``"auto"``, ``"exact"``, ``"lanczos"`` or ``"blackbox"``.
        batch_size: Inputs per batch.
        verbose: Show a progress bar.
        refine: Use the refined radius (``None``: wherever the route can).
        kwargs: Further :func:`fisher_statistics` parameters.

    Returns:
        A fraction in ``[0, 1]``.
    """
    robust_fraction(np.zeros(1), eps)  # check eps before any work
    radius = robust_radius(classifier, x, y, norm, method, batch_size, verbose, refine, **kwargs)
    return robust_fraction(radius, eps)


def _radius_estimate(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    norm: Any,
    method: Method,
    batch_size: int,
    verbose: bool,
    refine: bool | None,
    **kwargs: Any,
) -> FisherEstimate:
    """The radius of one norm, refined where asked for and possible."""
    if y is None:
        raise ValueError("y is required: pass the labels (indices or one-hot) of x.")
    name = norm_name(norm)
    if method == "blackbox":
        if refine:
            raise ValueError(
                "refine=True needs input gradients at new points, which the query-only route "
                "lacks; pass refine=False."
            )
        # The query-only radius sees every competitor and is never refined.
        kwargs = {
            key: value
            for key, value in kwargs.items()
            if key not in ("competitors", "refine_competitors")
        }
        metric = FisherInformationMetric(
            classifier, method=method, batch_size=batch_size, verbose=verbose, **kwargs
        )
        return blackbox_for(metric).estimate(x, f"radius_{name}", y)
    stats = fisher_statistics(
        classifier, x, y, norms=(norm,), refine=refine is not False, method=method,
        batch_size=batch_size, verbose=verbose, **kwargs,
    )
    return (stats.refined_radius if refine is not False else stats.radius)[name]
