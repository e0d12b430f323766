"""From raw model outputs to logits: a ``z`` whose softmax is the model's output distribution.

Every estimator works with logits ``z`` such that ``p = softmax(z)`` is the distribution the
model reports, and differentiates ``z``. ("Score" is kept for robustness scores.) The raw
outputs may be

* ``K ≥ 2`` logits: ``z`` is the output itself;
* ``K ≥ 2`` probabilities ``q``: ``z = log q`` (``softmax(log q) = q``, and
  ``J_{log q}ᵀ M J_{log q} = Σ_k (1/q_k) ∇q_k ∇q_kᵀ``, the same Fisher);
* one output (a binary model): a logit ``t`` gives ``z = (0, t)`` and a sigmoid probability
  ``s`` gives ``z = (log(1 − s), log s)``. Both have ``p = (1 − σ(t), σ(t))`` and the Fisher
  ``σ(1 − σ) ∇t ∇tᵀ``, since ``M = diag(p) − ppᵀ`` has ``M₁₁ = σ(1 − σ)``.

Half-precision outputs are taken to float32 first, so the logarithm and the floor below are
representable.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

# Probabilities below this are floored before the logarithm: such classes carry no Fisher
# weight (p_k ∇log p_k → 0), and the floor keeps log q finite for saturated softmax outputs.
PROB_FLOOR = 1e-30


def as_logits(raw: Tensor, kind: Literal["logits", "probabilities"]) -> Tensor:
    """Return logits ``z`` whose softmax is the output distribution, ``[B, K] -> [B, max(K, 2)]``.

    Differentiable: autograd through this map turns the Jacobian of the raw outputs into
    the Jacobian of the logits.

    Args:
        raw: ``[B, K]`` raw model outputs (``K = 1`` for a binary model with one output).
        kind: ``"logits"`` or ``"probabilities"`` (see :func:`art_fim.checks.resolve_output_type`).

    Returns:
        The logits, in float32 or wider.
    """
    raw = raw.to(torch.promote_types(raw.dtype, torch.float32))
    if raw.shape[-1] == 1:
        if kind == "logits":
            return torch.cat([torch.zeros_like(raw), raw], dim=-1)
        negative, positive = (1.0 - raw).clamp_min(PROB_FLOOR), raw.clamp_min(PROB_FLOOR)
        return torch.cat([negative.log(), positive.log()], dim=-1)
    if kind == "logits":
        return raw
    return torch.log(raw.clamp_min(PROB_FLOOR))
