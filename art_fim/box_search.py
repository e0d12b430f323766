"""The radius inside the input box: the nearest competitor's box distance, found without all ``K``.

Each linearised margin's exact distance inside ``[low, high]`` comes from
:func:`art_fim.box_distance.box_margin_distance`; this module searches the competitors for the
smallest, in increasing order of the unconstrained ratio ``g_j / ‖∇g_j‖_{q*}`` (a lower bound
of the box distance), and stops once that bound passes the best distance found.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from art_fim.box_distance import box_margin_distance
from art_fim.margins import margin_ratios


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
    ratio = margin_ratios(margin, norms, labels)
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

