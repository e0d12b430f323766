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
  products ``J v`` kept for the variance);
* the matrix-free route's radii from the rows of ``kept`` classes, proven with up to ``total``
  (:mod:`art_fim.subset_proof`): the larger of ``A + 2 c A + c d s + 2.25 total d s`` (the
  rows, their sorted copy and float64 differences) and ``A + kept d s + 24 kept d + 8 A +
  24 d`` (the proof's float64 basis and one probe), :func:`subset_bytes`.

The multiples of ``A`` are measured, not derived: a cotangent's backward pass holds the
gradients of the widest layers and a convolution's unfolded input columns, 0.7–1.4 ``A`` on
CPU convolutional networks, and a forward-mode pass 3–7 ``A``; the factors above leave
room above those. Everything scales with the batch: ``B`` inputs need ``B`` times as much.

The routes without Jacobian rows, per input:

* a gradient-free pass over noisy copies (Monte Carlo, noise KL): ``2 A + 3 d s`` per copy
  (a layer's input and output at once, and the noise, the noisy input and the clean one
  broadcast);
* MMSE, the Jacobian of ``N`` noisy copies: ``N (4 A + 8 K² + 16 d) + 8 K d`` (the graph and one
  backward pass at a time per copy, the float64 ``(K − 1) × K`` margin selector and two
  float64 input-sized rows per copy, and the ``K − 1`` averaged float64 rows);
* the query-only route: an eighth of the budget for the float64 query points held at once
  (the directions, their unit copies and the float32 queries come on top, about 3.5 times that
  in all) and a quarter for each ``predict`` call, ``4 (2 A + 16 d)`` per query.

This module is the one place these are computed: every estimator's plan (inputs per batch,
classes per backward pass, copies or queries per pass) comes from the functions below, given
the sizes :meth:`art_fim.engine.BatchEngine.footprint` measures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

#: Default peak bytes of one batch on the CPU (on a GPU: half the free memory).
CPU_MEMORY_BUDGET = 2 * 1024**3
#: Default bytes of float64 query points the query-only route holds at once without a budget.
QUERY_BYTES = 256 * 2**20
# Products per input of the matrix-free route, in units of one VJP, per Lanczos step (one JVP
# and one VJP; a forward-mode pass costs about as much as a backward one).
_PRODUCTS_PER_STEP = 2


def default_memory_budget(device: torch.device) -> int:
    """Bytes one batch may take at its peak: half the free GPU memory, or 2 GiB on CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free // 2)
    return CPU_MEMORY_BUDGET


def fit(requested: int, bytes_per_input: int, budget: int) -> int:
    """The largest batch (at least 1, at most ``requested``) whose ``bytes_per_input`` fit."""
    return max(1, min(int(requested), budget // max(1, int(bytes_per_input))))


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


def exact_plan(footprint: Footprint, budget: int, requested: int) -> tuple[int, int]:
    """:func:`plan_exact`, or an error that says how much one input needs.

    Raises:
        ValueError: one input does not fit the budget even one class at a time.
    """
    plan = plan_exact(footprint, budget, int(requested))
    if plan is None:
        raise ValueError(
            f"One input's Jacobian needs about {footprint.exact(1) / 2**30:.3g} GiB (K = "
            f"{footprint.classes}, d = {footprint.dim}), more than memory_budget = "
            f"{budget / 2**30:.3g} GiB; raise memory_budget."
        )
    return plan


def prefers_matrix_free(num_classes: int, num_iter: int) -> bool:
    """Whether ``"auto"`` takes Lanczos over the exact route by cost, before memory.

    The exact route costs ``K`` VJPs per input (one batched backward pass per class); Lanczos
    at most ``num_iter`` steps of one JVP and one VJP. Lanczos is taken when even its
    worst case is cheaper: ``K > 2 · num_iter`` (``K > 100`` at the default 50 steps, so
    CIFAR-10 and CIFAR-100 stay exact and ImageNet's ``K = 1000`` goes matrix-free; it
    usually converges in far fewer steps).
    """
    return num_classes > _PRODUCTS_PER_STEP * num_iter


@dataclass(frozen=True)
class FisherPlan:
    """How the white-box Fisher routes compute a set of inputs (:func:`plan_fisher`).

    Attributes:
        method: the resolved method (``"exact"``, ``"lanczos"``, ``"power"``, ``"hutchinson"``).
        batch_size: inputs per batch within the memory budget.
        class_chunk: classes per batched backward pass on the exact route (``None``: all).
        footprint: the per-input sizes the plan was made from.
        budget: the memory budget in bytes.
    """

    method: str
    batch_size: int
    class_chunk: int | None
    footprint: Footprint
    budget: int

    @property
    def label(self) -> str:
        """The route, for the progress bar."""
        return self.method


def plan_fisher(
    footprint: Footprint,
    budget: int,
    requested: int,
    method: str,
    spectral: bool,
    num_iter: int,
    num_probes: int,
    matrix_free: bool,
) -> FisherPlan:
    """Resolve ``"auto"``, the batch size and the exact route's classes per backward pass.

    ``"auto"`` takes the matrix-free route (Lanczos for ``λ_max``, Hutchinson for the trace)
    when it is cheaper (:func:`prefers_matrix_free`) or when the exact one does not fit; only
    autograd Jacobians (``matrix_free``) have that route, dense ones are exact anyway.

    Args:
        footprint: the per-input sizes.
        budget: peak bytes of one batch.
        requested: the batch size asked for.
        method: ``"auto"``, ``"exact"``, ``"lanczos"``, ``"power"`` or ``"hutchinson"``.
        spectral: the quantity is ``λ_max`` (else the trace), for ``"auto"``'s fallback.
        num_iter: Lanczos / power iterations.
        num_probes: Hutchinson probes.
        matrix_free: the Jacobians are autograd ones.

    Raises:
        ValueError: the exact route was asked for and one input does not fit.
    """
    exact = plan_exact(footprint, budget, requested)
    if method == "auto":
        fallback = "lanczos" if spectral else "hutchinson"
        cheaper = prefers_matrix_free(footprint.classes, num_iter)
        method = fallback if matrix_free and (exact is None or cheaper) else "exact"
    if method == "exact":
        if exact is None and matrix_free:
            raise ValueError(
                f"The exact route needs about {footprint.exact(1) / 2**30:.3g} GiB for one "
                f"input (K = {footprint.classes}, d = {footprint.dim}), more than "
                f"memory_budget = {budget / 2**30:.3g} GiB. Use method='lanczos' (or "
                "'hutchinson' for the trace), or raise memory_budget."
            )
        batch_size, class_chunk = exact or (1, None)
    else:
        per_input = (
            footprint.iterative(num_iter)
            if method in ("lanczos", "power")
            else footprint.hutchinson(num_probes)
        )
        batch_size, class_chunk = fit(requested, per_input, budget), None
    if batch_size < requested:
        logger.info("batch size reduced to %d to fit the memory budget", batch_size)
    if class_chunk is not None and class_chunk < footprint.classes:
        logger.info("exact route: %d classes per backward pass to fit the budget", class_chunk)
    return FisherPlan(method, batch_size, class_chunk, footprint, budget)


@dataclass(frozen=True)
class SubsetPlan:
    """How the matrix-free route computes its radii and their proof (:func:`plan_subset`).

    Attributes:
        batch_size: inputs per batch.
        class_chunk: classes per batched backward pass of the rows (``None``: all at once).
        proof: whether the subset proof fits the budget (else every subset radius is unproven).
        added: the most classes the proof may add per input.
        probe_chunk: probes per vectorised JVP of the proof.
    """

    batch_size: int
    class_chunk: int | None
    proof: bool
    added: int
    probe_chunk: int


def probe_bytes(footprint: Footprint) -> int:
    """Peak bytes of one probe of the subset proof, per input: ``8 A + 24 d``.

    A forward-mode pass (up to ``8 A``, as Lanczos's) and the float64 probe, its projection
    and its copy in the model's dtype.
    """
    return 8 * footprint.activations + 24 * footprint.dim


def subset_bytes(
    footprint: Footprint, kept: int, total: int, class_chunk: int, proof: bool = True
) -> int:
    """Peak bytes per input of the radii from ``kept`` classes' rows, proven with up to ``total``.

    The larger of two phases (``R = d s``, one row's bytes; ``c`` classes per backward pass):

    * the rows: ``A + 2 c A + c R`` (a batched backward pass, as on the exact route)
      ``+ 2 total R`` (the rows and their sorted copy when classes are added) ``+ total R / 4``
      (the float64 margin-gradient differences of :func:`art_fim.margins.margin_dual_norms`);
    * with ``proof``, its bounds (:mod:`art_fim.margin_norm_bound`): ``A + kept R`` (the graph
      and the rows) ``+ 24 kept d`` (the float64 copy of the rows, its QR factorisation and
      the orthonormal basis; then the basis, its projections and their absolute values) and
      one probe (:func:`probe_bytes`).
    """
    row = footprint.dim * footprint.itemsize
    graph = footprint.activations
    chunk = min(class_chunk, total)
    rows = graph + 2 * chunk * graph + chunk * row + 2 * total * row + total * row // 4
    if not proof:
        return rows
    bounds = graph + kept * row + 24 * kept * footprint.dim + probe_bytes(footprint)
    return max(bounds, rows)


def plan_subset(plan: FisherPlan, competitors: int, extra: int) -> SubsetPlan | None:
    """Batch, classes per backward pass, the proof's added classes and probes within the budget.

    The proof may add up to ``extra`` classes per input to the label and its ``competitors``
    (:mod:`art_fim.subset_proof`). Where they do not all fit, fewer are allowed; where the
    proof's bounds do not fit for one input even so, the radii are planned without it (both
    leave the radii they would have proven unproven, counted as not robust). ``None`` when the
    rows of one input's label and competitors alone do not fit, one class per backward pass.
    The batch is at most the Krylov route's (``plan``).

    Args:
        plan: the matrix-free route's plan.
        competitors: ``m``, competitors per input.
        extra: the most classes the proof may add per input.
    """
    footprint, budget = plan.footprint, plan.budget
    kept = min(competitors + 1, footprint.classes)
    total = min(kept + extra, footprint.classes)
    while total > kept and subset_bytes(footprint, kept, total, 1) > budget:
        total -= 1  # fewer added classes until one input fits, one class per backward pass
    # No proof where every class is kept, or where its bounds do not fit.
    proof = kept < footprint.classes and subset_bytes(footprint, kept, total, 1) <= budget
    if not proof:
        total = kept
        if subset_bytes(footprint, kept, kept, 1, proof=False) > budget:
            return None

    def peak(class_chunk: int) -> int:
        return subset_bytes(footprint, kept, total, class_chunk, proof)

    batch = min(plan.batch_size, budget // peak(kept))
    class_chunk: int | None = None
    if batch < 1:  # one input, as many classes per backward pass as fit
        batch = 1
        class_chunk = max(c for c in range(1, kept + 1) if peak(c) <= budget)
    # Beside the probes: the graph, the rows, their float64 basis and its products with J.
    held = footprint.activations + kept * footprint.dim * (footprint.itemsize + 8)
    held += 16 * kept * footprint.classes
    probes = max(1, (budget // batch - held) // probe_bytes(footprint))
    return SubsetPlan(batch, class_chunk, proof, total - kept, int(probes))


def noisy_copy_bytes(activations: int, input_bytes: int) -> int:
    """Peak bytes of one noisy copy in a gradient-free forward pass (module docstring)."""
    return 2 * activations + 3 * input_bytes


def mmse_bytes(footprint: Footprint, copies: int) -> int:
    """Peak bytes per input of the MMSE route's Jacobian of ``copies`` noisy copies."""
    copy = 4 * footprint.activations + 8 * footprint.classes**2 + 16 * footprint.dim
    return copies * copy + footprint.classes * footprint.dim * 8


@dataclass(frozen=True)
class QueryPlan:
    """How the query-only route cuts its work (:func:`plan_queries`).

    Attributes:
        query_bytes: bytes of float64 query points held at once.
        group: inputs whose directions are queried together (one batch of the run).
        per_call: queries per ``predict`` call.
    """

    query_bytes: int
    group: int
    per_call: int


def plan_queries(
    budget: int | None, inputs: int, dim: int, directions: int, activations: int, requested: int
) -> QueryPlan:
    """Query points held at once, inputs per group and queries per ``predict`` call.

    Args:
        budget: the memory budget, or ``None``: :data:`QUERY_BYTES` of query points and
            ``requested`` queries per call.
        inputs: inputs of the run.
        dim: input dimension ``d``.
        directions: directions per input ``m``.
        activations: bytes of one input's forward graph (``A``).
        requested: queries per ``predict`` call asked for.
    """
    query_bytes = QUERY_BYTES if budget is None else max(1, budget // 8)
    group = max(1, min(inputs, max(1, query_bytes // (8 * dim)) // directions))
    per_call = requested
    if budget is not None:  # queries per predict call within a quarter of it
        per_call = fit(requested, 4 * (2 * activations + 16 * dim), budget)
    return QueryPlan(query_bytes, group, per_call)
