"""Per-layer ℓ2 Lipschitz constants against materialised operators and dense Jacobians.

Linear maps (Linear, convolutions, BatchNorm folded into a convolution, average and adaptive
pooling) must match the largest singular value of their materialised matrix to 1e-5; nonlinear
layers (max pooling, activations, LayerNorm, attention) must dominate the exact Jacobian norm at
sampled points, and their interval rules must contain the sampled outputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from art_fim.lipschitz import UnsupportedLayerError, lipschitz_bound
from art_fim.lipschitz import operators as ops
from lipschitz_cases import randomise_norms


def materialised_norm(layer: nn.Module, shape: tuple[int, ...],
                      at: torch.Tensor | None = None) -> float:
    """σ_max of the Jacobian of ``layer`` (float64) at ``at`` (zeros by default), by SVD."""
    x = torch.zeros(shape, dtype=torch.float64) if at is None else at
    jac = torch.func.jacrev(lambda t: layer(t[None])[0])(x).detach()
    return float(torch.linalg.matrix_norm(jac.reshape(-1, x.numel()), ord=2))


def bound_of(layer: nn.Module, shape: tuple[int, ...], **kwargs) -> float:
    return lipschitz_bound(layer.eval(), shape, **kwargs).value


def test_linear_constant_is_its_largest_singular_value():
    torch.manual_seed(0)
    layer = nn.Linear(40, 13).double()
    assert bound_of(layer, (40,)) == pytest.approx(materialised_norm(layer, (40,)), rel=1e-5)


CONVS = {
    "3x3 pad 1": (dict(in_channels=3, out_channels=5, kernel_size=3, padding=1), (3, 9, 9)),
    "stride 2": (dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1),
                 (4, 10, 10)),
    "5x5 no pad": (dict(in_channels=2, out_channels=3, kernel_size=5), (2, 11, 11)),
    "dilation 2": (dict(in_channels=3, out_channels=4, kernel_size=3, dilation=2, padding=2),
                   (3, 8, 8)),
    "groups 2": (dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, padding=1),
                 (4, 7, 7)),
    "circular": (dict(in_channels=3, out_channels=3, kernel_size=3, padding=1,
                      padding_mode="circular"), (3, 8, 8)),
    "reflect": (dict(in_channels=3, out_channels=4, kernel_size=3, padding=1,
                     padding_mode="reflect"), (3, 8, 8)),
    "patchify": (dict(in_channels=3, out_channels=8, kernel_size=4, stride=4), (3, 12, 12)),
}


@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv_constant_is_the_operator_norm_on_the_input_shape(case):
    """The exact σ_max of the convolution as a matrix on that input size (not a kernel norm)."""
    options, shape = CONVS[case]
    torch.manual_seed(1)
    conv = nn.Conv2d(**options).double()
    assert bound_of(conv, shape) == pytest.approx(materialised_norm(conv, shape), rel=1e-5)


def test_conv_constant_depends_on_the_input_size():
    """A 3×3 convolution on a 1×1 map only sees its centre tap: σ_max(W[:, :, 1, 1])."""
    torch.manual_seed(2)
    conv = nn.Conv2d(4, 5, 3, padding=1, bias=False).double()
    centre = float(torch.linalg.matrix_norm(conv.weight.detach()[:, :, 1, 1], ord=2))
    assert bound_of(conv, (4, 1, 1)) == pytest.approx(centre, rel=1e-6)
    assert bound_of(conv, (4, 16, 16)) > centre


@pytest.mark.parametrize("kind", ["Conv2d", "Conv1d", "Linear"])
def test_batchnorm_folds_into_the_preceding_linear_layer(kind):
    """conv → BN is one linear map: its constant is σ_max of the composition, below the product."""
    torch.manual_seed(3)
    if kind == "Conv2d":
        layer, bn, shape = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), (3, 8, 8)
    elif kind == "Conv1d":
        layer, bn, shape = nn.Conv1d(3, 6, 3, padding=1), nn.BatchNorm1d(6), (3, 12)
    else:
        layer, bn, shape = nn.Linear(10, 6), nn.BatchNorm1d(6), (10,)
    model = randomise_norms(nn.Sequential(layer, bn), seed=3).double().eval()
    result = lipschitz_bound(model, shape)
    assert [r.layer for r in result.layers] == [f"{kind}+{type(bn).__name__}"]
    assert result.value == pytest.approx(materialised_norm(model, shape), rel=1e-5)
    separate = bound_of(nn.Sequential(layer), shape) * float(ops.batchnorm_scale(bn).abs().max())
    assert result.value <= separate * (1 + 1e-9)


def test_batchnorm_not_after_a_linear_layer_uses_its_largest_scale():
    """Pre-activation BN (BN → ReLU → conv) cannot be folded: max |γ|/√(σ² + ε) exactly."""
    bn = randomise_norms(nn.BatchNorm2d(5), seed=4).double().eval()
    assert bound_of(nn.Sequential(bn, nn.ReLU()), (5, 3, 3)) == pytest.approx(
        float((bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)).abs().max()), rel=1e-12
    )


POOLS = {
    "avg 2": (nn.AvgPool2d(2), (2, 8, 8)),
    "avg 3 stride 2 pad 1": (nn.AvgPool2d(3, stride=2, padding=1), (2, 9, 9)),
    "avg 3 stride 2 ceil, no pad count": (nn.AvgPool2d(3, 2, 1, ceil_mode=True,
                                                       count_include_pad=False), (1, 8, 8)),
    "adaptive avg shrink 8->3": (nn.AdaptiveAvgPool2d(3), (2, 8, 8)),
    "adaptive avg enlarge 4->7": (nn.AdaptiveAvgPool2d(7), (2, 4, 4)),
    "adaptive avg enlarge 1->7": (nn.AdaptiveAvgPool2d((7, 7)), (3, 1, 1)),
    "adaptive avg 1d": (nn.AdaptiveAvgPool1d(5), (2, 7)),
    "upsample nearest": (nn.Upsample(scale_factor=2), (2, 3, 3)),
}


@pytest.mark.parametrize("case", sorted(POOLS))
def test_linear_pooling_constant_is_its_operator_norm(case):
    """Average pooling is linear: σ_max exactly, including an adaptive pool that enlarges a map."""
    pool, shape = POOLS[case]
    assert bound_of(pool, shape) == pytest.approx(materialised_norm(pool, shape), rel=1e-5)


def brute_force_multiplicity(pool, shape: tuple[int, ...]) -> int:
    """Windows per position, counted by pooling each one-hot input (max over a window = 1 iff
    inside).
    """
    counts = []
    for i in range(math.prod(shape)):
        onehot = torch.zeros(math.prod(shape), dtype=torch.float64)
        onehot[i] = 1.0
        counts.append(int(pool(onehot.reshape(1, 1, *shape)).sum()))
    return max(counts)


@pytest.mark.parametrize(
    "options",
    [dict(kernel_size=2), dict(kernel_size=3, stride=2), dict(kernel_size=3, stride=2, padding=1),
     dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=3, stride=1, padding=1),
     dict(kernel_size=2, stride=1, dilation=2), dict(kernel_size=(3, 2), stride=(2, 1),
                                                     padding=(1, 0))],
)
def test_max_pool_window_count_matches_brute_force(options):
    pool = nn.MaxPool2d(**options)
    shape = (7, 8)
    n = 2
    k, s = ops_tuple(options["kernel_size"], n), ops_tuple(options.get("stride",
                                                                       options["kernel_size"]), n)
    p, d = ops_tuple(options.get("padding", 0), n), ops_tuple(options.get("dilation", 1), n)
    mults = [ops.window_multiplicity(shape[i], k[i], s[i], p[i], d[i],
                                     options.get("ceil_mode", False))
             for i in range(n)]
    assert math.prod(mults) == brute_force_multiplicity(pool, shape)
    assert bound_of(pool, (1, *shape)) == pytest.approx(math.sqrt(math.prod(mults)))


def ops_tuple(value, n):
    return tuple(value) if isinstance(value, tuple) else (value,) * n


@pytest.mark.parametrize("size,out", [(7, 3), (8, 3), (4, 7), (1, 7), (5, 5), (6, 4)])
def test_adaptive_max_pool_window_count_matches_brute_force(size, out):
    pool = nn.AdaptiveMaxPool2d((out, 1))
    assert ops.adaptive_multiplicity(size, out) == brute_force_multiplicity(pool, (size, 1))


def test_max_pool_bound_dominates_local_norms_and_is_exact_for_copying():
    """√(windows per position) ≥ ‖J(x)‖₂ at random points; an adaptive max pool 1×1 → 7×7 copies the
    input 49 times, a constant of exactly 7.
    """
    generator = torch.Generator().manual_seed(5)
    pool, shape = nn.MaxPool2d(3, stride=1, padding=1), (2, 6, 6)
    constant = bound_of(pool, shape)
    for _ in range(5):
        x = torch.randn(shape, generator=generator, dtype=torch.float64)
        assert materialised_norm(pool, shape, at=x) <= constant + 1e-9
    enlarge = nn.AdaptiveMaxPool2d(7)
    assert bound_of(enlarge, (3, 1, 1)) == pytest.approx(7.0)
    assert (
        materialised_norm(enlarge, (3, 1, 1), at=torch.ones(3, 1, 1, dtype=torch.float64))
        == pytest.approx(7.0)
    )


ACTIVATIONS = {
    "gelu": (F.gelu, ops.GELU), "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"),
                                              ops.GELU_TANH),
    "silu": (F.silu, ops.SILU), "mish": (F.mish, ops.MISH),
    "hardswish": (F.hardswish, ops.HARDSWISH),
    "sigmoid": (torch.sigmoid, ops.SIGMOID), "tanh": (torch.tanh, ops.MONOTONE_1),
    "softplus": (F.softplus, ops.MONOTONE_1), "hardsigmoid": (F.hardsigmoid, ops.HARDSIGMOID),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_constants_are_sup_of_the_derivative(name):
    """sup|φ'| on a fine float64 grid is at most the constant and within 1e-5 of it; the recorded
    minimum is a lower bound of φ and is attained near the recorded argmin.
    """
    fn, act = ACTIVATIONS[name]
    t = torch.linspace(-20, 20, 2_000_001, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(fn(t).sum(), t)
    measured = float(grad.abs().max())
    assert measured <= act.lipschitz <= measured + 1e-5
    values = fn(t.detach())
    if act.argmin > -math.inf:
        assert float(values.min()) >= act.minimum
        assert (
            float(fn(torch.tensor(act.argmin, dtype=torch.float64)))
            == pytest.approx(act.minimum, abs=1e-5)
        )
        lo = torch.tensor([-3.0, -0.2, act.argmin - 0.5, 0.5])
        hi = torch.tensor([-2.0, 0.3, act.argmin + 0.5, 2.0])
        lower, upper = ops.activation_interval(fn, act, lo.double(), hi.double())
        for a, b, low, high in zip(lo, hi, lower, upper):
            samples = fn(torch.linspace(float(a), float(b), 1001, dtype=torch.float64))
            assert (
                float(samples.min()) >= float(low) - 1e-12
                and float(samples.max()) <= float(high) + 1e-12
            )


def test_min_variance_is_a_lower_bound_and_exact_on_a_point():
    generator = torch.Generator().manual_seed(6)
    centre = torch.randn(20, 12, generator=generator, dtype=torch.float64)
    width = torch.rand(20, 12, generator=generator, dtype=torch.float64) * 0.5
    lo, hi = centre - width, centre + width
    floor = ops.min_variance(lo, hi)
    samples = lo + (hi - lo) * torch.rand(500, 20, 12, generator=generator, dtype=torch.float64)
    assert bool((samples.var(dim=-1, unbiased=False) >= floor - 1e-12).all())
    assert torch.allclose(ops.min_variance(centre, centre), centre.var(dim=-1, unbiased=False),
                          rtol=1e-9)
    # A box containing a constant vector has minimum variance 0.
    assert float(ops.min_variance(torch.full((1, 5), -1.0), torch.full((1, 5), 1.0))) == 0.0


def test_layernorm_bounds_hold_on_the_box():
    """Global max|γ|/√ε; on a box whose rows keep their variance, the local constant dominates
    ‖J(x)‖₂ at sampled points, and LayerNorm's outputs respect its output box and row norm.
    """
    generator = torch.Generator().manual_seed(7)
    norm = randomise_norms(nn.LayerNorm(8), seed=7).double().eval()
    assert bound_of(norm, (3, 8)) == pytest.approx(
        float(norm.weight.abs().max()) / math.sqrt(norm.eps)
    )
    centre = torch.randn(3, 8, generator=generator, dtype=torch.float64) * 2
    lo, hi = centre - 0.1, centre + 0.1
    result = lipschitz_bound(norm, (3, 8), input_box=(lo.numpy(), hi.numpy()))
    assert result.local and result.value < 10
    out_lo, out_hi, row_norm = ops.layernorm_output_bounds(norm)
    for _ in range(20):
        x = lo + (hi - lo) * torch.rand(3, 8, generator=generator, dtype=torch.float64)
        assert materialised_norm(norm, (3, 8), at=x) <= result.value + 1e-9
        y = norm(torch.randn(3, 8, generator=generator, dtype=torch.float64) * 5)
        assert (
            bool(((y >= out_lo) & (y <= out_hi)).all()) and float(y.norm(dim=-1).max()) <= row_norm
        )


@pytest.mark.parametrize("batch_first", [True, False])
def test_attention_local_bound_dominates_the_jacobian_in_the_box(batch_first):
    """Self-attention on tokens with ‖x_i‖ ≤ R: the bound ≥ ‖J(x)‖₂ at random points and at the
    box's corners (where R is reached), and its output box contains the sampled outputs.
    """
    generator = torch.Generator().manual_seed(8)
    torch.manual_seed(8)
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first).double().eval()
    with torch.no_grad():
        mha.in_proj_weight.mul_(3.0)  # sharp attention, far from uniform

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = mha

        def forward(self, x):
            if not batch_first:
                x = x.transpose(0, 1)
            out = self.mha(x, x, x, need_weights=False)[0]
            return out if batch_first else out.transpose(0, 1)

    model = SelfAttention().eval()
    shape = (5, 8)
    with pytest.raises(UnsupportedLayerError, match="input_box"):
        lipschitz_bound(model, shape)
    lo, hi = -torch.ones(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)
    result = lipschitz_bound(model, shape, input_box=(-1.0, 1.0))
    assert result.local
    points = [lo + (hi - lo) * torch.rand(shape, generator=generator, dtype=torch.float64)
              for _ in range(10)]
    points += [torch.where(torch.rand(shape, generator=generator) < 0.5, lo, hi) for _ in range(10)]
    seq_lo, seq_hi = (lo[:, None] if not batch_first else lo[None]), (hi[:, None] if not batch_first
                                                                      else hi[None])
    out_lo, out_hi = ops.attention_output_bounds(mha, seq_lo, seq_hi)
    for x in points:
        assert materialised_norm(model, shape, at=x) <= result.value
        seq = x[:, None] if not batch_first else x[None]
        y = mha(seq, seq, seq, need_weights=False)[0]
        assert bool(((y >= out_lo - 1e-12) & (y <= out_hi + 1e-12)).all())


def test_compositions_are_exact_for_linear_pieces():
    """Residual x + Wx: 1 + ‖W‖; dense concatenation [x, Wx]: √(1 + ‖W‖²), which is exactly
    ‖[I; W]‖; normalisation (x − μ)/σ: max 1/σ, exactly.
    """
    torch.manual_seed(9)
    w = nn.Linear(6, 6, bias=False).double()
    norm_w = float(torch.linalg.matrix_norm(w.weight.detach(), ord=2))

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = w

        def forward(self, x):
            return x + self.w(x)

    class Dense(Residual):
        def forward(self, x):
            return torch.cat([x, self.w(x)], dim=1)

    class Normalised(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.1, 0.2, 0.3]).reshape(1, 3, 1))
            self.register_buffer("std", torch.tensor([0.2, 0.5, 0.25]).reshape(1, 3, 1))

        def forward(self, x):
            return ((x - self.mean) / self.std).flatten(1)

    assert bound_of(Residual(), (6,)) == pytest.approx(1 + norm_w, rel=1e-5)
    assert bound_of(Dense(), (6,)) == pytest.approx(math.sqrt(1 + norm_w**2), rel=1e-5)
    assert bound_of(Dense(), (6,)) == pytest.approx(materialised_norm(Dense(), (6,)), rel=1e-5)
    assert bound_of(Normalised(), (3, 4)) == pytest.approx(5.0, rel=1e-6)


def test_repeated_operands_count_twice():
    """x + x = 2x and cat([x, x]) copies x: 2 and √2, exactly."""

    class Double(nn.Module):
        def forward(self, x):
            return x + x

    class Twice(nn.Module):
        def forward(self, x):
            return torch.cat([x, x], dim=1)

    assert bound_of(Double(), (5,)) == pytest.approx(2.0)
    assert bound_of(Twice(), (5,)) == pytest.approx(math.sqrt(2.0))


def test_broadcast_and_expand_count_copies():
    """Adding a (1 × d) input-dependent row to a (k × d) constant copies it k times: √k."""

    class Broadcast(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("base", torch.zeros(4, 3))

        def forward(self, x):
            return (self.base + x[:, None, :]).flatten(1)

    class Expand(nn.Module):
        def forward(self, x):
            return x[:, None, :].expand(-1, 9, -1).flatten(1)

    assert bound_of(Broadcast(), (3,)) == pytest.approx(2.0)
    assert bound_of(Expand(), (3,)) == pytest.approx(3.0)
    assert bound_of(Expand(), (3,)) == pytest.approx(materialised_norm(Expand(), (3,)))


def test_unsupported_layers_are_named():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.Hardshrink(), nn.Linear(5, 3)).eval()
    with pytest.raises(
        UnsupportedLayerError, match=r"layer '2' \(torch\.nn\.modules\.activation\.Hardshrink\)"
    ):
        lipschitz_bound(model, (3, 4))
    declared = lipschitz_bound(model, (3, 4), custom_layers={nn.Hardshrink: 1.0})
    assert declared.value > 0 and any(r.layer == "Hardshrink" for r in declared.layers)

    class Square(nn.Module):
        def forward(self, x):
            return x * x

    with pytest.raises(UnsupportedLayerError, match="input-dependent tensors has no global"):
        lipschitz_bound(Square().eval(), (4,))

    class CumSum(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, dim=1)

    with pytest.raises(UnsupportedLayerError, match="cumsum"):
        lipschitz_bound(CumSum().eval(), (4,))


def test_bad_calls_say_what_to_do():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="eval"):
        lipschitz_bound(model.train(), (3,))
    with pytest.raises(ValueError, match="input_shape"):
        lipschitz_bound(model.eval())
    with pytest.raises(TypeError, match="nn.Module or an ART PyTorchClassifier"):
        lipschitz_bound(np.zeros(3), (3,))
    with pytest.raises(ValueError, match="low > high"):
        lipschitz_bound(model, (3,), input_box=(1.0, 0.0))


def test_in_place_change_of_a_shared_tensor_is_refused():
    """h.mul_(3) changes h for every reader, which the traced graph does not show: refused."""

    class Mutating(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            h = self.lin(x)
            y = h.mul_(3.0)
            return h + y

    with pytest.raises(UnsupportedLayerError, match="in place"):
        lipschitz_bound(Mutating().eval(), (4,))


def test_functional_linear_layers_with_constant_weights():
    """F.linear, x @ C and F.conv2d with weights held as parameters: σ_max of the operator, and
    interval bounds that contain sampled outputs.
    """

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            generator = torch.Generator().manual_seed(10)
            self.kernel = nn.Parameter(torch.randn(4, 3, 3, 3, generator=generator,
                                                   dtype=torch.float64))
            self.bias = nn.Parameter(torch.randn(4, generator=generator, dtype=torch.float64))
            self.matrix = nn.Parameter(torch.randn(64, 7, generator=generator, dtype=torch.float64))
            self.weight = nn.Parameter(torch.randn(5, 7, generator=generator, dtype=torch.float64))

        def forward(self, x):
            h = F.conv2d(x, self.kernel, self.bias, stride=2, padding=1).flatten(1)
            return F.linear(h @ self.matrix, self.weight)

    model = Functional().eval()
    shape = (3, 8, 8)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1).double()
    conv.weight.data = model.kernel.data
    expected = (
        materialised_norm(conv, shape)
        * float(torch.linalg.matrix_norm(model.matrix.detach(), ord=2))
        * float(torch.linalg.matrix_norm(model.weight.detach(), ord=2))
    )
    result = lipschitz_bound(model, shape, input_box=(0.0, 1.0))
    assert result.value == pytest.approx(expected, rel=1e-5)
    assert result.value >= materialised_norm(model, shape)
    lower, upper = output_box(model, shape, (0.0, 1.0))
    for seed in range(5):
        y = model(torch.rand(1, *shape, generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64))
        assert bool((y >= lower - 1e-9).all() and (y <= upper + 1e-9).all())


def output_box(model: nn.Module, shape: tuple[int, ...], box: tuple[float, float]):
    """Interval bounds of the model's output over the input box (the walk's own propagation)."""
    import copy

    from art_fim.lipschitz.graph import _box_tensors, _Propagation, trace

    gm = trace(copy.deepcopy(model).double())
    boxes = _box_tensors(box, shape, torch.device("cpu"))
    propagation = _Propagation(gm, boxes, {})
    with torch.no_grad():
        propagation.run(boxes[0].clone())
    out = next(n for n in gm.graph.nodes if n.op == "output")
    return propagation.bounds[out].lower, propagation.bounds[out].upper


def test_unknown_operation_inside_a_custom_layer_names_the_layer():
    class Swish(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x)

    model = nn.Sequential(nn.Linear(3, 3), Swish()).eval()
    with pytest.raises(UnsupportedLayerError, match=r"inside layer '1' \(.*Swish\)"):
        lipschitz_bound(model, (3,))
    declared = lipschitz_bound(model, (3,), custom_layers={Swish: ops.SILU.lipschitz})
    assert declared.value == pytest.approx(
        ops.SILU.lipschitz * float(torch.linalg.matrix_norm(model[0].weight.detach(), ord=2))
    )
