r"""First-order robust radius: the linearised distance to the decision boundary, from ``J``.

For an input ``x`` with label ``y``, logits ``z`` and margins ``g_j = z_y − z_j`` (``j ≠ y``),
linearising each margin around ``x`` gives the distance to the boundary in the threat norm
``‖·‖_q`` (the classic bound of, e.g., Hein & Andriushchenko, https://arxiv.org/abs/1705.08475):

.. math::  r_q(x) = \min_{j ≠ y} \frac{z_y − z_j}{‖∇_x (z_y − z_j)‖_{q^*}},

with ``q*`` the dual norm (``ℓ1`` for an ``ℓ∞`` threat, ``ℓ2`` for ``ℓ2``, ``ℓ∞`` for ``ℓ1``),
and ``r = 0`` where the prediction is wrong (some ``g_j ≤ 0``). The fraction of inputs with
``r_q(x) ≥ ε`` estimates robust accuracy at ``ε`` without an attack. Properties:

* exact for a linear (multinomial) model without box constraints: the margins are linear, so
  the nearest competitor's hyperplane is the boundary of the decision region where the
  distance is attained;
* invariant to rescaling the logits (``z → c z`` scales margins and gradients alike), which
  ``λ_max`` of the input Fisher is not: a temperature leaves every attack's accuracy unchanged;
* optimistic where the margin's gradient grows on the way to the boundary (curved models) and
  meaningless where gradients are masked (they vanish at ``x`` but not nearby).

The refinement (:func:`boundary_point`, :func:`refined_radius`) takes one more Jacobian at
the first-order boundary point ``x' = x + r u`` (``u`` the steepest descent direction of the
nearest competitor's margin in the threat norm, clipped to the input box) and divides each
margin at ``x`` by the larger of its dual gradient norms at ``x`` and ``x'``: a local
Lipschitz bound of the margin on that segment. It is never larger than ``r``, still invariant
to the logits' scale, and equal to ``r`` for linear models.

All functions work on flattened inputs: ``rows`` is the logit Jacobian ``[B, K, d]``
(:meth:`art_fim.jacobian.InputJacobian.rows`) and results are float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

# Elements of the float64 gradient differences formed at once (128 MiB).
_CHUNK_ELEMENTS = 2**24

_NAMES = {math.inf: "linf", 2.0: "l2", 1.0: "l1"}
_ALIASES = {
    "inf": math.inf, "linf": math.inf, "l_inf": math.inf, "2": 2.0, "l2": 2.0, "1": 1.0, "l1": 1.0,
}


def parse_norm(norm: Any) -> float:
    """Return the threat norm as ``math.inf``, ``2.0`` or ``1.0``.

    Args:
        norm: ``np.inf`` (or ``"inf"``, ``"Linf"``), ``2`` (``"2"``, ``"L2"``) or ``1``
            (``"1"``, ``"L1"``), as ART's attacks take ``norm``.

    Raises:
        ValueError: any other norm.
    """
    if isinstance(norm, str):
        value = _ALIASES.get(norm.strip().lower())
    else:
        try:
            value = float(norm)
        except (TypeError, ValueError):
            value = None
    if value not in _NAMES:
        raise ValueError(f"norm must be np.inf, 2 or 1 (or 'inf', 'L2', 'L1'), got {norm!r}")
    return value


def norm_name(norm: Any) -> str:
    """Return ``"linf"``, ``"l2"`` or ``"l1"`` for a threat norm (see :func:`parse_norm`)."""
    return _NAMES[parse_norm(norm)]


def check_labels(y: Any, num_inputs: int, num_classes: int | None = None) -> np.ndarray:
    """Return labels as class indices ``[N]`` int64, from indices or one-hot rows.

    Both forms are accepted, as ART takes them.

    Args:
        y: ``[N]`` class indices, ``[N, 1]``, or ``[N, nb_classes]`` one-hot labels.
        num_inputs: ``N``, the number of inputs.
        num_classes: ``K`` when known, to check the range.

    Raises:
        ValueError: wrong length, not integers, soft labels, or classes out of range.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:
        if not (np.isin(y, (0, 1)).all() and np.all(y.sum(axis=1) == 1)):
            raise ValueError(
                "y is two-dimensional but its rows are not one-hot; pass class indices [N] or "
                "one-hot labels [N, nb_classes]."
            )
        if num_classes is not None and y.shape[1] != num_classes:
            raise ValueError(
                f"y has {y.shape[1]} one-hot columns but the classifier has {num_classes} classes."
            )
        y = y.argmax(axis=1)
    if y.ndim != 1 or len(y) != num_inputs:
        raise ValueError(
            f"y has shape {y.shape} for {num_inputs} inputs; pass one label per input, as class "
            "indices [N] or one-hot labels [N, nb_classes]."
        )
    if y.dtype.kind not in "iub":
        if y.dtype.kind != "f" or not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(
                f"y must hold integer class indices, got dtype {y.dtype} with non-integer values."
            )
    labels = y.astype(np.int64)
    if labels.size and (
        labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes)
    ):
        bound = (
            "" if num_classes is None else f" and < {num_classes} (the model's number of classes)"
        )
        raise ValueError(
            f"y has class indices in [{labels.min()}, {labels.max()}]; they must be ≥ 0{bound}."
        )
    return labels


def dual_norm(v: Tensor, norm: float) -> Tensor:
    """Return ``‖v‖_{q*}`` over the last axis, ``q*`` the dual of the threat norm ``q``."""
    if norm == math.inf:
        return v.abs().sum(-1)
    if norm == 2.0:
        return torch.linalg.vector_norm(v, dim=-1)
    return v.abs().amax(-1)


def margins(logits: Tensor, labels: Tensor) -> Tensor:
    """Return ``z_y − z_k`` for every class ``k``, float64 ``[B, K]`` (zero at ``k = y``)."""
    z = logits.double()
    return z.gather(1, labels[:, None]) - z


def margin_dual_norms(rows: Tensor, labels: Tensor, norm: float) -> Tensor:
    """Return ``‖∇z_y − ∇z_k‖_{q*}`` for every class ``k``, float64 ``[B, K]`` (zero at ``k = y``).

    The differences are formed in float64 (exact for float32 rows), a few classes at a time so
    that they never take more than :data:`_CHUNK_ELEMENTS` numbers.

    Args:
        rows: the logit Jacobian ``[B, K, d]``.
        labels: ``[B]`` class indices.
        norm: the threat norm (``math.inf``, ``2.0`` or ``1.0``).
    """
    batch, classes, dim = rows.shape
    own = rows[torch.arange(batch, device=rows.device), labels].double()[:, None, :]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, batch * dim))
    parts = [
        dual_norm(own - rows[:, start : start + chunk].double(), norm)
        for start in range(0, classes, chunk)
    ]
    return torch.cat(parts, dim=1)


def gram_dual_norms(gram: Tensor, labels: Tensor) -> Tensor:
    """Return ``‖∇z_y − ∇z_k‖₂ = √(G_yy + G_kk − 2 G_yk)`` from ``G = J Jᵀ``, float64 ``[B, K]``.

    The ``ℓ2`` threat's dual norms need only the Gram matrix, so a sketch ``Ĝ`` of it (the
    query-only route) gives them too; rounding below zero is clamped.
    """
    g = gram.double()
    index = labels[:, None]
    own = g.gather(1, index[:, :, None].expand(-1, 1, g.shape[2]))[:, 0]  # G_y·
    diagonal = torch.diagonal(g, dim1=1, dim2=2)
    squared = own.gather(1, index) + diagonal - 2.0 * own
    return squared.clamp_min(0.0).sqrt()


def _ratios(margin: Tensor, norms: Tensor, labels: Tensor) -> Tensor:
    """``g_j / ‖∇g_j‖`` with the own class excluded (``+inf``) and ``g_j / 0 = +inf``."""
    ratio = margin / norms  # a positive margin over a zero norm is +inf, as intended
    ratio = torch.where(norms > 0, ratio, torch.full_like(ratio, math.inf))
    return ratio.scatter(1, labels[:, None], math.inf)


def radius_from_margins(margin: Tensor, norms: Tensor, labels: Tensor) -> Tensor:
    """Return ``min_{j≠y} g_j / n_j``, and ``0`` where some ``g_j ≤ 0`` (wrong or tied prediction).

    Args:
        margin: ``[B, K]`` margins ``g = z_y − z`` (:func:`margins`).
        norms: ``[B, K]`` dual norms of their gradients (or an upper bound on them).
        labels: ``[B]`` class indices.

    Returns:
        ``[B]`` float64 radii; ``+inf`` where every competitor's margin has a zero gradient.
    """
    others = margin.scatter(1, labels[:, None], math.inf)
    radius = _ratios(margin, norms, labels).amin(1)
    return torch.where(others.amin(1) > 0, radius, torch.zeros_like(radius))


def first_order_radius(rows: Tensor, logits: Tensor, labels: Tensor, norm: float) -> Tensor:
    """Return ``r_q(x) = min_{j≠y} (z_y − z_j) / ‖∇(z_y − z_j)‖_{q*}`` per sample, float64 ``[B]``.

    Args:
        rows: the logit Jacobian ``[B, K, d]``.
        logits: ``[B, K]`` logits (or log-probabilities: their differences are the same).
        labels: ``[B]`` class indices.
        norm: the threat norm (:func:`parse_norm`).
    """
    return radius_from_margins(
        margins(logits, labels), margin_dual_norms(rows, labels, norm), labels
    )


def robust_fraction(radius: np.ndarray, eps: float) -> float:
    """Return the fraction of inputs predicted robust at ``eps``.

    An input is predicted robust when it is correct (``r > 0``) with ``r ≥ eps``.

    Raises:
        ValueError: a negative or non-finite ``eps``.
    """
    if not (
        isinstance(eps, (int, float, np.floating, np.integer)) and math.isfinite(eps) and eps >= 0
    ):
        raise ValueError(f"eps must be a finite number ≥ 0, got {eps!r}")
    radius = np.asarray(radius)
    return float(((radius > 0) & (radius >= eps)).mean())


def steepest_descent(gradient: Tensor, norm: float) -> Tensor:
    """Return the unit-``‖·‖_q`` direction ``u`` minimising ``⟨gradient, u⟩``: ``[B, d] -> [B, d]``.

    ``ℓ∞``: ``−sign(g)``; ``ℓ2``: ``−g/‖g‖₂``; ``ℓ1``: ``−sign(g_i) e_i`` at ``i = argmax |g_i|``.
    In each case ``⟨g, u⟩ = −‖g‖_{q*}``; a zero gradient gives a zero direction.
    """
    if norm == math.inf:
        return -gradient.sign()
    if norm == 2.0:
        length = torch.linalg.vector_norm(gradient, dim=-1, keepdim=True)
        return -gradient / torch.where(length > 0, length, torch.ones_like(length))
    index = gradient.abs().argmax(-1, keepdim=True)
    return torch.zeros_like(gradient).scatter(-1, index, -gradient.gather(-1, index).sign())


def boundary_point(
    x: Tensor,
    rows: Tensor,
    labels: Tensor,
    margin: Tensor,
    norms: Tensor,
    norm: float,
    bounds: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Return the first-order boundary point ``x' = clip(x + r u)`` per sample, float64 ``[B, d]``.

    ``r`` is the first-order radius and ``u`` the steepest descent direction (in the threat
    norm) of the nearest competitor's margin; where ``r`` is zero (wrong prediction) or
    infinite (no gradient), ``x' = x``.

    Args:
        x: ``[B, d]`` flattened inputs.
        rows: the logit Jacobian at ``x``, ``[B, K, d]``.
        labels: ``[B]`` class indices.
        margin: ``[B, K]`` margins at ``x`` (:func:`margins`).
        norms: ``[B, K]`` their dual gradient norms at ``x`` (:func:`margin_dual_norms`).
        norm: the threat norm.
        bounds: flattened ``(low, high)`` of the input box, ``[d]`` each, or ``None``.
    """
    nearest = _ratios(margin, norms, labels).argmin(1)
    radius = radius_from_margins(margin, norms, labels)
    step = torch.where(torch.isfinite(radius), radius, torch.zeros_like(radius))
    index = torch.arange(len(labels), device=rows.device)
    gradient = rows[index, labels].double() - rows[index, nearest].double()
    point = x.double() + step[:, None] * steepest_descent(gradient, norm)
    if bounds is not None:
        point = torch.minimum(torch.maximum(point, bounds[0].double()), bounds[1].double())
    return point


def refined_radius(
    margin: Tensor, norms_at_x: Tensor, norms_at_boundary: Tensor, labels: Tensor
) -> Tensor:
    """Return ``min_{j≠y} g_j(x) / max(‖∇g_j(x)‖_{q*}, ‖∇g_j(x')‖_{q*})``, float64 ``[B]``.

    Args:
        margin: ``[B, K]`` margins at ``x``.
        norms_at_x: ``[B, K]`` dual gradient norms of the margins at ``x``.
        norms_at_boundary: the same at the boundary point ``x'`` (:func:`boundary_point`).
        labels: ``[B]`` class indices.
    """
    return radius_from_margins(margin, torch.maximum(norms_at_x, norms_at_boundary), labels)


def class_subset(classes: Tensor, labels: Tensor) -> Tensor:
    """Return each label's position in its row of ``classes`` (``[B, m]`` indices), ``[B]``."""
    return (classes == labels[:, None]).to(torch.int64).argmax(1)


def nearest_competitors(logits: Tensor, labels: Tensor, count: int) -> Tensor:
    """Return the label and its ``count`` nearest competitors by logit margin, ``[B, count + 1]``.

    The competitors with the smallest margins ``z_y − z_j`` are those a targeted attack tries
    first; the classes of each row are sorted in increasing order, so that with every class
    kept (``count ≥ K − 1``) the result is ``0 … K−1`` and the radius is the exact one, bit for
    bit.

    Args:
        logits: ``[B, K]`` logits.
        labels: ``[B]`` class indices.
        count: competitors to keep per input.
    """
    batch, classes = logits.shape
    if count >= classes - 1:
        return torch.arange(classes, device=logits.device).expand(batch, classes)
    margin = margins(logits, labels).scatter(1, labels[:, None], -math.inf)  # the label first
    return margin.topk(count + 1, dim=1, largest=False).indices.sort(dim=1).values


def refinement_classes(margin: Tensor, norms: Tensor, labels: Tensor, count: int) -> Tensor:
    """Return the label and the ``count`` competitors with the smallest first-order ratio.

    The result is ``[B, ≤ count+1]``.

    The refinement re-measures the dual gradient norms of these competitors' margins at the
    boundary point; the others keep their norms at ``x`` (their ratio stays the first-order
    one, an upper bound of their refined ratio). A competitor whose first-order ratio is far
    above the minimum sets the refined radius only if its gradient grows by that factor on
    the way, which the measurements on the zoo did not show (see :func:`refined_radius`).
    Columns are indices into ``margin``'s columns, sorted.
    """
    columns = margin.shape[1]
    if count >= columns - 1:
        return torch.arange(columns, device=margin.device).expand(margin.shape[0], columns)
    ratio = _ratios(margin, norms, labels).scatter(1, labels[:, None], -math.inf)  # the label first
    return ratio.topk(count + 1, dim=1, largest=False).indices.sort(dim=1).values


def box_radius_from_margins(
    margin: Tensor,
    norms: Tensor,
    rows: Tensor,
    labels: Tensor,
    x: Tensor,
    bounds: tuple[Tensor, Tensor],
    norm: float,
) -> Tensor:
    """Return ``min_{j≠y} D_q(g_j, ∇g_j)``, the radius inside the box.

    Each margin's linear distance is taken inside the box.

    ``D_q`` is the exact distance to the zero set of the linearised margin within
    ``[low, high]`` (:func:`art_fim.box_distance.box_margin_distance`); it is never below the
    unconstrained ``g_j / ‖∇g_j‖_{q*}``, so competitors are visited in increasing order of
    that ratio and the search stops once the next ratio reaches the best box distance found:
    usually after one or two competitors, not ``K − 1``. ``0`` where the prediction is wrong.

    Args:
        margin: ``[B, C]`` margins (an effective margin for the refined radius, see
            :func:`refined_box_radius`).
        norms: ``[B, C]`` the dual norms the ratios ``margin / norms`` are formed with.
        rows: ``[B, C, d]`` the rows of the same ``C`` classes.
        labels: ``[B]`` each label's column.
        x: ``[B, d]`` flattened inputs.
        bounds: flattened ``(low, high)`` of the box, ``[d]`` each.
        norm: the threat norm.
    """
    from art_fim.box_distance import box_margin_distance

    ratio = _ratios(margin, norms, labels)
    order = ratio.argsort(1)
    best = torch.full((len(labels),), math.inf, dtype=torch.float64, device=margin.device)
    index = torch.arange(len(labels), device=margin.device)
    own = rows[index, labels]
    for k in range(margin.shape[1] - 1):  # the label's own column sorts last (+inf)
        column = order[:, k]
        active = (ratio[index, column] < best).nonzero().squeeze(1)
        if len(active) == 0:
            break
        j = column[active]
        gradient = (own[active].double() - rows[active, j].double())[:, None, :]
        distance = box_margin_distance(
            margin[active, j][:, None], gradient, x[active], bounds[0], bounds[1], norm
        )[:, 0]
        best[active] = torch.minimum(best[active], distance)
    others = margin.scatter(1, labels[:, None], math.inf)
    return torch.where(others.amin(1) > 0, best, torch.zeros_like(best))


def refined_box_radius(
    margin: Tensor,
    norms_at_x: Tensor,
    norms_at_boundary: Tensor,
    rows: Tensor,
    labels: Tensor,
    x: Tensor,
    bounds: tuple[Tensor, Tensor],
    norm: float,
) -> Tensor:
    """The refined radius inside the box.

    Each margin is shrunk by ``‖∇g_j(x)‖ / max(‖∇g_j(x)‖, ‖∇g_j(x')‖)``.

    Dividing the margin by the larger dual norm (:func:`refined_radius`) is the same as
    keeping the gradient at ``x`` and scaling the margin by that factor; the box distance of
    the scaled margin is then the refined radius inside the box, equal to
    :func:`refined_radius` without a box and never above :func:`box_radius_from_margins`.
    """
    larger = torch.maximum(norms_at_x, norms_at_boundary)
    scale = torch.where(larger > 0, norms_at_x / larger, torch.ones_like(larger))
    return box_radius_from_margins(margin * scale, norms_at_x, rows, labels, x, bounds, norm)
