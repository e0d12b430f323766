"""ART-facing API: ``fisher_spectral_norm``, ``fisher_trace`` and ``FisherInformationMetric``.

The metric is the largest eigenvalue of the input Fisher information matrix

.. math::  F(x) = \\mathbb{E}_{y∼p(·|x)}[∇_x \\log p_y ∇_x \\log p_yᵀ] = Jᵀ (\\mathrm{diag}(p) − p pᵀ) J,

the worst-case rate at which the model's output distribution moves under a small input
perturbation: ``KL(p(x) ‖ p(x + δ)) ≈ ½ δᵀ F(x) δ ≤ ½ ‖δ‖² λ_max(F(x))``.

| Paper link: https://arxiv.org/abs/2606.04767
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from art_fim.adapters import ClassifierAdapter, adapter_for
from art_fim.checks import OutputType, check_inputs
from art_fim.exact import exact_spectral_norm, exact_trace
from art_fim.hutchinson import hutchinson_trace
from art_fim.iterative import lanczos, power_iteration
from art_fim.jacobian import InputJacobian
from art_fim.results import FisherEstimate

logger = logging.getLogger(__name__)

Method = Literal["auto", "exact", "lanczos", "power", "hutchinson", "blackbox"]
Quantity = Literal["spectral_norm", "trace"]

_METHODS: dict[str, tuple[str, ...]] = {
    "spectral_norm": ("auto", "exact", "lanczos", "power", "blackbox"),
    "trace": ("auto", "exact", "hutchinson", "blackbox"),
}
_CPU_MEMORY_BUDGET = 2 * 1024**3


def default_memory_budget(device: torch.device) -> int:
    """Bytes the Jacobian of one batch may take: half the free GPU memory, or 2 GiB on CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free // 2)
    return _CPU_MEMORY_BUDGET


class FisherInformationMetric:
    """Input-Fisher robustness metric for an ART classifier.

    ``metric(x)`` returns ``λ_max(F(x))`` per input; :meth:`estimate` adds standard errors,
    iteration counts and the method used; :meth:`trace` gives ``tr F(x)``.

    Methods: ``"exact"`` (``K`` batched VJPs and a float64 ``K × K`` eigenproblem),
    ``"lanczos"`` and ``"power"`` (matrix-free, one JVP + one VJP per step, never forming
    ``J``: for ``K`` in the hundreds or thousands), ``"hutchinson"`` (trace only, JVPs only),
    ``"blackbox"`` (queries only: ``predict``), and ``"auto"``: exact while the batch's
    Jacobian fits in ``memory_budget``, Lanczos otherwise.

    | Paper link: https://arxiv.org/abs/2606.04767

    Args:
        classifier: ``PyTorchClassifier`` (differentiated through its preprocessing), any ART
            classifier with ``class_gradient``, a ``BlackBoxClassifier`` (with
            ``method="blackbox"``), or a ``torch.nn.Module`` in eval mode.
        method: see above.
        batch_size: inputs per batch (reduced when the memory budget requires).
        num_iter: maximum Lanczos / power iterations.
        tol: relative tolerance of the iterative methods.
        num_probes: Hutchinson probes per input.
        seed: seed of every random draw (start vectors, probes, directions).
        output_type: ``"auto"`` (detect), ``"logits"`` or ``"probabilities"``.
        memory_budget: bytes a batch's Jacobian may take; default half the free GPU memory
            or 2 GiB on CPU.
        verbose: show a progress bar.
        blackbox_params: options of the query-only estimator (see
            :class:`art_fim.blackbox.BlackBoxFisher`).
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
        blackbox_params: dict[str, Any] | None = None,
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
        self.blackbox_params = dict(blackbox_params or {})
        self._check_params()

    def set_params(self, **kwargs: Any) -> None:
        """Set metric parameters (names from :attr:`metric_params`) and validate them."""
        for key, value in kwargs.items():
            if key not in self.metric_params:
                raise ValueError(f"Unknown parameter {key!r}; valid: {', '.join(self.metric_params)}")
            setattr(self, key, value)
        self._check_params()

    def _check_params(self) -> None:
        allowed = set(_METHODS["spectral_norm"]) | set(_METHODS["trace"])
        if self.method not in allowed:
            raise ValueError(f"method must be one of {sorted(allowed)}, got {self.method!r}")
        for name in ("batch_size", "num_iter", "num_probes"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.tol > 0:
            raise ValueError(f"tol must be positive, got {self.tol!r}")
        if self.output_type not in ("auto", "logits", "probabilities"):
            raise ValueError(
                f"output_type must be 'auto', 'logits' or 'probabilities', got {self.output_type!r}"
            )

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
            from art_fim.blackbox import BlackBoxFisher

            return BlackBoxFisher(
                self.classifier,
                output_type=self.output_type,
                seed=self.seed,
                batch_size=self.batch_size,
                verbose=self.verbose,
                **self.blackbox_params,
            ).estimate(x, quantity)
        adapter = adapter_for(self.classifier, self.output_type)
        x = check_inputs(x, adapter.input_shape, adapter.clip_values)
        method, batch_size = self._plan(adapter, x, quantity)
        generator = torch.Generator().manual_seed(self.seed)
        parts: list[tuple[np.ndarray, ...]] = []
        with adapter.evaluating(), tqdm(
            total=len(x), desc=f"Fisher {quantity} ({method})", unit="input", disable=not self.verbose
        ) as bar:
            for start in range(0, len(x), batch_size):
                jac = adapter.jacobian(x[start : start + batch_size])
                parts.append(self._estimate_batch(jac, method, quantity, generator))
                bar.update(jac.batch_size)
        values, stderr, iterations, converged = (np.concatenate(col) for col in zip(*parts))
        if not converged.all():
            logger.warning(
                "%s did not reach tol=%g within %d iterations for %d of %d inputs",
                method, self.tol, self.num_iter, int((~converged).sum()), len(converged),
            )
        used = min(batch_size, len(x))  # the batches actually formed
        return FisherEstimate(values, stderr, iterations, converged, method, batch_size=used)

    def _plan(self, adapter: ClassifierAdapter, x: np.ndarray, quantity: Quantity) -> tuple[str, int]:
        """Resolve ``"auto"`` and the batch size from the memory budget."""
        budget = self.memory_budget or default_memory_budget(adapter.device)
        probe = adapter.jacobian(x[:1])
        dim, classes = probe.input_dim, probe.num_classes
        # Exact: the K rows of J per sample, plus as much again for the backward pass.
        exact_bytes = 2 * classes * dim * adapter.itemsize
        method = self.method
        if method == "auto":
            # Only autograd Jacobians have a matrix-free fallback; dense ones are exact anyway.
            matrix_free = hasattr(probe, "rows") and exact_bytes > budget
            fallback = "lanczos" if quantity == "spectral_norm" else "hutchinson"
            method = fallback if matrix_free else "exact"
        if method == "exact":
            per_sample = exact_bytes
        elif method in ("lanczos", "power"):
            per_sample = (self.num_iter + 4) * dim * 8  # float64 Krylov basis
        else:
            per_sample = 4 * dim * 8
        batch_size = int(max(1, min(self.batch_size, budget // max(per_sample, 1))))
        if batch_size < self.batch_size:
            logger.info("batch size reduced to %d to fit the memory budget", batch_size)
        return method, batch_size

    def _estimate_batch(
        self, jac: InputJacobian, method: str, quantity: Quantity, generator: torch.Generator
    ) -> tuple[np.ndarray, ...]:
        b = jac.batch_size
        ones = np.ones(b, dtype=bool)
        if method == "exact":
            values = exact_spectral_norm(jac) if quantity == "spectral_norm" else exact_trace(jac)
            return values.cpu().numpy(), np.zeros(b), np.full(b, jac.num_classes), ones
        if method == "hutchinson":
            mean, se = hutchinson_trace(jac, self.num_probes, generator=generator)
            return mean.cpu().numpy(), se.cpu().numpy(), np.full(b, self.num_probes), ones
        solver = lanczos if method == "lanczos" else power_iteration
        result = solver(
            jac.fisher_matvec, b, jac.input_dim,
            num_iter=self.num_iter, tol=self.tol, generator=generator, device=jac.device,
        )
        return (
            result.values.cpu().numpy(),
            np.zeros(b),
            result.iterations.cpu().numpy(),
            result.converged.cpu().numpy(),
        )


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

    :param classifier: An ART classifier (``PyTorchClassifier``, any with ``class_gradient``,
        or a ``BlackBoxClassifier`` with ``method="blackbox"``) or a PyTorch module.
    :param x: Inputs ``[N, *input_shape]`` in the classifier's own scale (before normalisation).
    :param method: ``"auto"``, ``"exact"``, ``"lanczos"``, ``"power"`` or ``"blackbox"``.
    :param batch_size: Inputs per batch.
    :param verbose: Show a progress bar.
    :param kwargs: Further :class:`FisherInformationMetric` parameters.
    :return: ``λ_max(F(x))`` per input, shape ``[N]``.
    """
    metric = FisherInformationMetric(classifier, method=method, batch_size=batch_size, verbose=verbose, **kwargs)
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

    :param classifier: As for :func:`fisher_spectral_norm`.
    :param x: Inputs ``[N, *input_shape]``.
    :param method: ``"auto"`` (exact), ``"exact"``, ``"hutchinson"`` or ``"blackbox"``.
    :param batch_size: Inputs per batch.
    :param verbose: Show a progress bar.
    :param kwargs: Further :class:`FisherInformationMetric` parameters.
    :return: ``tr F(x)`` per input, shape ``[N]``.
    """
    metric = FisherInformationMetric(classifier, method=method, batch_size=batch_size, verbose=verbose, **kwargs)
    return metric.trace(x).values
