"""Which classes a radius looks at: the label's column and the nearest competitors.

The matrix-free route forms the Jacobian rows of the label and its nearest competitors by
logit margin only (:func:`nearest_competitors`), and the refinement re-measures the gradients
of the few competitors with the smallest first-order ratio (:func:`refinement_classes`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from art_fim.margins import margin_ratios, margins


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
    # The label first.
    ratio = margin_ratios(margin, norms, labels).scatter(1, labels[:, None], -math.inf)
    return ratio.topk(count + 1, dim=1, largest=False).indices.sort(dim=1).values

