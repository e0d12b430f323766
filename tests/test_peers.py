"""Peer scores against closed forms (linear softmax model) and against ART's GreatScorePyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from art.evaluations.great_score import GreatScorePyTorch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from leaderboard.data import CIFAR10_MEAN, CIFAR10_STD, bundled_cifar10
from leaderboard.peers import gradient_norm, great_score, logit_margin, peer_scores
from leaderboard.small_cnn import load_classifier

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (2, 3, 3)  # d = 18
K = 5


def linear_model(seed: int) -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """``z = W x + b`` on flattened inputs, float64, and its ``W`` and ``b``."""
    generator = torch.Generator().manual_seed(seed)
    layer = nn.Linear(int(np.prod(SHAPE)), K).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(K, layer.in_features, generator=generator).double())
        layer.bias.copy_(torch.randn(K, generator=generator).double())
    model = nn.Sequential(nn.Flatten(), layer).eval()
    return model, layer.weight.detach().numpy(), layer.bias.detach().numpy()


def draw(seed: int, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, *SHAPE)), rng.integers(0, K, n)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_logit_margin_is_the_closed_form_on_a_linear_model(seed: int) -> None:
    model, w, b = linear_model(seed)
    x, y = draw(seed)
    z = x.reshape(len(x), -1) @ w.T + b
    others = np.where(np.eye(K, dtype=bool)[y], -np.inf, z)
    expected = z[np.arange(len(y)), y] - others.max(1)
    peer = logit_margin(model, x, y, batch_size=7)
    np.testing.assert_allclose(peer.values, expected, rtol=1e-12, atol=1e-12)
    assert peer.score == pytest.approx(np.median(expected), abs=1e-12)
    # The sign says whether the prediction is right; where it is, the value is top-1 minus top-2.
    correct = z.argmax(1) == y
    assert np.array_equal(peer.values > 0, correct)
    top = np.sort(z, 1)
    np.testing.assert_allclose(peer.values[correct], (top[:, -1] - top[:, -2])[correct],
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["Linf", "L2"]))
def test_gradient_norm_is_the_closed_form_on_a_linear_model(seed: int, threat: str) -> None:
    model, w, b = linear_model(seed)
    x, y = draw(seed)
    p = softmax(x.reshape(len(x), -1) @ w.T + b)
    grad = (p - np.eye(K)[y]) @ w  # ∇_x CE = Wᵀ (p − e_y)
    expected = np.abs(grad).sum(1) if threat == "Linf" else np.linalg.norm(grad, axis=1)
    peer = gradient_norm(model, x, y, threat_model=threat, batch_size=7)
    np.testing.assert_allclose(peer.values, expected, rtol=1e-10, atol=1e-12)
    assert peer.score == pytest.approx(np.median(expected), rel=1e-10)
    assert peer.higher_is_robust is False
    assert peer.provenance["gradient_norm"] == {"Linf": "l1", "L2": "l2"}[threat]


@pytest.fixture(scope="module")
def bundled() -> tuple[PyTorchClassifier, np.ndarray, np.ndarray]:
    """The bundled standard CNN, loaded as the examples load it, and 100 test images."""
    x, y = bundled_cifar10(100)
    return load_classifier(ROOT / "examples" / "models" / "small_cnn_standard.pt"), x, y


def test_great_score_is_arts_on_the_softmax_of_the_bundled_cnn(bundled) -> None:
    classifier, x, y = bundled
    one_hot = np.eye(10, dtype=np.float32)[y]
    # ART's class on a probability-output classifier built the plain way: the same network
    # with a softmax layer, ART's own normalisation preprocessing.
    probabilities = PyTorchClassifier(
        model=nn.Sequential(classifier.model, nn.Softmax(dim=-1)), loss=nn.NLLLoss(),
        input_shape=(3, 32, 32), nb_classes=10, clip_values=(0.0, 1.0),
        preprocessing=(np.array(CIFAR10_MEAN), np.array(CIFAR10_STD)), device_type="cpu",
    )
    art_score, art_accuracy = GreatScorePyTorch(probabilities).evaluate(x, one_hot)
    peer = great_score(classifier, x, y, batch_size=32)
    assert peer.score == pytest.approx(float(art_score), abs=1e-6)
    assert peer.provenance["accuracy"] == pytest.approx(float(art_accuracy))
    # ...and ART's class on the logits (what it returns for a plain classifier) is another number.
    on_logits, _ = GreatScorePyTorch(classifier).evaluate(x, one_hot)
    assert abs(on_logits - peer.score) > 0.1


def test_great_score_is_the_probability_gap_over_correct_inputs(bundled) -> None:
    classifier, x, y = bundled
    p = softmax(classifier.predict(x).astype(np.float64))  # logits → probabilities by hand
    top = np.sort(p, 1)
    expected = np.where(p.argmax(1) == y, top[:, -1] - top[:, -2], 0.0)
    assert 0 < (expected == 0).sum() < len(y)  # both kinds of input are present
    peer = great_score(classifier, x, y, batch_size=32)
    np.testing.assert_allclose(peer.values, expected, rtol=0, atol=1e-6)
    assert peer.score == pytest.approx(expected.mean(), abs=1e-6)
    assert peer.score == pytest.approx(expected[expected > 0].sum() / len(y), abs=1e-6)


def test_peer_scores_take_a_module_or_a_classifier_alike(bundled) -> None:
    classifier, x, y = bundled
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    class Normalised(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return classifier.model((t - mean) / std)

    module = Normalised().eval()
    for name, (a, b) in {
        key: (value, peer_scores(module, x[:40], y[:40], threat_model="L2")[key])
        for key, value in peer_scores(classifier, x[:40], y[:40], threat_model="L2").items()
    }.items():
        np.testing.assert_allclose(a.values, b.values, rtol=1e-4, atol=1e-5, err_msg=name)
        assert a.to_json()["n"] == 40 and a.seconds_per_image > 0


def test_a_model_in_training_mode_is_refused() -> None:
    model, _, _ = linear_model(0)
    x, y = draw(0)
    with pytest.raises(ValueError, match="training mode"):
        logit_margin(model.train(), x, y)


def test_the_committed_peer_scores_cover_every_zoo_result_and_reproduce() -> None:
    import json

    from leaderboard.zoo.weights import load_model

    results = ROOT / "benchmarks" / "results" / "peers" / "cifar10"
    zoo = ROOT / "leaderboard" / "results" / "zoo" / "cifar10"
    fisher_files = sorted(zoo.glob("*/*.json"))
    assert len(fisher_files) == 36
    for path in fisher_files:
        record = json.loads((results / path.parent.name / path.name).read_text())
        fisher = json.loads(path.read_text())
        assert record["images"]["pixels_sha256"] == fisher["images"]["pixels_sha256"]
        assert set(record["peers"]) == {"great_score", "logit_margin", "gradient_norm"}
    # One model recomputed: the committed numbers are this code's.
    record = json.loads((results / "L2" / "vgg_standard.json").read_text())["peers"]
    x, y = bundled_cifar10(500)
    scores = peer_scores(load_model("vgg_standard"), x, y, threat_model="L2")
    for name, peer in scores.items():
        assert peer.score == pytest.approx(record[name]["score"], rel=1e-5), name


def test_the_zoo_results_carry_the_peers_the_benchmark_computed() -> None:
    """Every committed zoo result holds all three peers, with cost and provenance, and their scores
    equal the ones ``benchmarks/peers_vs_autoattack.py`` computed on the same images.

    The two come from separate runs (the leaderboard's baselines and the benchmark), so this also
    checks that the leaderboard passes the peers the same model, images and labels.
    """
    import json

    from art_fim.norms import norm_name

    results = ROOT / "benchmarks" / "results" / "peers" / "cifar10"
    zoo = ROOT / "leaderboard" / "results" / "zoo" / "cifar10"
    fisher_files = sorted(zoo.glob("*/*.json"))
    assert len(fisher_files) == 36
    for path in fisher_files:
        baselines = json.loads(path.read_text())["baselines"]
        expected = json.loads((results / path.parent.name / path.name).read_text())["peers"]
        threat = norm_name(path.parent.name)
        for name in ("great_score", "logit_margin", "gradient_norm"):
            entry = baselines[name][threat] if name == "gradient_norm" else baselines[name]
            assert entry["n"] == 500 and entry["seconds_per_image"] > 0, (path, name)
            assert entry["higher_is_robust"] == expected[name]["higher_is_robust"]
            assert entry["provenance"]["aggregate"] == expected[name]["provenance"]["aggregate"]
            assert entry["score"] == pytest.approx(expected[name]["score"], rel=1e-6), (path, name)
