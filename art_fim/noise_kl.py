"""Expected output divergence under Gaussian input noise, and its Fisher prediction.

The input Fisher is the curvature of the KL divergence: ``KL(p(x) ‖ p(x + ε)) = ½ εᵀF(x)ε + O(‖ε‖³)``.
Averaging over ``ε ∼ N(0, σ²I)`` (the odd third-order term averages to zero) gives

.. math::  \\mathbb{E}_ε\\, \\mathrm{KL}(p(x) \\,\\|\\, p(x + ε)) = \\tfrac12 σ^2 \\operatorname{tr} F(x) + O(σ^4),

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

from art_fim.checks import OutputType, check_inputs, resolve_output_type
from art_fim.exact import exact_trace
from art_fim.noise import noisy_copies, scorer_for
from art_fim.precision import Precision, precision_context
from art_fim.scores import log_scores


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
    return torch.log_softmax(log_scores(scores.double(), kind), dim=-1)


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

    Returns:
        A :class:`NoiseKL`.
    """
    with precision_context(precision):
        return _expected_noise_kl(
            classifier, x, sigma, num_samples, batch_size, noise_batch_size, seed, output_type
        )


def _expected_noise_kl(
    classifier: Any,
    x: np.ndarray,
    sigma: float,
    num_samples: int,
    batch_size: int,
    noise_batch_size: int,
    seed: int,
    output_type: OutputType,
) -> NoiseKL:
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
    integer = isinstance(num_samples, (int, np.integer)) and not isinstance(num_samples, bool)
    if not integer or num_samples < 2:
        raise ValueError(f"num_samples must be an integer of at least 2, got {num_samples!r}")
    scorer = scorer_for(classifier, output_type, need_gradients=True)
    assert scorer.adapter is not None
    x = check_inputs(x, scorer.input_shape, scorer.clip_values)
    generator = torch.Generator(device=scorer.device).manual_seed(seed)
    means, errors, traces = [], [], []
    with scorer.evaluating():
        for start in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[start : start + batch_size], device=scorer.device).to(scorer.dtype)
            jac = scorer.adapter.jacobian(xb.cpu().numpy())
            traces.append(exact_trace(jac).cpu().numpy())
            clean = scorer.scores(xb)
            kind = resolve_output_type(clean.cpu().numpy(), output_type)
            log_p = _log_probs(clean, kind)
            b = xb.shape[0]
            per_pass = max(1, noise_batch_size // b)
            draws = []
            for done in range(0, num_samples, per_pass):
                copies = min(per_pass, num_samples - done)
                log_q = _log_probs(scorer.scores(noisy_copies(xb, sigma, copies, generator)), kind)
                log_q = log_q.reshape(b, copies, -1)
                draws.append((log_p.exp()[:, None] * (log_p[:, None] - log_q)).sum(-1))
            kl = torch.cat(draws, dim=1)
            means.append(kl.mean(1).cpu().numpy())
            errors.append((kl.std(1) / num_samples**0.5).cpu().numpy())
    trace = np.concatenate(traces)
    return NoiseKL(
        np.concatenate(means), np.concatenate(errors), 0.5 * sigma**2 * trace, float(sigma), num_samples
    )
