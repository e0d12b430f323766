"""ℓ2 Lipschitz constants of single layers, computed on the real weights and input shape.

Every function here returns an upper bound on ``sup ‖f(a) − f(b)‖₂ / ‖a − b‖₂`` for one
layer ``f`` (Abuduweili & Liu, https://arxiv.org/abs/2410.23382; AutoLip, Virmaux & Scaman,
https://arxiv.org/abs/1805.10965):

* linear maps (``Linear``, convolutions, average and adaptive average pooling): the exact
  operator norm ``σ_max(T)`` — of the weight matrix, or of the convolution *on the input shape
  it actually sees*, by Lanczos on ``TᵀT`` with one forward and one transposed product
  (``conv`` / ``conv_transpose``) per step;
* elementwise activations: ``sup |φ'|``;
* max pooling: ``√m``, ``m`` the largest number of windows any input position falls in;
* LayerNorm: ``max|γ| / √(v_min + ε)``, ``v_min`` the smallest variance its inputs can have;
* dot-product self-attention: a local bound for tokens of norm at most ``R`` (it has no global
  Lipschitz constant: Kim, Papamakarios & Mnih, https://arxiv.org/abs/2006.04710).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from art_fim.iterative import lanczos, power_iteration

logger = logging.getLogger(__name__)

# Lanczos keeps its basis (steps × d float64 numbers); above this many bytes, power iteration.
_LANCZOS_MEMORY = 512 * 1024**2
_NUM_ITER = 300
_TOL = 1e-7


@dataclass(frozen=True)
class Activation:
    """An elementwise activation: its Lipschitz constant and where its minimum lies.

    Attributes:
        lipschitz: ``sup_t |φ'(t)|`` (rounded up).
        argmin: the point left of which ``φ`` decreases and right of which it increases, or
            ``-inf`` for non-decreasing activations.
        minimum: ``inf_t φ(t)`` (rounded down), used when an interval contains ``argmin``.
    """

    lipschitz: float
    argmin: float = -math.inf
    minimum: float = -math.inf


# sup|φ'| and the minimum of the smooth non-monotone activations, measured on a float64 grid of
# 4·10⁶ points over [−20, 20] and rounded outwards (tests/test_lipschitz_layers.py re-measures
# them). GELU: Φ(t) + tφ(t) peaks at t = √2 with Φ(√2) + √2 φ(√2) = 1.1289041.
GELU = Activation(1.128905, -0.75179, -0.169972)
GELU_TANH = Activation(1.128994, -0.75246, -0.170041)
SILU = Activation(1.099840, -1.27846, -0.278465)
MISH = Activation(1.088499, -1.19243, -0.308844)
HARDSWISH = Activation(1.5, -1.5, -0.375)
MONOTONE_1 = Activation(1.0)
SIGMOID = Activation(0.25)
HARDSIGMOID = Activation(0.1666667)  # 1/6, rounded up
SELU = Activation(1.758100)  # scale · α = 1.0507010 · 1.6732632 = 1.7580993, rounded up
# Intervals within this distance of ``argmin`` are given the global minimum (the measured
# argmin is accurate to ~1e-5; the margin keeps the bound sound).
_ARGMIN_MARGIN = 1e-3


def activation_interval(
    fn: Callable[[Tensor], Tensor], act: Activation, lo: Tensor, hi: Tensor
) -> tuple[Tensor, Tensor]:
    """Bounds of ``φ(t)`` for ``t ∈ [lo, hi]`` elementwise, for ``φ`` decreasing then increasing."""
    f_lo, f_hi = fn(lo.clone()), fn(hi.clone())
    upper = torch.maximum(f_lo, f_hi)
    lower = torch.minimum(f_lo, f_hi)
    if act.argmin > -math.inf:
        straddles = (lo <= act.argmin + _ARGMIN_MARGIN) & (hi >= act.argmin - _ARGMIN_MARGIN)
        lower = torch.where(straddles, torch.full_like(lower, act.minimum), lower)
    return lower, upper


def matrix_spectral_norm(weight: Tensor) -> float:
    """``σ_max(W)`` of a matrix, exactly (SVD; Lanczos on ``WᵀW`` for very large matrices)."""
    w = weight.detach().to(torch.float64).reshape(weight.shape[0], -1)
    if min(w.shape) <= 1024:
        return float(torch.linalg.matrix_norm(w, ord=2))
    return linear_operator_norm(lambda v: v @ w.T, (w.shape[1],), device=w.device)


def linear_operator_norm(
    fn: Callable[[Tensor], Tensor],
    input_shape: tuple[int, ...],
    *,
    device: torch.device | str = "cpu",
    num_iter: int = _NUM_ITER,
    tol: float = _TOL,
    seed: int = 0,
) -> float:
    """``σ_max(T)`` of a linear map ``T`` on inputs of shape ``[1, *input_shape]``, float64.

    Lanczos on ``TᵀT`` (``Tᵀ`` is the map's vector-Jacobian product: for a convolution, the
    transposed convolution), started from a seeded random vector. The Ritz value ``θ`` is at
    most ``λ_max(TᵀT)`` and the residual ``r = ‖TᵀT y − θ y‖`` puts an eigenvalue within ``r``
    of it, so ``√(θ + r)`` is returned: the converged value rounded up by the residual.

    Args:
        fn: the linear map, with no bias (``fn(0) = 0``), ``[1, *input_shape] -> [1, ...]``.
        input_shape: shape of one input.
        device: where to compute.
        num_iter: maximum Lanczos steps.
        tol: relative residual tolerance.
        seed: seed of the start vector.

    Returns:
        The operator norm.
    """
    shape = (1, *input_shape)
    dim = math.prod(input_shape)
    zeros = torch.zeros(shape, dtype=torch.float64, device=device)
    _, transpose = torch.func.vjp(fn, zeros)  # T is linear: its VJP does not depend on the point

    def normal_matvec(v: Tensor) -> Tensor:
        (tv,) = transpose(fn(v.reshape(shape)))
        return tv.reshape(1, dim)

    generator = torch.Generator().manual_seed(seed)
    solver = lanczos if (num_iter + 2) * dim * 8 <= _LANCZOS_MEMORY else power_iteration
    result = solver(
        normal_matvec, 1, dim, num_iter=num_iter, tol=tol, generator=generator, device=device
    )
    if not bool(result.converged.all()):
        logger.warning(
            "%s reached %d iterations with relative residual %.2g for an operator on %s; the "
            "residual is added to the value",
            solver.__name__,
            num_iter,
            float(result.residual[0] / result.values[0].clamp_min(1e-300)),
            input_shape,
        )
    residual = float(result.residual[0]) if math.isfinite(float(result.residual[0])) else 0.0
    return math.sqrt(max(float(result.values[0]) + residual, 0.0))


def conv_operator_norm(
    conv: nn.Module, input_shape: tuple[int, ...], scale: Tensor | None = None
) -> float:
    """Exact ``σ_max`` of a convolution (bias dropped) on inputs of ``input_shape``.

    Args:
        conv: ``Conv1d``, ``Conv2d`` or ``Conv3d`` (any padding mode, stride, dilation, groups).
        input_shape: ``(C, *spatial)`` of one input.
        scale: optional per-output-channel factor (a folded eval-mode BatchNorm).
    """
    weight = conv.weight.detach().to(torch.float64)
    if scale is not None:
        weight = weight * scale.to(weight).reshape(-1, *([1] * (weight.ndim - 1)))
    return linear_operator_norm(
        lambda v: conv._conv_forward(v, weight, None), input_shape, device=weight.device
    )


def batchnorm_scale(bn: nn.modules.batchnorm._BatchNorm) -> Tensor:
    """Per-channel factor ``γ / √(σ² + ε)`` of an eval-mode BatchNorm (float64)."""
    if bn.running_var is None:
        raise ValueError(
            f"{type(bn).__name__} has no running statistics (track_running_stats=False): its "
            "output depends on the batch, and no per-input Lipschitz constant exists."
        )
    scale = 1.0 / torch.sqrt(bn.running_var.detach().to(torch.float64) + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().to(torch.float64)
    return scale


def window_multiplicity(
    size: int,
    kernel: int,
    stride: int,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Largest number of pooling windows one input position falls in, along one axis.

    Windows follow PyTorch's pooling arithmetic: ``out = ⌊(size + 2p − d(k − 1) − 1)/s⌋ + 1``
    (``⌈·⌉`` with ``ceil_mode``, dropping a last window that would start in the right padding).
    """
    span = dilation * (kernel - 1) + 1
    num = size + 2 * padding - span
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    counts = [0] * size
    for i in range(out):
        for j in range(kernel):
            pos = i * stride - padding + j * dilation
            if 0 <= pos < size:
                counts[pos] += 1
    return max(counts) if counts else 0


def adaptive_multiplicity(size: int, out: int) -> int:
    """Largest number of adaptive-pooling windows one position falls in, along one axis.

    PyTorch's window ``i`` is ``[⌊i·size/out⌋, ⌈(i+1)·size/out⌉)``; when ``out > size`` (an
    enlarging pool) positions are copied into several outputs.
    """
    counts = [0] * size
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        for pos in range(start, end):
            counts[pos] += 1
    return max(counts)


def max_pool_lipschitz(multiplicities: list[int]) -> float:
    """``√(Π m_axis)``, the Lipschitz constant of a max pool.

    Each output moves by at most the largest move in its window, and each input position is
    counted in at most ``Π m_axis`` windows.
    """
    return math.sqrt(math.prod(multiplicities))


def min_variance(lo: Tensor, hi: Tensor, iterations: int = 100) -> Tensor:
    """Smallest variance ``(1/D)Σ(x_j − x̄)²`` over the box ``lo ≤ x ≤ hi``, per row ``[N, D]``.

    ``Var(x) = min_c (1/D)Σ(x_j − c)²``, so the minimum over the box is
    ``min_c g(c)/D`` with ``g(c) = Σ_j dist(c, [lo_j, hi_j])²`` convex in ``c``. The minimiser is
    bracketed by bisection on ``g'``; convexity (``g(c*) ≥ g(c) − |g'(c)|·|c − c*|``) turns the
    bracket into a lower bound, so the result never exceeds the true minimum.
    """
    lo, hi = lo.to(torch.float64), hi.to(torch.float64)

    def g(c: Tensor) -> Tensor:
        return ((lo - c).clamp_min(0) ** 2 + (c - hi).clamp_min(0) ** 2).sum(-1, keepdim=True)

    def dg(c: Tensor) -> Tensor:
        return 2 * ((c - hi).clamp_min(0) - (lo - c).clamp_min(0)).sum(-1, keepdim=True)

    a, b = lo.min(-1, keepdim=True).values, hi.max(-1, keepdim=True).values
    for _ in range(iterations):
        mid = 0.5 * (a + b)
        right = dg(mid) > 0
        b = torch.where(right, mid, b)
        a = torch.where(right, a, mid)
    mid = 0.5 * (a + b)
    bound = g(mid) - dg(mid).abs() * (b - a)
    return (bound.clamp_min(0.0) / lo.shape[-1])[..., 0]


def layernorm_lipschitz(norm: nn.LayerNorm, variance_floor: float = 0.0) -> float:
    """``max|γ| / √(v + ε)``: LayerNorm's Lipschitz constant on inputs with variance at least ``v``.

    With ``σ = √(Var(x) + ε)`` the Jacobian of ``(x − x̄)/σ`` is
    ``(1/σ)(P − u uᵀ/(D σ²))`` (``P`` the centring projector, ``u = P x``), whose eigenvalues lie
    in ``[0, 1/σ]``; ``γ`` scales rows. With ``v = 0`` this is the global constant ``max|γ|/√ε``.
    """
    gamma = 1.0 if norm.weight is None else float(norm.weight.detach().abs().max())
    return gamma / math.sqrt(variance_floor + norm.eps)


def layernorm_output_bounds(norm: nn.LayerNorm) -> tuple[Tensor, Tensor, float]:
    """What LayerNorm's output can be, whatever its input.

    The normalised vector ``ẑ`` has mean 0 and ``‖ẑ‖² = D·Var/(Var + ε) < D``, so
    ``|ẑ_j| ≤ √(D − 1)`` and ``‖γ⊙ẑ + β‖ ≤ max|γ|·√D + ‖β‖``.

    Returns:
        Elementwise lower and upper bounds (shape ``normalized_shape``) and the row-norm bound.
    """
    shape = tuple(norm.normalized_shape)
    dim = math.prod(shape)
    gamma = (
        torch.ones(shape, dtype=torch.float64)
        if norm.weight is None
        else norm.weight.detach().double()
    )
    beta = (
        torch.zeros(shape, dtype=torch.float64)
        if norm.bias is None
        else norm.bias.detach().double()
    )
    gamma, beta = gamma.to(beta.device), beta
    reach = gamma.abs() * math.sqrt(max(dim - 1, 0))
    row_norm = float(gamma.abs().max()) * math.sqrt(dim) + float(beta.norm())
    return beta - reach, beta + reach, row_norm


def attention_projections(mha: nn.MultiheadAttention) -> tuple[Tensor, ...]:
    """``W_q, W_k, W_v`` (``E × E``) and their biases, float64."""
    e = mha.embed_dim
    if mha._qkv_same_embed_dim:
        w_q, w_k, w_v = mha.in_proj_weight.detach().double().split(e)
    else:
        w_q, w_k, w_v = (mha.q_proj_weight.detach().double(), mha.k_proj_weight.detach().double(),
                         mha.v_proj_weight.detach().double())
    if mha.in_proj_bias is None:
        zero = torch.zeros(e, dtype=torch.float64, device=w_q.device)
        b_q = b_k = b_v = zero
    else:
        b_q, b_k, b_v = mha.in_proj_bias.detach().double().split(e)
    return w_q, w_k, w_v, b_q, b_k, b_v


def attention_lipschitz(mha: nn.MultiheadAttention, num_tokens: int, radius: float) -> float:
    """Local ℓ2 Lipschitz bound of multi-head self-attention for tokens with ``‖x_i‖ ≤ R``.

    Per head ``h`` (``q_i = W_q x_i + b_q``, likewise ``k``, ``v``; ``P = softmax(QKᵀ/√d_h)``
    row-wise; ``Y = P V``), with ``n`` tokens, ``R_q = ‖W_q‖R + ‖b_q‖`` and
    ``R_k = ‖W_k‖R + ‖b_k‖``:

    * ``P dV``: a row-stochastic ``P`` has ``‖P‖₂ ≤ √(‖P‖₁‖P‖_∞) ≤ √n``: ``√n ‖W_v‖``;
    * ``dP V``: row ``i`` is ``ds_iᵀ M_i V`` with ``M_i = diag(p_i) − p_i p_iᵀ``;
      ``‖M_i V‖ ≤ ‖M_i^{1/2}‖ · sup_u Var_{p_i}(v_j·u)^{1/2} ≤ ‖W_v‖R/√2``, and
      ``‖ds_i‖ ≤ (√n R_k‖W_q‖‖dx_i‖ + R_q‖W_k‖‖dX‖)/√d_h``; summing squares over ``i``
      gives ``‖W_v‖ R √(n/d_h) √(R_k²‖W_q‖² + R_q²‖W_k‖²)``.

    ``L_h`` is their sum; the heads are concatenated and projected:
    ``L ≤ ‖W_o‖ √(Σ_h L_h²)``. Dot-product attention has no global constant (Kim et al.,
    https://arxiv.org/abs/2006.04710): the bound grows like ``R²``.

    Args:
        mha: the attention module (self-attention: query = key = value).
        num_tokens: ``n``.
        radius: ``R``, a bound on every token's ℓ2 norm.
    """
    heads, e = mha.num_heads, mha.embed_dim
    d_h = e // heads
    w_q, w_k, w_v, b_q, b_k, _ = attention_projections(mha)
    total = 0.0
    for h in range(heads):
        rows = slice(h * d_h, (h + 1) * d_h)
        nq, nk, nv = (matrix_spectral_norm(w[rows]) for w in (w_q, w_k, w_v))
        r_q = nq * radius + float(b_q[rows].norm())
        r_k = nk * radius + float(b_k[rows].norm())
        value_path = math.sqrt(num_tokens) * nv
        score_path = (
            nv * radius * math.sqrt(num_tokens / d_h) * math.sqrt((r_k * nq) ** 2 + (r_q * nk) ** 2)
        )
        total += (value_path + score_path) ** 2
    return matrix_spectral_norm(mha.out_proj.weight) * math.sqrt(total)


def attention_output_bounds(
    mha: nn.MultiheadAttention, lo: Tensor, hi: Tensor
) -> tuple[Tensor, Tensor]:
    """Elementwise bounds of self-attention's output when its input lies in ``[lo, hi]``.

    Each output token is a convex combination of the value vectors, so before the output
    projection every coordinate lies between the smallest lower and the largest upper bound of
    that value coordinate over all tokens; affine maps take centre and radius.
    """
    _, _, w_v, _, _, b_v = attention_projections(mha)
    seq = 1 if mha.batch_first else 0
    centre, radius = (lo + hi) / 2, (hi - lo) / 2
    v_centre, v_radius = F.linear(centre, w_v, b_v), F.linear(radius, w_v.abs())
    v_lo = (v_centre - v_radius).amin(dim=seq, keepdim=True).expand_as(v_centre)
    v_hi = (v_centre + v_radius).amax(dim=seq, keepdim=True).expand_as(v_centre)
    w_o = mha.out_proj.weight.detach().double()
    b_o = None if mha.out_proj.bias is None else mha.out_proj.bias.detach().double()
    o_centre = F.linear((v_lo + v_hi) / 2, w_o, b_o)
    o_radius = F.linear((v_hi - v_lo) / 2, w_o.abs())
    return o_centre - o_radius, o_centre + o_radius
