r"""ART-facing API: ``fisher_spectral_norm``, ``fisher_trace`` and ``FisherInformationMetric``.

The metric is the largest eigenvalue of the input Fisher information matrix

.. math::

   F(x) = \mathbb{E}_{y∼p(·|x)}[∇_x \log p_y ∇_x \log p_yᵀ]
        = Jᵀ (\mathrm{diag}(p) − p pᵀ) J,

the worst-case rate at which the model's output distribution moves under a small input
perturbation: ``KL(p(x) ‖ p(x + δ)) ≈ ½ δᵀ F(x) δ ≤ ½ ‖δ‖² λ_max(F(x))``.

| Paper link: https://arxiv.org/abs/2606.04767
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from art_fim.blackbox import BlackBoxFisher, QueryOptions
from art_fim.checks import OutputType, check_positive_int
from art_fim.engine import Batch, BatchEngine
from art_fim.exact import exact_spectral_norm, exact_trace
from art_fim.hutchinson import MIN_PROBES, hutchinson_trace
from art_fim.iterative import lanczos, power_iteration
from art_fim.jacobian import InputJacobian
from art_fim.memory import FisherPlan, plan_fisher
from art_fim.options import Options
from art_fim.params import Configurable
from art_fim.precision import Precision
from art_fim.results import FisherEstimate

logger = logging.getLogger(__name__)

Method = Literal["auto", "exact", "lanczos", "power", "hutchinson", "blackbox"]
Quantity = Literal["spectral_norm", "trace"]

_METHODS: dict[str, tuple[str, ...]] = {
    "spectral_norm": ("auto", "exact", "lanczos", "power", "blackbox"),
    "trace": ("auto", "exact", "hutchinson", "blackbox"),
}


@dataclass(frozen=True)
class SolverOptions:
    """Settings of the matrix-free routes, validated once.

    Attributes:
        num_iter: maximum Lanczos / power iterations.
        tol: relative tolerance of the iterative methods, in ``(0, 1)``.
        num_probes: Hutchinson probes per input (at least :data:`~art_fim.hutchinson.MIN_PROBES`).
    """

    num_iter: int = 50
    tol: float = 1e-6
    num_probes: int = 100

    def __post_init__(self) -> None:
        """Validate every setting."""
        check_positive_int("num_iter", self.num_iter)
        check_positive_int("num_probes", self.num_probes, MIN_PROBES)
        if not (_is_real(self.tol) and 0 < self.tol < 1):
            raise ValueError(f"tol must be a number in (0, 1), e.g. 1e-6; got {self.tol!r}")


class BatchEstimate(NamedTuple):
    """One batch's estimate of a Fisher quantity, per input (tensors or arrays, ``[B]``)."""

    values: Any
    stderr: Any
    iterations: Any
    converged: Any
    dof: Any


def estimate_batch(
    jac: InputJacobian,
    method: str,
    quantity: Quantity,
    solver: SolverOptions,
    generators: list[torch.Generator],
) -> BatchEstimate:
    """One batch's Fisher quantity by a resolved method (not ``"auto"``).

    Args:
        jac: the batch's input Jacobian.
        method: ``"exact"``, ``"lanczos"``, ``"power"`` or ``"hutchinson"``.
        quantity: ``"spectral_norm"`` or ``"trace"``.
        solver: the matrix-free routes' settings.
        generators: one per input (start vectors, probes).
    """
    b = jac.batch_size
    ones = np.ones(b, dtype=bool)
    no_dof = np.full(b, np.inf)
    if method == "exact":
        values = exact_spectral_norm(jac) if quantity == "spectral_norm" else exact_trace(jac)
        return BatchEstimate(values, np.zeros(b), np.full(b, jac.num_classes), ones, no_dof)
    if method == "hutchinson":
        mean, se, dof = hutchinson_trace(jac, solver.num_probes, generator=generators)
        return BatchEstimate(mean, se, np.full(b, solver.num_probes), ones, dof)
    solver_fn = lanczos if method == "lanczos" else power_iteration
    result = solver_fn(
        jac.fisher_matvec, b, jac.input_dim,
        num_iter=solver.num_iter, tol=solver.tol, generator=generators, device=jac.device,
    )
    return BatchEstimate(result.values, np.zeros(b), result.iterations, result.converged, no_dof)


def fisher_estimate(
    columns: BatchEstimate, method: str, batch_size: int, precision: str, solver: SolverOptions
) -> FisherEstimate:
    """The :class:`~art_fim.results.FisherEstimate` of concatenated batches.

    Warns where an iterative method did not converge.
    """
    converged = columns.converged
    if not converged.all():
        logger.warning(
            "%s did not reach tol=%g within %d iterations for %d of %d inputs",
            method, solver.tol, solver.num_iter, int((~converged).sum()), len(converged),
        )
    return FisherEstimate(
        columns.values,
        columns.stderr,
        columns.iterations,
        converged,
        method,
        dof=columns.dof if method == "hutchinson" else None,
        batch_size=batch_size,
        precision=precision,
    )


class FisherEstimator:
    """The white-box per-batch estimator of ``λ_max`` or ``tr F`` (run by the batch engine)."""

    access = "gradients"

    def __init__(
        self, method: str, quantity: Quantity, solver: SolverOptions, requested: int
    ) -> None:
        self.method = method
        self.quantity = quantity
        self.solver = solver
        self.requested = requested
        self.description = f"Fisher {quantity}"

    def plan(self, engine: BatchEngine, x: np.ndarray) -> FisherPlan:
        """Resolve the route and the batch within the budget (:func:`art_fim.memory.plan_fisher`).

        The output type is decided on the first batch; one input's Jacobian and forward graph
        give the sizes of :class:`~art_fim.memory.Footprint`.
        """
        return plan_fisher(
            engine.footprint(x, self.requested), engine.budget, self.requested, self.method,
            self.quantity == "spectral_norm", self.solver.num_iter, self.solver.num_probes,
            engine.matrix_free,
        )

    def batch(self, engine: BatchEngine, batch: Batch, plan: FisherPlan) -> BatchEstimate:
        """One batch's estimate from its Jacobian."""
        jac = engine.adapter.jacobian(batch.x, plan.class_chunk)
        return estimate_batch(jac, plan.method, self.quantity, self.solver, batch.generators)


def whitebox_estimate(
    classifier: Any, x: np.ndarray, method: str, quantity: Quantity, options: Options,
    solver: SolverOptions,
) -> FisherEstimate:
    """``λ_max`` or ``tr F`` per input by a white-box route (``method`` not ``"blackbox"``)."""
    estimator = FisherEstimator(method, quantity, solver, options.batch_size)
    plan, columns = BatchEngine(classifier, options).compute(estimator, x)
    used = min(plan.batch_size, len(columns.values))  # the batches actually formed
    return fisher_estimate(columns, plan.method, used, options.precision, solver)


class FisherInformationMetric(Configurable):
    """Input-Fisher robustness metric for an ART classifier.

    ``metric(x)`` returns ``λ_max(F(x))`` per input; :meth:`estimate` adds standard errors,
    iteration counts and the method used; :meth:`trace` gives ``tr F(x)``.

    Methods: ``"exact"`` (``K`` batched VJPs and a float64 ``K × K`` eigenproblem),
    ``"lanczos"`` and ``"power"`` (matrix-free, one JVP + one VJP per step, never forming
    ``J``: for ``K`` in the hundreds or thousands), ``"hutchinson"`` (trace only, JVPs only),
    ``"blackbox"`` (queries only: ``predict``), and ``"auto"``: Lanczos when it is cheaper
    (:func:`~art_fim.memory.prefers_matrix_free`: ``K > 2 · num_iter``, ImageNet-size label
    spaces) or when one input's exact computation does not fit in ``memory_budget``, exact
    otherwise.

    Precision: every product runs in full float32 (TF32 off for convolutions and matrix
    products on GPUs, see :mod:`art_fim.precision`) unless ``precision="tf32"``; the caller's
    settings are restored afterwards and the result records the precision used.

    | Paper link: https://arxiv.org/abs/2606.04767

    Args:
        classifier: ``PyTorchClassifier`` (differentiated through its preprocessing), any ART
            classifier with ``class_gradient``, a ``BlackBoxClassifier`` (with
            ``method="blackbox"``), or a ``torch.nn.Module`` in eval mode.
        method: see above.
        batch_size: inputs per batch (reduced when the memory budget requires).
        num_iter: maximum Lanczos / power iterations.
        tol: relative tolerance of the iterative methods.
        num_probes: Hutchinson probes per input (at least 10, for a trustworthy interval).
        seed: seed of every random draw (start vectors, probes, directions); each input has
            its own stream, so values do not depend on ``batch_size``.
        output_type: ``"auto"`` (detect), ``"logits"`` or ``"probabilities"``.
        memory_budget: bytes one batch may take at its peak (graph, Jacobian rows, gradient
            buffers, float64 copies; see :mod:`art_fim.memory`); default half the free GPU
            memory or 2 GiB on CPU. The exact route refuses an input that does not fit.
        verbose: show a progress bar.
        blackbox_params: options of the query-only estimator (see
            :class:`art_fim.blackbox.BlackBoxFisher`).
        precision: ``"float32"`` (default) or ``"tf32"`` (faster on Ampere and newer GPUs,
            about three significant digits in each product).
    """

    metric_params = [
        "method",
        "batch_size",
        "num_iter",
        "tol",
        "num_probes",
        "seed",
        "output_type",
        "memory_budget",
        "verbose",
        "blackbox_params",
        "precision",
    ]

    def __init__(
        self,
        classifier: Any,
        method: Method = "auto",
        batch_size: int = 128,
        num_iter: int = 50,
        tol: float = 1e-6,
        num_probes: int = 100,
        seed: int = 0,
        output_type: OutputType = "auto",
        memory_budget: int | None = None,
        verbose: bool = True,
        blackbox_params: Mapping[str, Any] | None = None,
        precision: Precision = "float32",
    ) -> None:
        self.classifier = classifier
        self.method = method
        self.batch_size = batch_size
        self.num_iter = num_iter
        self.tol = tol
        self.num_probes = num_probes
        self.seed = seed
        self.output_type = output_type
        self.memory_budget = memory_budget
        self.verbose = verbose
        self.blackbox_params = blackbox_params
        self.precision = precision
        self._check_params()

    def _check_params(self) -> None:
        """Validate every parameter, and build the settings objects the estimators read."""
        allowed = set(_METHODS["spectral_norm"]) | set(_METHODS["trace"])
        if self.method not in allowed:
            raise ValueError(f"method must be one of {sorted(allowed)}, got {self.method!r}")
        options = Options(
            self.output_type, self.precision, self.memory_budget, self.seed, self.verbose,
            self.batch_size,
        )
        solver = SolverOptions(self.num_iter, self.tol, self.num_probes)
        query = QueryOptions.from_params(self.blackbox_params)
        # A copy: later edits of the caller's dict do not leak in.
        self.blackbox_params = dict(self.blackbox_params or {})
        self._options, self._solver, self._query = options, solver, query

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Return ``λ_max(F(x))`` per input, shape ``[N]``."""
        return self.estimate(x).values

    def trace(self, x: np.ndarray) -> FisherEstimate:
        """Return ``tr F(x)`` per input (exact, or Hutchinson with standard errors)."""
        return self.estimate(x, quantity="trace")

    def estimate(self, x: np.ndarray, quantity: Quantity = "spectral_norm") -> FisherEstimate:
        """Estimate a Fisher quantity per input, with errors and cost.

        Args:
            x: ``[N, *input_shape]`` inputs in the classifier's own scale.
            quantity: ``"spectral_norm"`` (``λ_max``) or ``"trace"``.

        Returns:
            A :class:`~art_fim.results.FisherEstimate`.
        """
        if quantity not in _METHODS:
            raise ValueError(f"quantity must be 'spectral_norm' or 'trace', got {quantity!r}")
        if self.method not in _METHODS[quantity]:
            raise ValueError(
                f"method={self.method!r} does not estimate the {quantity}; "
                f"choose one of {', '.join(_METHODS[quantity])}."
            )
        if self.method == "blackbox":
            fisher = BlackBoxFisher.from_options(self.classifier, self._options, self._query)
            return fisher.estimate(x, quantity)
        return whitebox_estimate(
            self.classifier, x, self.method, quantity, self._options, self._solver
        )


def _is_real(value: Any) -> bool:
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return real and bool(np.isfinite(value))


def fisher_spectral_norm(
    classifier: Any,
    x: np.ndarray,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    *,
    num_iter: int = 50,
    tol: float = 1e-6,
    num_probes: int = 100,
    seed: int = 0,
    output_type: OutputType = "auto",
    memory_budget: int | None = None,
    blackbox_params: Mapping[str, Any] | None = None,
    precision: Precision = "float32",
) -> np.ndarray:
    """Compute the spectral norm of the input Fisher information matrix per input.

    Same shape as ``art.metrics.clever_u``: an ART classifier and inputs in, NumPy out. Unlike
    CLEVER it needs no sampling for the exact method: ``λ_max(F(x))`` is the largest
    eigenvalue of the ``K × K`` matrix ``Sᵀ J Jᵀ S`` (``S Sᵀ = diag(p) − ppᵀ``).

    | Paper link: https://arxiv.org/abs/2606.04767

    Args:
        classifier: An ART classifier (``PyTorchClassifier``, any with ``class_gradient``,
            or a ``BlackBoxClassifier`` with ``method="blackbox"``) or a PyTorch module.
        x: Inputs ``[N, *input_shape]`` in the classifier's own scale (before normalisation).
        method: ``"auto"``, ``"exact"``, ``"lanczos"``, ``"power"`` or ``"blackbox"``.
        batch_size: Inputs per batch.
        verbose: Show a progress bar.
        num_iter: Maximum Lanczos / power iterations.
        tol: Relative tolerance of the iterative methods.
        num_probes: Hutchinson probes per input.
        seed: Seed of every random draw (each input has its own stream).
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
        memory_budget: Peak bytes of one batch (see :class:`FisherInformationMetric`).
        blackbox_params: Options of the query-only route (:class:`~art_fim.BlackBoxFisher`).
        precision: ``"float32"`` (default) or ``"tf32"``.

    Returns:
        ``λ_max(F(x))`` per input, shape ``[N]``.
    """
    metric = FisherInformationMetric(
        classifier, method, batch_size, num_iter, tol, num_probes, seed, output_type,
        memory_budget, verbose, blackbox_params, precision,
    )
    return metric(x)


def fisher_trace(
    classifier: Any,
    x: np.ndarray,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    *,
    num_iter: int = 50,
    tol: float = 1e-6,
    num_probes: int = 100,
    seed: int = 0,
    output_type: OutputType = "auto",
    memory_budget: int | None = None,
    blackbox_params: Mapping[str, Any] | None = None,
    precision: Precision = "float32",
) -> np.ndarray:
    """Compute the trace of the input Fisher information matrix per input.

    ``tr F(x) = E_{y∼p}‖∇_x log p_y‖² = Σ_k p_k G_kk − pᵀ G p`` with ``G = J Jᵀ`` (exact), or
    Hutchinson's ``mean_j (J v_j)ᵀ M (J v_j)`` (``method="hutchinson"``).

    | Paper link: https://arxiv.org/abs/2606.04767

    Args:
        classifier: As for :func:`fisher_spectral_norm`.
        x: Inputs ``[N, *input_shape]``.
        method: ``"auto"`` (exact), ``"exact"``, ``"hutchinson"`` or ``"blackbox"``.
        batch_size: Inputs per batch.
        verbose: Show a progress bar.
        num_iter: Maximum Lanczos / power iterations.
        tol: Relative tolerance of the iterative methods.
        num_probes: Hutchinson probes per input.
        seed: Seed of every random draw (each input has its own stream).
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
        memory_budget: Peak bytes of one batch (see :class:`FisherInformationMetric`).
        blackbox_params: Options of the query-only route (:class:`~art_fim.BlackBoxFisher`).
        precision: ``"float32"`` (default) or ``"tf32"``.

    Returns:
        ``tr F(x)`` per input, shape ``[N]``.
    """
    metric = FisherInformationMetric(
        classifier, method, batch_size, num_iter, tol, num_probes, seed, output_type,
        memory_budget, verbose, blackbox_params, precision,
    )
    return metric.trace(x).values
