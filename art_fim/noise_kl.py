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
from typing import Any

import numpy as np
import torch
from torch import Tensor

from art_fim.checks import OutputType, check_positive_int, resolve_output_type
from art_fim.engine import BatchEngine
from art_fim.exact import exact_trace
from art_fim.logits import as_logits
from art_fim.noise import noisy_copies
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
        seed: seed of the noise.
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
    engine = BatchEngine(
        classifier, output_type, precision=precision, memory_budget=memory_budget, seed=seed,
        verbose=verbose,
    )
    generator = engine.generator()
    means, errors, traces = [], [], []
    with engine.run(x, "expected noise KL") as run:
        size, class_chunk = engine.exact_plan(run.x, batch_size)
        noise_per_pass = engine.noisy_copies_per_pass(run.x, noise_batch_size)
        for batch in run.batches(size):
            xb = torch.as_tensor(batch.x, device=engine.device).to(engine.dtype)
            traces.append(exact_trace(engine.adapter.jacobian(batch.x, class_chunk)).cpu().numpy())
            kl = _noise_kl_draws(
                engine, xb, sigma, num_samples, noise_per_pass, generator, output_type
            )
            means.append(kl.mean(1).cpu().numpy())
            errors.append((kl.std(1) / num_samples**0.5).cpu().numpy())
    trace = np.concatenate(traces)
    return NoiseKL(
        np.concatenate(means),
        np.concatenate(errors),
        0.5 * sigma**2 * trace,
        float(sigma),
        num_samples,
    )


def _noise_kl_draws(
    engine: BatchEngine,
    x: Tensor,
    sigma: float,
    num_samples: int,
    noise_per_pass: int,
    generator: torch.Generator,
    output_type: OutputType,
) -> Tensor:
    """``KL(p(x) ‖ p(x + ε_j))`` for ``num_samples`` draws per input: ``[B, num_samples]``."""
    clean = engine.outputs(x)
    kind = resolve_output_type(clean.cpu().numpy(), output_type)
    log_p = _log_probs(clean, kind)
    b = x.shape[0]
    per_pass = max(1, noise_per_pass // b)
    draws = []
    for done in range(0, num_samples, per_pass):
        copies = min(per_pass, num_samples - done)
        log_q = _log_probs(engine.outputs(noisy_copies(x, sigma, copies, generator)), kind)
        log_q = log_q.reshape(b, copies, -1)
        draws.append((log_p.exp()[:, None] * (log_p[:, None] - log_q)).sum(-1))
    return torch.cat(draws, dim=1)
