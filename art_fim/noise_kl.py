r"""Expected output divergence under Gaussian input noise, and its Fisher prediction.

The input Fisher is the curvature of the KL divergence:
``KL(p(x) ‖ p(x + ε)) = ½ εᵀF(x)ε + O(‖ε‖³)``.
Averaging over ``ε ∼ N(0, σ²I)`` (the odd third-order term averages to zero) gives

.. math::

   \mathbb{E}_ε\, \mathrm{KL}(p(x) \,\|\, p(x + ε))
   = \tfrac12 σ^2 \operatorname{tr} F(x) + O(σ^4),

which links average-case robustness (Han et al., https://arxiv.org/abs/2307.13885) to the
input Fisher (https://arxiv.org/abs/2606.04767): the trace governs the typical output change
under random noise, the spectral norm the worst case. :func:`expected_noise_kl` estimates the
left side by Monte Carlo and returns the right side beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from art_fim.checks import OutputType, check_positive_int, resolve_output_type
from art_fim.engine import Batch, BatchEngine
from art_fim.exact import exact_trace
from art_fim.logits import as_logits
from art_fim.noise import noisy_passes
from art_fim.options import Options
from art_fim.precision import Precision


@dataclass(frozen=True)
class NoiseKL:
    """Monte Carlo ``E_ε KL(p(x) ‖ p(x+ε))`` and its second-order Fisher prediction, per input.

    Attributes:
        mean: the Monte Carlo mean of the KL divergence, ``[N]``.
        stderr: its standard error, ``[N]``.
        fisher_prediction: ``½ σ² tr F(x)``, ``[N]``.
        sigma: the noise standard deviation.
        num_samples: noise draws per input.
    """

    mean: np.ndarray
    stderr: np.ndarray
    fisher_prediction: np.ndarray
    sigma: float
    num_samples: int


def _log_probs(scores: Tensor, kind: str) -> Tensor:
    return torch.log_softmax(as_logits(scores.double(), kind), dim=-1)


def expected_noise_kl(
    classifier: Any,
    x: np.ndarray,
    sigma: float,
    num_samples: int = 1000,
    batch_size: int = 64,
    noise_batch_size: int = 512,
    seed: int = 0,
    output_type: OutputType = "auto",
    precision: Precision = "float32",
    memory_budget: int | None = None,
    verbose: bool = True,
) -> NoiseKL:
    """Estimate ``E_{ε∼N(0,σ²I)} KL(p(x) ‖ p(x + ε))`` per input, beside ``½ σ² tr F(x)``.

    Args:
        classifier: an ART classifier with input gradients or an ``nn.Module`` in eval mode.
        x: ``[N, *input_shape]`` inputs in the classifier's own scale.
        sigma: noise standard deviation.
        num_samples: noise draws per input (at least 2, for a standard error).
        batch_size: inputs per batch.
        noise_batch_size: noisy inputs per forward pass.
        seed: seed of the noise (input ``i``'s noise depends on ``(seed, i)`` only).
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
        precision: ``"float32"`` (default) or ``"tf32"`` (:mod:`art_fim.precision`).
        memory_budget: peak bytes of one batch (the exact trace's Jacobian and one forward pass
            of noisy copies); default half the free GPU memory or 2 GiB on CPU.
        verbose: show a progress bar.

    Returns:
        A :class:`NoiseKL`.
    """
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
    check_positive_int("num_samples", num_samples, low=2)
    check_positive_int("noise_batch_size", noise_batch_size)
    options = Options(output_type, precision, memory_budget, seed, verbose, batch_size)
    estimator = _NoiseKLEstimator(float(sigma), num_samples, noise_batch_size)
    _, columns = BatchEngine(classifier, options).compute(estimator, x)
    return NoiseKL(
        columns.mean, columns.stderr, 0.5 * sigma**2 * columns.trace, float(sigma), num_samples
    )


class _NoisePlan(NamedTuple):
    batch_size: int
    class_chunk: int
    noise_per_pass: int
    label: str = ""


class _NoiseKLPart(NamedTuple):
    """One batch's Monte Carlo KL mean and standard error, and the exact trace, per input."""

    mean: Tensor
    stderr: Tensor
    trace: Tensor


class _NoiseKLEstimator:
    """Per batch: the exact trace from the Jacobian, and the KL over noisy copies."""

    access = "gradients"
    description = "expected noise KL"

    def __init__(self, sigma: float, num_samples: int, noise_batch_size: int) -> None:
        self.sigma = sigma
        self.num_samples = num_samples
        self.noise_batch_size = noise_batch_size

    def plan(self, engine: BatchEngine, x: np.ndarray) -> _NoisePlan:
        """The exact route's batch and the noisy copies per forward pass."""
        size, class_chunk = engine.exact_plan(x, engine.options.batch_size)
        return _NoisePlan(size, class_chunk, engine.noisy_copies_per_pass(x, self.noise_batch_size))

    def batch(self, engine: BatchEngine, batch: Batch, plan: _NoisePlan) -> _NoiseKLPart:
        """One batch's trace and KL draws (each input's noise from its own stream)."""
        trace = exact_trace(engine.adapter.jacobian(batch.x, plan.class_chunk))
        x = torch.as_tensor(batch.x, device=engine.device).to(engine.dtype)
        clean = engine.outputs(x)
        kind = resolve_output_type(clean.cpu().numpy(), engine.options.output_type)
        log_p = _log_probs(clean, kind)
        draws = [
            (log_p.exp()[:, None] * (log_p[:, None] - _log_probs(outputs, kind))).sum(-1)
            for outputs in noisy_passes(
                engine.outputs, x, self.sigma, self.num_samples, plan.noise_per_pass,
                batch.generators,
            )
        ]
        kl = torch.cat(draws, dim=1)
        return _NoiseKLPart(kl.mean(1), kl.std(1) / self.num_samples**0.5, trace)
