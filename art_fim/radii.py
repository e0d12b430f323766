"""The robust radii of one batch from its Jacobian rows: first-order, inside the box, refined.

:func:`first_order_radii` turns the rows and logits of the label and its competitors (all
``K`` classes on the exact route, the nearest few on the matrix-free one) into the first-order
radius per threat norm (:mod:`art_fim.margins`; inside the input box with
:mod:`art_fim.box_search`), and for the refinement the first-order boundary point of each input
(:class:`Boundary`). :func:`refined_radii` takes the Jacobian there and divides each margin by
the larger of its dual gradient norms at ``x`` and at the boundary point.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from art_fim.adapters import ClassifierAdapter
from art_fim.box_search import box_radius_from_margins, refined_box_radius
from art_fim.competitors import class_subset, refinement_classes
from art_fim.margins import (
    boundary_point,
    margin_dual_norms,
    margins,
    radius_from_margins,
    refined_radius,
)
from art_fim.norms import norm_name


class Boundary(NamedTuple):
    """What the refinement of one norm needs of a batch.

    Attributes:
        points: the first-order boundary points, shaped and typed like the batch's inputs.
        margin: ``[B, c]`` margins at ``x`` of the classes considered.
        dual: ``[B, c]`` their dual gradient norms at ``x``.
        own: ``[B]`` the label's column.
        columns: ``[B, c]`` the class of each column.
        inside: the flattened inputs and the box, when the radius is taken inside it.
    """

    points: np.ndarray
    margin: Tensor
    dual: Tensor
    own: Tensor
    columns: Tensor
    inside: tuple[Tensor, tuple[Tensor, Tensor]] | None


def first_order_radii(
    rows: Tensor,
    logits: Tensor,
    labels: Tensor,
    norms: tuple[float, ...],
    batch: np.ndarray,
    bounds: tuple[Tensor, Tensor] | None,
    refine: bool,
    classes: Tensor | None,
    box: bool,
) -> tuple[dict[str, Tensor], dict[float, Boundary]]:
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
        The radius per norm name, and per norm to refine its :class:`Boundary`.
    """
    own = labels if classes is None else class_subset(classes, labels)
    everything = torch.arange(rows.shape[1], device=rows.device).expand(len(labels), -1)
    columns = everything if classes is None else classes
    margin = margins(logits, own)
    radii: dict[str, Tensor] = {}
    boundaries: dict[float, Boundary] = {}
    flat = torch.from_numpy(np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)).to(
        rows.device
    )
    limits = None if bounds is None else (bounds[0].to(rows.device), bounds[1].to(rows.device))
    inside = (flat, limits) if box and limits is not None else None
    for norm in norms:
        dual = margin_dual_norms(rows, own, norm)
        radii[norm_name(norm)] = (
            radius_from_margins(margin, dual, own) if inside is None
            else box_radius_from_margins(margin, dual, rows, own, flat, limits, norm)
        )
        if refine:
            point = boundary_point(flat, rows, own, margin, dual, norm, limits)
            moved = point.cpu().numpy().reshape(batch.shape).astype(batch.dtype, copy=False)
            boundaries[norm] = Boundary(moved, margin, dual, own, columns, inside)
    return radii, boundaries


def refined_radii(
    adapter: ClassifierAdapter,
    boundaries: dict[float, Boundary],
    class_chunk: int | None,
    refine_competitors: int,
    rows_at_x: Tensor,
) -> dict[str, Tensor]:
    """The refined radius per norm name: the nearest competitors' gradients at the boundary.

    One forward pass at the boundary points and ``refine_competitors + 1`` VJPs per norm;
    the competitors not re-measured keep their norms at ``x``. Inside the box, the distances
    use the gradients at ``x`` (``rows_at_x``) with the margins scaled by the refinement.
    """
    out = {}
    for norm, (moved, margin, dual, own, columns, inside) in boundaries.items():
        chosen = refinement_classes(margin, dual, own, refine_competitors)  # columns of `margin`
        rows = adapter.jacobian(moved, class_chunk).class_rows(columns.gather(1, chosen))
        at_boundary = dual.scatter(
            1, chosen, margin_dual_norms(rows, class_subset(chosen, own), norm)
        )
        del rows
        out[norm_name(norm)] = (
            refined_radius(margin, dual, at_boundary, own)
            if inside is None
            else refined_box_radius(
                margin, dual, at_boundary, rows_at_x, own, inside[0], inside[1], norm
            )
        )
    return out
