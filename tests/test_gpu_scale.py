"""Full float32 by default, the route chosen by cost for large label spaces, and the warm-up pass.

The precision tests run on the CPU: the three settings are process-wide flags, read inside the
model's forward pass to see what art_fim computes under. The CUDA test is skipped without a GPU.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from art_fim import (
    AverageCaseRobustness,
    FisherInformationMetric,
    expected_noise_kl,
    fisher_linf_bounds,
    fisher_spectral_norm,
    fisher_statistics,
    predicted_robust_accuracy,
)
from art_fim.competitors import nearest_competitors
from art_fim.jacobian import AutogradJacobian
from art_fim.margins import margin_dual_norms, margins
from art_fim.memory import prefers_matrix_free
from art_fim.precision import current_settings, precision_context

DEFAULTS = (True, False, "highest")  # PyTorch's: TF32 on for cuDNN convolutions only
FLOAT32 = (False, False, "highest")
TF32 = (True, True, "high")


@pytest.fixture(autouse=True)
def _pytorch_defaults():
    """Every test starts from PyTorch's defaults and leaves them as it found them."""
    saved = current_settings()
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True
    yield
    torch.set_float32_matmul_precision(saved[2])
    torch.backends.cuda.matmul.allow_tf32 = saved[1]
    torch.backends.cudnn.allow_tf32 = saved[0]


class SettingsSpy(nn.Module):
    """A small CNN that records the precision settings in force at each forward pass."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(),
                                 nn.Linear(4 * 8 * 8, classes))
        self.seen: list[tuple[bool, bool, str]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(current_settings())
        return self.net(x)


def _inputs(n: int = 3) -> np.ndarray:
    return np.random.default_rng(0).random((n, 3, 8, 8), dtype=np.float32)


def test_context_sets_and_restores_all_three_settings_also_after_an_exception():
    """Inside: TF32 off (float32) or on (tf32); after: the caller's values, however it ends."""
    torch.set_float32_matmul_precision("high")  # a caller's unusual choice, restored exactly
    torch.backends.cudnn.allow_tf32 = False
    caller = current_settings()
    assert caller == (False, True, "high")
    with precision_context("float32") as used:
        assert current_settings() == FLOAT32 and used == "float32"
    assert current_settings() == caller
    with precision_context("tf32"):
        assert current_settings() == TF32
        with precision_context("float32"):  # nested: the inner block restores the outer's
            assert current_settings() == FLOAT32
        assert current_settings() == TF32
    assert current_settings() == caller
    with pytest.raises(RuntimeError, match="inside"), precision_context("float32"):
        raise RuntimeError("inside")
    assert current_settings() == caller
    with pytest.raises(ValueError, match="precision must be 'float32'"), precision_context("fp16"):
        pass
    assert current_settings() == caller


@pytest.mark.skipif(not hasattr(torch.backends.cuda.matmul, "fp32_precision"),
                    reason="PyTorch < 2.9")
def test_a_mix_of_legacy_and_per_backend_settings_is_restored_exactly():
    """A caller whose settings the legacy getters refuse to read (PyTorch ≥ 2.9) gets every
    per-backend fp32_precision back as it was.
    """
    torch.set_float32_matmul_precision("medium")
    torch.backends.cuda.matmul.allow_tf32 = True  # now get_float32_matmul_precision() raises
    with pytest.raises(RuntimeError):
        current_settings()
    owners = (torch.backends.cuda.matmul, torch.backends.mkldnn.matmul, torch.backends.cudnn.conv)
    before = [owner.fp32_precision for owner in owners]
    with precision_context("float32"):
        assert current_settings() == FLOAT32
    assert [owner.fp32_precision for owner in owners] == before
    torch.set_float32_matmul_precision("highest")  # back to a state the fixture can read


@pytest.mark.parametrize("precision, expected", [("float32", FLOAT32), ("tf32", TF32)])
def test_every_entry_point_computes_in_the_asked_precision_and_restores(precision, expected):
    """λ_max (exact, Lanczos, power), trace (exact, Hutchinson), radii and refinement, the ℓ∞
    Fisher, noise KL and average-case robustness: every forward pass sees the asked settings,
    and the caller's defaults are back afterwards; results record the precision.
    """
    model = SettingsSpy().eval()
    x, y = _inputs(), np.array([0, 1, 2])
    calls = {
        "exact": lambda: fisher_spectral_norm(model, x, method="exact", verbose=False,
                                              precision=precision),
        "lanczos": lambda: fisher_spectral_norm(model, x, method="lanczos", verbose=False,
                                                precision=precision),
        "power": lambda: fisher_spectral_norm(model, x, method="power", verbose=False,
                                              precision=precision),
        "hutchinson": lambda: FisherInformationMetric(
            model, method="hutchinson", verbose=False, precision=precision).trace(x),
        "radii": lambda: predicted_robust_accuracy(model, x, y, 0.01, verbose=False,
                                                   precision=precision),
        "linf": lambda: fisher_linf_bounds(model, x, precision=precision),
        "noise_kl": lambda: expected_noise_kl(model, x, sigma=0.01, num_samples=4,
                                              precision=precision),
        "average_case": lambda: AverageCaseRobustness(
            model, sigma=0.01, verbose=False, precision=precision).estimate(x),
    }
    for name, call in calls.items():
        model.seen.clear()
        call()
        assert model.seen and set(model.seen) == {expected}, name
        assert current_settings() == DEFAULTS, name
    stats = fisher_statistics(model, x, y, verbose=False, precision=precision)
    assert stats.precision == stats.spectral_norm.precision == precision
    assert (
        FisherInformationMetric(model, verbose=False, precision=precision).estimate(x).precision
        == precision
    )


def test_bad_precision_is_refused_before_any_work():
    model = SettingsSpy().eval()
    with pytest.raises(ValueError, match="precision must be 'float32'"):
        FisherInformationMetric(model, precision="half")
    with pytest.raises(ValueError, match="precision must be 'float32'"):
        fisher_statistics(model, _inputs(), precision=None, verbose=False)
    assert model.seen == []


class WideHead(nn.Module):
    """A convolutional model with ``K = 1000`` outputs on 3×8×8 inputs (ImageNet's label space)."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.Softplus(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.Tanh(),
            nn.Flatten(), nn.Linear(8 * 4 * 4, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Sharper softmax: a few classes carry the mass, as in a trained model.
        return 3.0 * self.net(x)


@pytest.fixture(scope="module")
def wide():
    model = WideHead().eval()
    x = np.random.default_rng(2).random((4, 3, 8, 8), dtype=np.float32)
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    exact = fisher_statistics(model, x, y, method="exact", verbose=False)
    return model, x, y, exact


def test_large_label_spaces_take_the_cheaper_route_and_match_the_exact_one(wide):
    """K = 1000: auto takes Lanczos (cost, not memory), λ_max within 1e-4 of exact; the radii from
    the m nearest competitors equal the exact ones wherever the minimising competitor is kept.
    """
    model, x, y, exact = wide
    assert prefers_matrix_free(1000, 50) and not prefers_matrix_free(100, 50)
    stats = fisher_statistics(model, x, y, verbose=False)
    assert stats.spectral_norm.method == "lanczos" and stats.trace.method == "hutchinson"
    assert stats.competitors == 20 and stats.radius["linf"].method == "competitors=20"
    np.testing.assert_allclose(stats.spectral_norm.values, exact.spectral_norm.values, rtol=1e-4)
    # The trace from Hutchinson, whose 99.9% interval holds the exact value.
    low, high = stats.trace.interval(0.999)
    assert np.all((low <= exact.trace.values) & (exact.trace.values <= high))
    # Per competitor, the exact first-order ratio g_j / ‖∇g_j‖, from all K rows.
    jac = AutogradJacobian(model, torch.from_numpy(x))
    labels = torch.from_numpy(y)
    margin = margins(jac.logits, labels)
    kept = nearest_competitors(jac.logits, labels, 20)
    checked = 0
    for norm, key in ((math.inf, "linf"), (2.0, "l2")):
        ratio = (margin / margin_dual_norms(jac.rows(), labels,
                                            norm)).scatter(1, labels[:, None], math.inf)
        nearest = ratio.argmin(1)
        first = stats.radius[key].values
        assert np.all(first >= exact.radius[key].values)  # fewer competitors: never smaller
        for i in range(len(x)):
            if nearest[i] in kept[i]:
                assert first[i] == exact.radius[key].values[i]
                checked += 1
    # The minimising competitor is among the nearest 20 by margin for most inputs.
    assert checked >= 4
    # A run with every competitor kept gives the exact radii, first-order and refined, bit for bit.
    everything = fisher_statistics(model, x, y, method="lanczos", competitors=999, verbose=False)
    for key in ("linf", "l2"):
        np.testing.assert_array_equal(everything.radius[key].values, exact.radius[key].values)
        np.testing.assert_array_equal(everything.refined_radius[key].values,
                                      exact.refined_radius[key].values)


def test_the_exact_route_stays_one_argument_away(wide):
    model, x, y, exact = wide
    assert exact.spectral_norm.method == "exact" and exact.competitors == 999
    assert fisher_spectral_norm(model, x, verbose=False,
                                num_iter=600).shape == (4,)  # K ≤ 2·600: exact
    metric = FisherInformationMetric(model, verbose=False, num_iter=600)
    assert metric.estimate(x).method == "exact"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu_per_image_on_a_zoo_model():
    """A zoo model's per-image λ_max on the GPU (full float32) is within 1e-4 of the CPU's."""
    from leaderboard.data import bundled_cifar10
    from leaderboard.zoo.weights import load_model

    x, _ = bundled_cifar10(64)
    model = load_model("resnet9_pgd8")
    cpu = fisher_spectral_norm(model, x, method="exact", verbose=False)
    gpu = fisher_spectral_norm(model.cuda(), x, method="exact", verbose=False)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4)
