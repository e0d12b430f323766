"""Peak memory of each white-box route, to choose batch sizes within a memory budget.

Per input, with ``K`` classes, ``d`` input features, ``s`` bytes per number of the model's
dtype and ``A`` the bytes its forward graph keeps for the backward pass (measured on one
input by :meth:`art_fim.adapters.ClassifierAdapter.activation_bytes`):

* exact, ``c`` classes per batched backward pass (``c = K``: all at once):
  ``A`` (the graph) ``+ K d s`` (the Jacobian rows) ``+ 2 c A`` (the gradient buffers of each
  cotangent in flight) ``+ c d s`` (a chunk's products before they are copied into the rows,
  ``c < K`` only) ``+ K d s / 4`` (the float64 block of :func:`art_fim.jacobian.gram_from_rows`,
  for ``s < 8``);
* Lanczos and power: ``(2 num_iter + 8) d · 8`` (the float64 Krylov basis, its stacked
  copy for re-orthogonalisation, and work vectors) ``+ 8 A`` (the graph, one forward-mode
  pass with its tangents, one backward pass);
* Hutchinson: ``4 d · 8 + 8 A + m K · 8`` (probes, one forward-mode pass, and the ``m``
  products ``J v`` kept for the variance).

The multiples of ``A`` are measured, not derived: a cotangent's backward pass holds the
gradients of the widest layers and a convolution's unfolded input columns, 0.7–1.4 ``A`` on
CPU convolutional networks, and a forward-mode pass 3–7 ``A``; the factors above leave
room above those. Everything scales with the batch: ``B`` inputs need ``B`` times as much.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Footprint:
    """Sizes that set a batch's memory, per input.

    Attributes:
        classes: ``K``.
        dim: ``d``.
        itemsize: bytes per number of the model's products.
        activations: bytes the forward graph of one input keeps (``A``).
    """

    classes: int
    dim: int
    itemsize: int
    activations: int

    def exact(self, class_chunk: int) -> int:
        """Peak bytes of the exact route for one input, ``class_chunk`` classes per backward."""
        rows = self.classes * self.dim * self.itemsize
        chunk_copy = class_chunk * self.dim * self.itemsize if class_chunk < self.classes else 0
        float64_block = rows // 4 if self.itemsize < 8 else 0
        gradients = 2 * class_chunk * self.activations
        return self.activations + rows + gradients + chunk_copy + float64_block

    def iterative(self, num_iter: int) -> int:
        """Peak bytes of Lanczos or power iteration for one input."""
        return (2 * num_iter + 8) * self.dim * 8 + 8 * self.activations

    def hutchinson(self, num_probes: int) -> int:
        """Peak bytes of Hutchinson's estimator for one input."""
        return 4 * self.dim * 8 + 8 * self.activations + num_probes * self.classes * 8


def plan_exact(footprint: Footprint, budget: int, batch_size: int) -> tuple[int, int] | None:
    """Return ``(batch, class_chunk)`` for the exact route within ``budget``, or ``None``.

    All classes in one backward pass while at least one input fits; otherwise one input at
    a time with as many classes per pass as fit (:meth:`Footprint.exact` is linear in the
    chunk below ``K``); ``None`` when even one class at a time does not fit.
    """
    whole = footprint.exact(footprint.classes)
    if whole <= budget:
        return max(1, min(batch_size, budget // whole)), footprint.classes
    if footprint.exact(1) > budget:
        return None
    per_class = 2 * footprint.activations + footprint.dim * footprint.itemsize
    chunk = min(footprint.classes - 1, 1 + (budget - footprint.exact(1)) // per_class)
    return 1, int(chunk)
