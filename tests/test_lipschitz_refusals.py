"""Prove or refuse: each class of model the bound once got silently wrong, one by one.

Every case was a certified number below an exhibited one: an exact float64 ``‖J(x)‖₂`` above
the bound, or an input inside the certified radius where the prediction changes. Each is now
either bounded soundly (checked against the exact value, or against the witness) or refused with
a message that names the node and says what to do. The numbers follow the classes of the issue
that found them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from art.defences.postprocessor import HighConfidence, ReverseSigmoid
from art.defences.preprocessor import SpatialSmoothing
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_fim import UnsupportedDefenceError, fisher_spectral_norm
from art_fim.lipschitz import (
    UnsupportedLayerError,
    certified_accuracy,
    certified_fisher_bound,
    certified_radius,
    lipschitz_bound,
)
from lipschitz_cases import jacobian_norm


def flip_distance(model: nn.Module, x: torch.Tensor, direction: torch.Tensor) -> float:
    """The smallest ``t`` on a grid of 4000 steps up to ``‖direction‖`` where the prediction at
    ``x + t u`` (``u`` the unit direction) differs from the one at ``x``: a witness distance.
    """
    unit = direction / direction.norm()
    steps = torch.linspace(0, float(direction.norm()), 4001, dtype=torch.float64)[1:]
    with torch.no_grad():
        base = model(x[None].double()).argmax(1)
        moved = x[None].double() + steps.reshape(-1, *[1] * x.dim()) * unit.reshape(1, *x.shape)
        labels = model(moved).argmax(1)
    changed = torch.nonzero(labels != base)
    return float(steps[changed[0, 0]]) if len(changed) else math.inf


class Pair(nn.Module):
    """``b(body(a(x)))`` with a seeded ``Linear(4, 4)`` ``a`` and ``Linear(4, 2)`` ``b``."""

    def __init__(self, body) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 4).double(), nn.Linear(4, 2).double()
        self.body = body

    def forward(self, x):
        return self.b(self.body(self.a(x)))


# ------------------------------------------------------------------ 1: in-place and views
class InPlace(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 4).double(), nn.Linear(4, 2).double()
        self.how = how

    def forward(self, x):
        h = self.a(x)
        if self.how == "result unused":
            h.mul_(100.0)
        elif self.how == "through a view":
            v = h.view(-1)
            v.mul_(100.0)
        elif self.how == "copy_":
            h.copy_(100 * h)
        elif self.how == "setitem":
            h[:, 0] = 100 * h[:, 1]
        elif self.how == "inplace module":
            nn.functional.relu(h, inplace=True)
        return self.b(h)


@pytest.mark.parametrize(
    "how", ["result unused", "through a view", "copy_", "setitem", "inplace module"]
)
def test_an_in_place_change_read_afterwards_is_refused(how):
    """``h.mul_(100); return b(h)`` once got 0.538 against an exact 39.3."""
    model = InPlace(how).eval()
    x = torch.linspace(-1, 1, 4, dtype=torch.float64)
    exact = jacobian_norm(model, x)
    refused = "in place|No ℓ2 Lipschitz rule|could not trace"
    with pytest.raises(UnsupportedLayerError, match=refused):
        value = lipschitz_bound(model, (4,)).value
        pytest.fail(f"bounded at {value} (exact ‖J‖ = {exact})")


class Residual(nn.Module):
    """torchvision's pattern: ``out = relu_(bn(conv(x))); out += identity; relu_(out)``."""

    def __init__(self, in_place: bool) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv1d(2, 2, 3, padding=1).double()
        self.relu = nn.ReLU(inplace=in_place)
        self.in_place = in_place

    def forward(self, x):
        identity = x
        out = self.relu(self.conv(x))
        if self.in_place:
            out += identity
        else:
            out = out + identity
        return nn.functional.relu(out, inplace=self.in_place).flatten(1)


def test_in_place_changes_that_nothing_reads_afterwards_are_proven():
    """Chains of in-place ops whose old values nobody reads: the same bound as out of place."""
    in_place = lipschitz_bound(Residual(True).eval(), (2, 5))
    out_of_place = lipschitz_bound(Residual(False).eval(), (2, 5))
    assert in_place.value == pytest.approx(out_of_place.value, rel=1e-12)
    x = torch.linspace(-1, 1, 10, dtype=torch.float64).reshape(2, 5)
    # The same function; autograd needs the out-of-place one (ReLU's output is overwritten).
    assert jacobian_norm(Residual(False).eval(), x) <= in_place.value * (1 + 1e-9)


class Drift(nn.Module):
    """A network that changes its own weights or buffers at every call."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)
        self.register_buffer("calls", torch.zeros(()))
        self.how = how

    def forward(self, x):
        if self.how == "buffer":
            self.calls.add_(1.0)
        else:
            self.linear.weight.data.mul_(2.0)
        return self.linear(x) * (1 + 0 * self.calls)


@pytest.mark.parametrize("how", ["buffer", "data"])
def test_a_network_that_changes_its_parameters_or_buffers_is_refused(how):
    with pytest.raises(UnsupportedLayerError, match=r"in place|\.data"):
        lipschitz_bound(Drift(how).eval(), (3,))


# ------------------------------------------------------------------ 2: hooks
def _scale_output(module, inputs, output):
    return 100 * output


def _scale_input(module, inputs):
    return (100 * inputs[0],)


@pytest.mark.parametrize("where", ["leaf forward", "leaf pre", "root forward", "backward"])
def test_hooks_are_refused(where):
    """A forward hook scaling a leaf Linear by 100 once gave 0.54 against an exact 44.3."""
    model = Pair(nn.ReLU()).eval()
    if where == "leaf forward":
        model.a.register_forward_hook(_scale_output)
    elif where == "leaf pre":
        model.b.register_forward_pre_hook(_scale_input)
    elif where == "root forward":
        model.register_forward_hook(_scale_output)
    else:
        model.a.register_full_backward_hook(lambda m, gi, go: None)
    with pytest.raises(UnsupportedLayerError, match="hook"):
        lipschitz_bound(model, (4,))


def test_a_global_hook_is_refused():
    handle = nn.modules.module.register_module_forward_hook(_scale_output)
    try:
        with pytest.raises(UnsupportedLayerError, match="global module hook"):
            lipschitz_bound(Pair(nn.ReLU()).eval(), (4,))
    finally:
        handle.remove()


def test_a_hook_added_after_bounding_is_refused_by_the_certificates():
    """The witness: with the hook, the prediction flips far inside the radius the bound of the
    hook-free model would certify; the certified functions refuse instead.
    """
    model = Pair(nn.ReLU()).eval()
    bound = lipschitz_bound(model, (4,))
    model.a.register_forward_hook(_scale_output)
    x = np.linspace(-1, 1, 4).reshape(1, 4)
    with pytest.raises(UnsupportedLayerError, match="hook"):
        certified_radius(model, x, bound)


# ------------------------------------------------------------------ 3: Python scalars
class Escape(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2).double()
        self.how = how

    def forward(self, x):
        if self.how == "item":
            return self.fc(x) * x[:, 0].mean().item()
        if self.how == "tolist":
            return self.fc(x) * x[:, 0].mean().tolist()
        if self.how == "float":
            return self.fc(x) * float(x.sum())
        return self.fc(x).view(int(x.sum()) + 1, -1)


@pytest.mark.parametrize("how", ["item", "tolist", "float", "int"])
def test_python_values_taken_from_the_input_are_refused(how):
    """``fc(x) * x[:, 0].mean().item()`` once got the bound 0.0 and an infinite radius."""
    with pytest.raises(UnsupportedLayerError, match="Python value|could not trace"):
        lipschitz_bound(Escape(how).eval(), (4,))


def test_a_shape_taken_from_the_input_is_a_constant():
    """``x.view(x.size(0), -1)`` and ``len(x)`` read the shape only: proven, bound σ_max(W)."""

    class Shapes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 3).double()

        def forward(self, x):
            return self.fc(x.view(x.size(0), -1)).reshape(len(x), x.shape[0] * 3)

    model = Shapes().eval()
    sigma = float(torch.linalg.matrix_norm(model.fc.weight.detach(), ord=2))
    assert lipschitz_bound(model, (2, 3)).value == pytest.approx(sigma, rel=1e-12)


# ------------------------------------------------------------------ 4: non-Lipschitz operations
class Rounding(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3).double()
        self.how = how

    def forward(self, x):
        h = self.fc(x)
        if self.how == "floor division":
            return torch.div(h, 0.01, rounding_mode="floor")
        if self.how == "integer cast":
            return h.to(torch.int64).double()
        if self.how == "half cast":
            return h.half().double()
        if self.how == "round":
            return torch.round(h)
        if self.how == "comparison":
            return (h > 0).double()
        return h.sign()


@pytest.mark.parametrize(
    "how", ["floor division", "integer cast", "half cast", "round", "comparison", "sign"]
)
def test_rounding_casting_and_comparing_are_refused(how):
    """``torch.div(x, 0.01, rounding_mode="floor")`` once got 65.4 where two close inputs gave a
    ratio of 9.6e5; ``.to(torch.int64)`` was read as a reshape.
    """
    with pytest.raises(UnsupportedLayerError, match="rounding_mode|casts|No ℓ2 Lipschitz rule"):
        lipschitz_bound(Rounding(how).eval(), (4,))


def test_casts_between_float32_and_float64_are_the_identity():
    class Casts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x.float()).double().to(torch.float32).to(x)

    model = Casts().eval()
    sigma = float(torch.linalg.matrix_norm(model.fc.weight.detach().double(), ord=2))
    assert lipschitz_bound(model, (4,)).value == pytest.approx(sigma, rel=1e-12)


# ------------------------------------------------------------------ 5: argument ranges
@pytest.mark.parametrize(
    "layer,match",
    [
        (nn.CELU(alpha=-1.0), "alpha=-1.0"),
        (nn.ELU(alpha=-0.5), "alpha=-0.5"),
        (nn.Softplus(), "threshold=20"),
        (nn.LeakyReLU(math.inf), "negative_slope=inf"),
        (nn.GELU(approximate="tanh"), None),
        (nn.CELU(alpha=2.0), None),
    ],
)
def test_constructor_arguments_outside_a_rules_range_are_refused(layer, match):
    """``nn.CELU(alpha=-1)`` once got the constant 1 (exact 121.6); in range, the bound holds."""
    model = Pair(layer).eval()
    if match is not None:
        with pytest.raises(UnsupportedLayerError, match=match):
            lipschitz_bound(model, (4,))
        return
    bound = lipschitz_bound(model, (4,)).value
    for seed in range(5):
        x = torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert jacobian_norm(model, 3 * x) <= bound * (1 + 1e-9)


def test_celu_with_a_negative_alpha_breaks_a_constant_of_one():
    """Why the range matters: the exact slope of CELU(α = −1) far exceeds 1."""
    model = nn.Sequential(nn.CELU(alpha=-1.0)).double().eval()
    assert jacobian_norm(model, torch.full((1,), -3.0, dtype=torch.float64)) > 10


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda h: nn.functional.celu(h, -1.0), "alpha=-1.0"),
        (lambda h: nn.functional.elu(h, alpha=-1.0), "alpha=-1.0"),
        (lambda h: nn.functional.softplus(h, 1.0, 5.0), "threshold"),
        (lambda h: torch.add(h, h, alpha=math.nan), "alpha=nan"),
        (lambda h: torch.mean(h, 1, True, dtype=torch.float16), "dtype"),
        (lambda h: torch.add(h, h, out=torch.empty(1, 4, dtype=torch.float64)),
         "arguments its rule|in place"),
    ],
)
def test_function_arguments_outside_a_rules_range_are_refused(call, match):
    class Call(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4).double()

        def forward(self, x):
            return call(self.fc(x))

    with pytest.raises(UnsupportedLayerError, match=match):
        lipschitz_bound(Call().eval(), (4,))


class Loud(nn.ReLU):
    """A subclass of a supported layer with its own forward, living where fx keeps layers whole."""

    def forward(self, x):
        return 100 * super().forward(x)


Loud.__module__ = "torch.nn.modules.loud"  # fx treats torch.nn's own modules as leaves


def test_a_subclass_of_a_supported_layer_is_not_read_as_its_parent():
    """Rules match exact types: read as a ReLU, ``Loud`` would get 1 where its slope is 100."""
    model = Pair(Loud()).eval()
    with pytest.raises(UnsupportedLayerError, match="No ℓ2 Lipschitz rule.*Loud"):
        lipschitz_bound(model, (4,))


# ------------------------------------------------------------------ 6: custom_layers
def test_a_custom_batchnorm_after_a_conv_keeps_the_convs_constant():
    """``custom_layers`` for a BatchNorm that follows a conv once dropped the conv's constant
    (0.64 against 9.74): the bound is now σ_max(conv) × the declared constant, above the exact.
    """
    torch.manual_seed(2)
    conv = nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.mul_(5)
    bn = nn.BatchNorm2d(2).eval()
    model = nn.Sequential(conv, bn, nn.Flatten()).double().eval()
    shape = (1, 4, 4)
    conv_norm = jacobian_norm(nn.Sequential(conv, nn.Flatten()).double(), torch.zeros(shape))
    scale = float((bn.weight / torch.sqrt(bn.running_var + bn.eps)).abs().max())
    bound = lipschitz_bound(model, shape, custom_layers={nn.BatchNorm2d: scale})
    assert bound.value == pytest.approx(conv_norm * scale, rel=1e-6)
    assert bound.value >= jacobian_norm(model, torch.zeros(shape)) * (1 - 1e-9)


# ------------------------------------------------------------------ 7: defences
def _classifier(**options) -> tuple[PyTorchClassifier, nn.Module]:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    classifier = PyTorchClassifier(model, nn.CrossEntropyLoss(), (4,), 3, clip_values=(-2.0, 2.0),
                                   device_type="cpu", **options)
    return classifier, model


@pytest.mark.parametrize(
    "options",
    [{"postprocessing_defences": [HighConfidence(0.5)]},
     {"postprocessing_defences": [ReverseSigmoid()]},
     {"preprocessing_defences": [SpatialSmoothing()]}],
    ids=["HighConfidence", "ReverseSigmoid", "SpatialSmoothing"],
)
def test_the_certified_functions_refuse_predict_time_defences(options):
    """``HighConfidence(0.5)`` once certified 0.30 where the prediction changed at 0.10."""
    classifier, model = _classifier(**options)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 4)).astype(np.float32)
    for certify in (certified_radius, certified_fisher_bound):
        with pytest.raises(UnsupportedDefenceError, match="defences"):
            certify(classifier, x, 1.0)
    with pytest.raises(UnsupportedDefenceError, match="defences"):
        certified_accuracy(classifier, x, np.zeros(5, dtype=int), 0.1, bound=1.0)


# ------------------------------------------------------------------ 8: bound reuse
class FullyConvolutional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(6)
        self.conv = nn.Conv1d(1, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean(-1)


def test_a_bound_for_another_input_shape_is_refused():
    """Computed on shape (1, 1), used on (1, 64): it once certified 0.15 where the prediction
    flipped at 0.087. The bound of the right shape certifies radii that no flip undercuts, along
    the margin's gradient.
    """
    model = FullyConvolutional().double().eval()
    x = torch.randn(3, 1, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"shape \(1, 1\).*\(1, 64\)"):
        certified_radius(model, x.numpy(), lipschitz_bound(model, (1, 1)))
    radius = certified_radius(model, x.numpy(), lipschitz_bound(model, (1, 64)))
    for xi, r in zip(x, radius):
        jac = torch.func.jacrev(lambda t: model(t[None])[0])(xi).reshape(2, -1)
        with torch.no_grad():
            z = model(xi[None])[0]
        towards_flip = (jac[1] - jac[0]) if z[0] > z[1] else (jac[0] - jac[1])
        distance = flip_distance(model, xi, towards_flip / towards_flip.norm() * 50 * r)
        assert r <= distance * (1 + 1e-6)


def test_a_bound_of_the_bare_model_is_refused_for_a_standardising_classifier():
    """``lipschitz_bound(classifier.model)`` with ``preprocessing`` std 0.1: 10× too far."""
    classifier, model = _classifier(preprocessing=(0.0, 0.1))
    x = np.random.default_rng(2).uniform(-1, 1, (4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="preprocessing"):
        certified_radius(classifier, x, lipschitz_bound(model, (4,)))
    own = lipschitz_bound(classifier)
    sigma = float(torch.linalg.matrix_norm(model[0].weight.detach().double(), ord=2))
    assert own.value == pytest.approx(10 * sigma, rel=1e-6)
    certified_radius(classifier, x, own)  # its own bound is accepted


def test_a_bound_of_other_weights_is_refused():
    classifier, model = _classifier()
    bound = lipschitz_bound(classifier)
    with torch.no_grad():
        model[0].weight.mul_(3)
    x = np.zeros((1, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="other weights"):
        certified_radius(classifier, x, bound)


# ------------------------------------------------------------------ 9: confident inputs
def test_the_fisher_bound_stays_positive_and_above_the_exact_value_at_confident_inputs():
    """Logit gaps up to 38: ``1 − p_max`` once rounded to 0 (bound 0 against an exact 9.4e-15).
    For two classes and ``z = Wx``: ``λ_max(F) = p₁p₂‖w₁ − w₂‖²`` and the bound is
    ``min(½, 2(1 − p_max))‖W‖₂²`` with ``1 − p_max = σ(−gap)``, computed in log space.
    """
    weight = torch.tensor([[1.0, 0.5, 0.0], [-1.0, 0.25, 0.5]], dtype=torch.float64)
    model = nn.Sequential(nn.Linear(3, 2, bias=False)).double().eval()
    with torch.no_grad():
        model[0].weight.copy_(weight)
    x = np.array([[g / 2, 0.0, 0.0] for g in (0.5, 5.0, 20.0, 38.0)])
    gaps = x[:, 0] * 2
    certified = certified_fisher_bound(model, x, output_type="logits")
    lipschitz = float(torch.linalg.matrix_norm(weight, ord=2))
    rest = 1.0 / (1.0 + np.exp(gaps))  # σ(−gap)
    np.testing.assert_allclose(certified, np.minimum(0.5, 2 * rest) * lipschitz**2, rtol=1e-9)
    exact = rest * (1 - rest) * float((weight[0] - weight[1]).norm() ** 2)
    assert np.all(certified > 0) and np.all(certified >= exact)
    fisher = fisher_spectral_norm(model, x, method="exact", verbose=False, output_type="logits")
    assert np.all(certified >= fisher)


def test_the_binary_fisher_bound_stays_positive_at_confident_inputs():
    model = nn.Sequential(nn.Linear(2, 1, bias=False)).double().eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
    x = np.array([[40.0, 0.0], [-40.0, 0.0], [800.0, 0.0]])
    certified = certified_fisher_bound(model, x, output_type="logits")
    expected = np.exp(-np.abs(x[:, 0])) / (1 + np.exp(-np.abs(x[:, 0]))) ** 2
    np.testing.assert_allclose(certified[:2], expected[:2], rtol=1e-12)
    assert certified[0] > 0 and certified[2] >= 0


# ------------------------------------------------------------------ poor errors
class Keywords(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.fc = nn.Linear(4, 4).double()
        self.register_buffer("matrix", torch.randn(4, 3, dtype=torch.float64))
        self.how = how

    def forward(self, x):
        h = self.fc(x)
        if self.how == "add":
            return torch.add(h, other=h)
        if self.how == "cat":
            return torch.cat(tensors=[h, h], dim=1)
        return torch.matmul(input=h, other=self.matrix)


@pytest.mark.parametrize("how,factor", [("add", 2.0), ("cat", math.sqrt(2)), ("matmul", None)])
def test_keyword_calls_bind_as_positional_ones(how, factor):
    """``torch.add(a, other=b)`` and ``torch.cat(tensors=[...])`` crashed with IndexError;
    ``torch.matmul(input=, other=)`` was refused as a product with itself.
    """
    model = Keywords(how).eval()
    sigma = float(torch.linalg.matrix_norm(model.fc.weight.detach(), ord=2))
    if factor is None:
        factor = float(torch.linalg.matrix_norm(model.matrix, ord=2))
    assert lipschitz_bound(model, (4,)).value == pytest.approx(factor * sigma, rel=1e-9)


def test_half_precision_inputs_are_certified_as_float32():
    classifier, _ = _classifier()
    x = np.random.default_rng(3).uniform(-1, 1, (5, 4)).astype(np.float16)
    bound = lipschitz_bound(classifier)
    np.testing.assert_allclose(
        certified_radius(classifier, x, bound),
        certified_radius(classifier, x.astype(np.float32), bound), rtol=1e-7,
    )


def test_declared_logits_that_are_exactly_zero_or_one_are_logits():
    """``[1, 0, 0]`` declared as logits: the margin is 1, the radius ``1 / (√2 L)``."""

    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("logits", torch.tensor([1.0, 0.0, 0.0]))

        def forward(self, x):
            return self.logits.expand(len(x), 3) + 0 * x[:, :1]

    x = np.zeros((2, 3), dtype=np.float32)
    radius = certified_radius(Constant().eval(), x, 2.0, output_type="logits")
    np.testing.assert_allclose(radius, 1 / (math.sqrt(2) * 2.0))


@pytest.mark.parametrize(
    "labels,eps,norm,match",
    [(np.zeros(4, dtype=int), 0.1, True, "norm is boolean"),
     (np.zeros(4, dtype=int), True, 2, "eps is boolean"),
     (np.zeros(4, dtype=bool), 0.1, 2, "y is boolean"),
     (np.zeros(4, dtype=int), 0.1, 2, None)],
)
def test_booleans_are_not_numbers_or_labels(labels, eps, norm, match):
    classifier, _ = _classifier()
    x = np.zeros((4, 4), dtype=np.float32)
    if match is None:
        assert 0.0 <= certified_accuracy(classifier, x, labels, eps, norm=norm) <= 1.0
        return
    with pytest.raises(ValueError, match=match):
        certified_accuracy(classifier, x, labels, eps, norm=norm)


def test_a_parametrized_layer_is_bounded_by_its_computed_weight():
    """``torch.nn.utils.parametrize`` (the hook-free way to reparametrise): spectral
    normalisation makes ``σ_max(W) = 1``, and the rule reads the computed weight.
    """
    torch.manual_seed(8)
    layer = nn.utils.parametrizations.spectral_norm(nn.Linear(5, 4)).eval()
    for _ in range(50):  # converge the power iteration in training mode, then freeze it
        layer.train()(torch.randn(1, 5))
    layer.eval()
    model = nn.Sequential(layer).double().eval()
    sigma = float(torch.linalg.matrix_norm(model[0].weight.detach(), ord=2))
    assert lipschitz_bound(model, (5,)).value == pytest.approx(sigma, rel=1e-9)
    assert sigma == pytest.approx(1.0, rel=1e-3)
