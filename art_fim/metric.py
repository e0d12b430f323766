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

import inspect
import logging
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from art_fim.checks import OutputType, check_positive_int
from art_fim.engine import BatchEngine, check_memory_budget
from art_fim.exact import exact_spectral_norm, exact_trace
from art_fim.hutchinson import MIN_PROBES, hutchinson_trace
from art_fim.iterative import lanczos, power_iteration
from art_fim.jacobian import InputJacobian
from art_fim.memory import Footprint, plan_exact
from art_fim.params import Configurable
from art_fim.precision import Precision, check_precision
from art_fim.results import FisherEstimate

logger = logging.getLogger(__name__)

Method = Literal["auto", "exact", "lanczos", "power", "hutchinson", "blackbox"]
Quantity = Literal["spectral_norm", "trace"]

_METHODS: dict[str, tuple[str, ...]] = {
    "spectral_norm": ("auto", "exact", "lanczos", "power", "blackbox"),
    "trace": ("auto", "exact", "hutchinson", "blackbox"),
}
# Products per input of the matrix-free route, in units of one VJP, per Lanczos step (one JVP
# and one VJP; a forward-mode pass costs about as much as a backward one).
_PRODUCTS_PER_STEP = 2
# Black-box options the metric sets from its own parameters.
_SHARED_BLACKBOX_PARAMS = frozenset(
    {"output_type", "seed", "batch_size", "verbose", "precision", "memory_budget"}
)


class Plan(NamedTuple):
    """How a set of inputs is computed (:meth:`FisherInformationMetric.plan`).

    Attributes:
        method: the resolved method (``"exact"``, ``"lanczos"``, ...).
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


def prefers_matrix_free(num_classes: int, num_iter: int) -> bool:
    """Whether ``"auto"`` takes Lanczos over the exact route by cost, before memory.

    The exact route costs ``K`` VJPs per input (one batched backward pass per class); Lanczos
    at most ``num_iter`` steps of one JVP and one VJP. Lanczos is taken when even its
    worst case is cheaper: ``K > 2 · num_iter`` (``K > 100`` at the default 50 steps, so
    CIFAR-10 and CIFAR-100 stay exact and ImageNet's ``K = 1000`` goes matrix-free; it
    usually converges in far fewer steps).
    """
    return num_classes > _PRODUCTS_PER_STEP * num_iter


class FisherInformationMetric(Configurable):
    """Input-Fisher robustness metric for an ART classifier.

    ``metric(x)`` returns ``λ_max(F(x))`` per input; :meth:`estimate` adds standard errors,
    iteration counts and the method used; :meth:`trace` gives ``tr F(x)``.

    Methods: ``"exact"`` (``K`` batched VJPs and a float64 ``K × K`` eigenproblem),
    ``"lanczos"`` and ``"power"`` (matrix-free, one JVP + one VJP per step, never forming
    ``J``: for ``K`` in the hundreds or thousands), ``"hutchinson"`` (trace only, JVPs only),
    ``"blackbox"`` (queries only: ``predict``), and ``"auto"``: Lanczos when it is cheaper
    (:func:`prefers_matrix_free`: ``K > 2 · num_iter``, ImageNet-size label spaces) or when
    one input's exact computation does not fit in ``memory_budget``, exact otherwise.

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
        allowed = set(_METHODS["spectral_norm"]) | set(_METHODS["trace"])
        if self.method not in allowed:
            raise ValueError(f"method must be one of {sorted(allowed)}, got {self.method!r}")
        lowest = {"batch_size": 1, "num_iter": 1, "num_probes": MIN_PROBES, "seed": 0}
        for name, low in lowest.items():
            check_positive_int(name, getattr(self, name), low)
        if not (_is_real(self.tol) and 0 < self.tol < 1):
            raise ValueError(f"tol must be a number in (0, 1), e.g. 1e-6; got {self.tol!r}")
        check_memory_budget(self.memory_budget)
        if self.output_type not in ("auto", "logits", "probabilities"):
            raise ValueError(
                f"output_type must be 'auto', 'logits' or 'probabilities', got {self.output_type!r}"
            )
        check_precision(self.precision)
        self._check_blackbox_params()

    def _check_blackbox_params(self) -> None:
        """Validate ``blackbox_params`` now, not at the first black-box estimate."""
        from art_fim.blackbox import BlackBoxFisher

        if self.blackbox_params is None:
            self.blackbox_params = {}
        if not isinstance(self.blackbox_params, Mapping):
            kind = type(self.blackbox_params).__name__
            raise ValueError(f"blackbox_params must be a dict, got {kind}")
        # A copy: later edits of the caller's dict do not leak in.
        self.blackbox_params = dict(self.blackbox_params)
        accepted = set(inspect.signature(BlackBoxFisher).parameters) - {"classifier"}
        for key in self.blackbox_params:
            if key in _SHARED_BLACKBOX_PARAMS:
                raise ValueError(
                    f"blackbox_params[{key!r}]: pass {key}= to the metric itself, which hands it "
                    "on."
                )
            if key not in accepted:
                valid = ", ".join(sorted(accepted - _SHARED_BLACKBOX_PARAMS))
                raise ValueError(f"Unknown blackbox_params key {key!r}; valid: {valid}")
        try:
            BlackBoxFisher(self.classifier, **self.blackbox_params)
        except TypeError as err:
            raise ValueError(f"blackbox_params: {err}") from None

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
            from art_fim.blackbox import blackbox_for

            return blackbox_for(self).estimate(x, quantity)
        engine = self.engine()
        # Everything that runs the model, the planning probe included, runs inside the run.
        with engine.run(x, f"Fisher {quantity}") as run:
            method, batch_size, class_chunk, _, _ = self.plan(engine, run.x, quantity)
            run.describe(f"Fisher {quantity} ({method})")
            parts = [
                self.estimate_batch(
                    engine.adapter.jacobian(batch.x, class_chunk),
                    method,
                    quantity,
                    batch.generators,
                )
                for batch in run.batches(batch_size)
            ]
            x = run.x
        values, stderr, iterations, converged, dof = (np.concatenate(col) for col in zip(*parts))
        if not converged.all():
            logger.warning(
                "%s did not reach tol=%g within %d iterations for %d of %d inputs",
                method, self.tol, self.num_iter, int((~converged).sum()), len(converged),
            )
        dof = dof if method == "hutchinson" else None
        used = min(batch_size, len(x))  # the batches actually formed
        return FisherEstimate(
            values,
            stderr,
            iterations,
            converged,
            method,
            dof=dof,
            batch_size=used,
            precision=self.precision,
        )

    def engine(self) -> BatchEngine:
        """The white-box :class:`~art_fim.engine.BatchEngine` set up by this metric's parameters."""
        return BatchEngine(
            self.classifier, self.output_type, precision=self.precision,
            memory_budget=self.memory_budget, seed=self.seed, verbose=self.verbose,
        )

    def plan(self, engine: BatchEngine, x: np.ndarray, quantity: Quantity) -> Plan:
        """Resolve ``"auto"``, the batch size and the exact route's classes per backward pass.

        The output type is decided on the first batch; one input's Jacobian and forward graph
        give the sizes of :class:`~art_fim.memory.Footprint`, whose peak per input (graph,
        rows, gradient buffers, float64 blocks, Krylov basis) must fit the memory budget.
        ``"auto"`` takes the matrix-free route when it is cheaper (:func:`prefers_matrix_free`)
        or when the exact one does not fit.
        """
        budget = engine.budget
        footprint = engine.footprint(x, self.batch_size)
        # Only autograd Jacobians have a matrix-free fallback; dense ones are exact anyway.
        matrix_free = engine.matrix_free
        exact = plan_exact(footprint, budget, self.batch_size)
        method = self.method
        if method == "auto":
            fallback = "lanczos" if quantity == "spectral_norm" else "hutchinson"
            cheaper = prefers_matrix_free(footprint.classes, self.num_iter)
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
                footprint.iterative(self.num_iter)
                if method in ("lanczos", "power")
                else footprint.hutchinson(self.num_probes)
            )
            batch_size, class_chunk = max(1, min(self.batch_size, budget // per_input)), None
        if batch_size < self.batch_size:
            logger.info("batch size reduced to %d to fit the memory budget", batch_size)
        if class_chunk is not None and class_chunk < footprint.classes:
            logger.info("exact route: %d classes per backward pass to fit the budget", class_chunk)
        return Plan(method, batch_size, class_chunk, footprint, budget)

    def estimate_batch(
        self, jac: InputJacobian, method: str, quantity: Quantity, generators: list[torch.Generator]
    ) -> tuple[np.ndarray, ...]:
        """One batch's ``(values, stderr, iterations, converged, dof)`` by a resolved method.

        The method is one that :meth:`plan` resolves to (not ``"auto"``).
        """
        b = jac.batch_size
        ones = np.ones(b, dtype=bool)
        no_dof = np.full(b, np.inf)
        if method == "exact":
            values = exact_spectral_norm(jac) if quantity == "spectral_norm" else exact_trace(jac)
            return values.cpu().numpy(), np.zeros(b), np.full(b, jac.num_classes), ones, no_dof
        if method == "hutchinson":
            mean, se, dof = hutchinson_trace(jac, self.num_probes, generator=generators)
            probes = np.full(b, self.num_probes)
            return mean.cpu().numpy(), se.cpu().numpy(), probes, ones, dof.cpu().numpy()
        solver = lanczos if method == "lanczos" else power_iteration
        result = solver(
            jac.fisher_matvec, b, jac.input_dim,
            num_iter=self.num_iter, tol=self.tol, generator=generators, device=jac.device,
        )
        return (
            result.values.cpu().numpy(),
            np.zeros(b),
            result.iterations.cpu().numpy(),
            result.converged.cpu().numpy(),
            no_dof,
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
    **kwargs: Any,
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
        kwargs: Further :class:`FisherInformationMetric` parameters.

    Returns:
        ``λ_max(F(x))`` per input, shape ``[N]``.
    """
    metric = FisherInformationMetric(
        classifier, method=method, batch_size=batch_size, verbose=verbose, **kwargs
    )
    return metric(x)


def fisher_trace(
    classifier: Any,
    x: np.ndarray,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    **kwargs: Any,
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
        kwargs: Further :class:`FisherInformationMetric` parameters.

    Returns:
        ``tr F(x)`` per input, shape ``[N]``.
    """
    metric = FisherInformationMetric(
        classifier, method=method, batch_size=batch_size, verbose=verbose, **kwargs
    )
    return metric.trace(x).values
