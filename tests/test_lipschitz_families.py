"""Every supported family: the bound dominates the exact local ‖J(x)‖₂, and the certified Fisher
bound dominates the exact λ_max(F(x)), on random inputs and on real CIFAR-10 images.

Both sides are exact: ``‖J(x)‖₂`` and ``λ_max(F(x))`` come from the ``K`` Jacobian rows of
:class:`art_fim.jacobian.InputJacobian`; the bound from the traced graph. The families are small
instances of torchvision's VGG / ResNet / DenseNet / ViT, RobustBench's WideResNet and
PreActResNet (with its leading normalisation), the zoo's four architectures and the bundled CNN.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_fim import adapter_for, exact_spectral_norm, fisher_spectral_norm
from art_fim.lipschitz import (
    certified_accuracy,
    certified_fisher_bound,
    certified_radius,
    jacobian_spectral_norm,
    lipschitz_bound,
    tightness,
)
from leaderboard.data import CIFAR10_MEAN, CIFAR10_STD, bundled_cifar10
from leaderboard.zoo.architectures import Normalize
from lipschitz_cases import FAMILIES, ROOT, make_family, small_cnn

# float32 Jacobians against float64 bounds: room for rounding only.
_RTOL = 1e-5


@pytest.fixture(scope="module")
def real_images() -> np.ndarray:
    """Six bundled CIFAR-10 test images (six classes), [0, 1] pixels."""
    return bundled_cifar10(6)[0]


def _inputs(shape: tuple[int, ...], real: np.ndarray) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(0)
    return {
        "random": generator.random((4, *shape), dtype=np.float32),
        "real": np.ascontiguousarray(real[:, :, : shape[1], : shape[2]]),
        # crops for 16×16 families
    }


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_bound_dominates_local_norm_and_fisher(name, real_images):
    model, shape = make_family(name)
    bound = lipschitz_bound(model, shape, input_box=(0.0, 1.0))
    assert bound.local == ("vit" in name)  # attention: a bound on the pixel box only
    for kind, x in _inputs(shape, real_images).items():
        local = jacobian_spectral_norm(model, x)
        assert local.max() <= bound.value * (1 + _RTOL), (
            f"{kind}: ‖J‖ = {local.max()} > L = {bound.value}"
        )
        jac = adapter_for(model, "logits").jacobian(x)
        fisher = exact_spectral_norm(jac).numpy()
        p_max = jac.probs.max(dim=1).values.numpy()
        # λ_max(F) ≤ λ_max(M)‖J‖² ≤ min(½, 2(1 − p_max))‖J‖² ≤ min(½, 2(1 − p_max)) L².
        assert np.all(fisher <= np.minimum(0.5, 2 * (1 - p_max)) * local**2 * (1 + _RTOL) + 1e-30)
        assert np.all(fisher <= certified_fisher_bound(model, x, bound) * (1 + _RTOL))


def test_tightness_is_the_ratio_to_the_largest_local_norm(real_images):
    model, shape = make_family("zoo_resnet9")
    result = tightness(model, real_images)
    local = jacobian_spectral_norm(model, real_images)
    assert result.local_max == pytest.approx(local.max())
    assert result.ratio == pytest.approx(result.bound / local.max()) and result.ratio >= 1


def _bundled_classifier() -> tuple[PyTorchClassifier, nn.Module]:
    model = small_cnn()
    state = torch.load(ROOT / "examples" / "models" / "small_cnn_standard.pt", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    classifier = PyTorchClassifier(
        model=model.eval(), loss=nn.CrossEntropyLoss(), input_shape=(3, 32, 32), nb_classes=10,
        clip_values=(0.0, 1.0), preprocessing=(np.array(CIFAR10_MEAN), np.array(CIFAR10_STD)),
        device_type="cpu",
    )
    return classifier, model


def test_trained_classifier_with_preprocessing(real_images):
    """A trained bundled CNN through ART: the standardisation is part of the bound (the same
    value as with the normalisation inside the model), and both certificates hold on real
    images, where confident predictions make 2(1 − p_max) the binding factor.
    """
    classifier, model = _bundled_classifier()
    bound = lipschitz_bound(classifier)
    inside = lipschitz_bound(nn.Sequential(Normalize(), model).eval(), (3, 32, 32))
    assert bound.value == pytest.approx(inside.value, rel=1e-9)
    assert bound.layers[0].layer == "scale by constant"
    assert bound.layers[0].constant == pytest.approx(1 / min(CIFAR10_STD), rel=1e-6)
    x = real_images
    local = jacobian_spectral_norm(classifier, x)
    assert local.max() <= bound.value
    fisher = fisher_spectral_norm(classifier, x, method="exact", verbose=False)
    certified = certified_fisher_bound(classifier, x, bound)
    assert np.all(fisher <= certified)
    assert certified.min() < 0.5 * bound.value**2  # some confident input: the 2(1 − p_max) branch


def test_certified_radius_is_never_broken_by_a_gradient_step(real_images):
    """Within the certified ℓ2 radius no perturbation flips the prediction: the step of length
    0.99 r along the steepest margin descent (the most damaging first-order direction) leaves the
    predicted class unchanged, on a trained model.
    """
    classifier, _ = _bundled_classifier()
    bound = lipschitz_bound(classifier)
    x = real_images
    radius = certified_radius(classifier, x, bound)
    pred = classifier.predict(x).argmax(1)
    jac = adapter_for(classifier).jacobian(x)
    rows = torch.stack([jac.vjp(torch.eye(10, dtype=jac.dtype)[k].expand(len(x), -1))
                        for k in range(10)], 1)
    for i in range(len(x)):
        runner = np.argsort(classifier.predict(x[i : i + 1])[0])[-2]
        direction = (rows[i, runner] - rows[i, pred[i]]).numpy().reshape(x[i].shape)
        step = 0.99 * radius[i] * direction / np.linalg.norm(direction)
        assert classifier.predict((x[i] + step)[None].astype(np.float32)).argmax() == pred[i]


def test_certified_accuracy_counts_correct_and_certified(real_images):
    """ε = 0 certifies every correct prediction; a radius above every input's certifies none;
    ℓ∞ ε is the ℓ2 radius √d ε.
    """
    classifier, _ = _bundled_classifier()
    x, y = bundled_cifar10(20)
    bound = lipschitz_bound(classifier)
    radius = certified_radius(classifier, x, bound)
    correct = classifier.predict(x).argmax(1) == y
    assert certified_accuracy(classifier, x, y, 0.0, bound=bound) == pytest.approx(correct.mean())
    assert certified_accuracy(classifier, x, y, radius.max() * 1.01, bound=bound) == 0.0
    eps = float(np.median(radius[correct]))
    d = x[0].size
    assert certified_accuracy(classifier, x, y, eps / np.sqrt(d), norm=np.inf,
                              bound=bound) == pytest.approx(
        certified_accuracy(classifier, x, y, eps, bound=bound)
    )
    one_hot = np.eye(10)[y]
    assert certified_accuracy(classifier, x, one_hot, eps, bound=bound) == certified_accuracy(
        classifier, x, y, eps, bound=bound
    )


def test_local_bound_refuses_inputs_outside_its_box(real_images):
    model, shape = make_family("zoo_vit")
    bound = lipschitz_bound(model, shape, input_box=(0.0, 1.0))
    with pytest.raises(ValueError, match="box"):
        certified_radius(model, real_images + 2.0, bound)


@pytest.mark.parametrize("name", ["zoo_vit", "torchvision_vit", "zoo_densenet",
                                  "torchvision_resnet"])
def test_interval_bounds_contain_every_node_value(name):
    """The box propagated through the graph (what LayerNorm's variance floor and attention's token
    radius rest on) contains every node's value at inputs sampled in the input box, corners
    included.
    """
    import copy

    from art_fim.lipschitz.graph import _box_tensors, _Propagation, trace

    model, shape = make_family(name)
    gm = trace(copy.deepcopy(model).double())
    box = _box_tensors((0.0, 1.0), shape, torch.device("cpu"))
    propagation = _Propagation(gm, box, {})
    with torch.no_grad():
        propagation.run(box[0].clone())

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            value = super().run_node(n)
            self.seen[n] = value.clone() if isinstance(value, torch.Tensor) else value
            return value

    generator = torch.Generator().manual_seed(0)
    samples = [torch.rand(1, *shape, generator=generator, dtype=torch.float64) for _ in range(4)]
    samples.append((torch.rand(1, *shape, generator=generator) < 0.5).double())
    for x in samples:
        recorder = Recorder(gm, garbage_collect_values=False)
        recorder.seen = {}
        with torch.no_grad():
            recorder.run(x)
        checked = 0
        for node, value in recorder.seen.items():
            bound = propagation.bounds.get(node)
            if (
                bound is None
                or bound.lower is None
                or not isinstance(value, torch.Tensor)
                or not value.is_floating_point()
            ):
                continue
            assert bool((value >= bound.lower - 1e-9).all()
                        and (value <= bound.upper + 1e-9).all()), node.name
            checked += 1
        assert checked > 10
