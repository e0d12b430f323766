"""TensorFlow and Keras classifiers through ART, and a TensorFlow process that scores safely.

The class_gradient route on ART's ``TensorFlowV2Classifier`` and ``KerasClassifier`` (Keras 3)
around a small CNN with per-channel standardisation, logits and softmax outputs, against two
independent references: the dense ``d × d`` Fisher from a float64 ``tf.GradientTape`` Jacobian
of the same network written in raw TensorFlow ops, and a float64 PyTorch twin scored by the
PyTorch route. The import-order tests run in fresh interpreters.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_fim import (
    FisherInformationMetric,
    fisher_spectral_norm,
    fisher_statistics,
    fisher_trace,
    triton_guard,
)
from art_fim.adapters import ClassGradientAdapter, _score_map_jacobian
from art_fim.logits import as_logits
from art_fim.triton_guard import keep_triton_out_beside_tensorflow

ROOT = Path(__file__).resolve().parents[1]
INPUT_SHAPE = (6, 6, 2)  # channels last, as Keras builds it
NUM_CLASSES = 5
MEAN = np.array([0.45, 0.55])
STD = np.array([0.25, 0.3])
# float32 networks against float64 references: agreement to a few float32 roundings (measured:
# λ_max and trace within 1.1e-6, the first-order radii within 2.9e-6).
RTOL = 2e-5


def _weights() -> dict[str, np.ndarray]:
    """Conv 3×3 (2 → 3 channels, tanh), then dense 48 → 5, Keras layouts."""
    rng = np.random.default_rng(37)
    return {
        "kernel": rng.normal(0.0, 0.6, (3, 3, 2, 3)),
        "bias": rng.normal(0.0, 0.1, 3),
        "dense": rng.normal(0.0, 0.5, (48, NUM_CLASSES)),
        "dense_bias": rng.normal(0.0, 0.1, NUM_CLASSES),
    }


@pytest.fixture(scope="module")
def tf() -> Any:
    """TensorFlow, loaded after Triton.

    The rest of the suite shares this process, and its torch.func calls load Triton, which
    crashes a process where TensorFlow came first (art_fim.triton_guard). The TensorFlow-first
    order is tested in a fresh interpreter below.
    """
    importlib.import_module("torch._dynamo")
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).random((6, *INPUT_SHAPE)).astype(np.float32)


def _keras_model(tf: Any, softmax: bool) -> Any:
    keras = tf.keras
    layers = [
        keras.Input(INPUT_SHAPE),
        keras.layers.Conv2D(3, 3, activation="tanh"),
        keras.layers.Flatten(),
        keras.layers.Dense(NUM_CLASSES),
    ]
    if softmax:
        layers.append(keras.layers.Softmax())
    model = keras.Sequential(layers)
    w = _weights()
    model.set_weights([w["kernel"], w["bias"], w["dense"], w["dense_bias"]])
    return model


def _art_classifier(tf: Any, framework: str, softmax: bool) -> Any:
    from art.estimators.classification import KerasClassifier, TensorFlowV2Classifier

    model = _keras_model(tf, softmax)
    common = {"clip_values": (0.0, 1.0), "preprocessing": (MEAN, STD)}
    if framework == "keras":
        return KerasClassifier(model, use_logits=not softmax, **common)
    return TensorFlowV2Classifier(
        model, nb_classes=NUM_CLASSES, input_shape=INPUT_SHAPE, **common
    )


def _reference(tf: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """Dense float64 Fisher ``Jᵀ (diag p − ppᵀ) J`` from a ``tf.GradientTape`` Jacobian.

    The network is written again in raw TensorFlow ops (not Keras), in float64.
    """
    w = {k: tf.constant(v, tf.float64) for k, v in _weights().items()}
    xt = tf.constant(x, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        h = (xt - MEAN) / STD
        h = tf.tanh(tf.nn.conv2d(h, w["kernel"], strides=1, padding="VALID") + w["bias"])
        z = tf.reshape(h, (len(x), -1)) @ w["dense"] + w["dense_bias"]
    jac = tape.batch_jacobian(z, xt).numpy().reshape(len(x), NUM_CLASSES, -1)
    z = z.numpy()
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    m = np.stack([np.diag(row) - np.outer(row, row) for row in p])
    fisher = jac.transpose(0, 2, 1) @ m @ jac
    labels = z.argmax(1)
    rows = np.arange(len(x))
    margin = z[rows, labels][:, None] - z  # [N, K], zero at the label
    grad = jac[rows, labels][:, None, :] - jac  # ∇(z_y − z_j)
    competitor = np.ones_like(margin, dtype=bool)
    competitor[rows, labels] = False

    def radius(dual_norms: np.ndarray) -> np.ndarray:
        return np.where(competitor, margin / np.where(competitor, dual_norms, 1.0), np.inf).min(1)

    return {
        "spectral_norm": np.linalg.eigvalsh(fisher)[:, -1],
        "trace": np.trace(fisher, axis1=1, axis2=2),
        "linf": radius(np.abs(grad).sum(-1)),
        "l2": radius(np.linalg.norm(grad, axis=-1)),
        "labels": labels,
    }


class _TorchTwin(nn.Module):
    """The same network in float64 PyTorch, standardisation inside, on channels-last inputs."""

    def __init__(self) -> None:
        super().__init__()
        w = _weights()
        self.conv = nn.Conv2d(2, 3, 3)
        self.dense = nn.Linear(48, NUM_CLASSES)
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(w["kernel"].transpose(3, 2, 0, 1)))
            self.conv.bias.copy_(torch.from_numpy(w["bias"]))
            self.dense.weight.copy_(torch.from_numpy(w["dense"].T))
            self.dense.bias.copy_(torch.from_numpy(w["dense_bias"]))
        self.register_buffer("mean", torch.from_numpy(MEAN))
        self.register_buffer("std", torch.from_numpy(STD))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(((x - self.mean) / self.std).permute(0, 3, 1, 2)))
        # Keras flattens channels-last feature maps: (height, width, channel) order.
        return self.dense(h.permute(0, 2, 3, 1).flatten(1))


CASES = [
    pytest.param("tensorflow_v2", False, id="TensorFlowV2Classifier-logits"),
    pytest.param("tensorflow_v2", True, id="TensorFlowV2Classifier-softmax"),
    pytest.param("keras", False, id="KerasClassifier-logits"),
    pytest.param("keras", True, id="KerasClassifier-softmax"),
]


@pytest.mark.parametrize(("framework", "softmax"), CASES)
def test_exact_values_match_a_float64_gradient_tape_reference(tf, x, framework, softmax):
    """λ_max, trace and first-order radii (ℓ∞, ℓ2) from K class gradients equal the dense
    float64 Fisher and margins of tf.GradientTape, for logit and softmax outputs alike.
    """
    classifier = _art_classifier(tf, framework, softmax)
    reference = _reference(tf, x)
    stats = fisher_statistics(classifier, x, refine=False, box=False, verbose=False)
    np.testing.assert_array_equal(stats.labels, reference["labels"])
    np.testing.assert_allclose(stats.spectral_norm.values, reference["spectral_norm"], rtol=RTOL)
    np.testing.assert_allclose(stats.trace.values, reference["trace"], rtol=RTOL)
    for norm in ("linf", "l2"):
        np.testing.assert_allclose(stats.radius[norm].values, reference[norm], rtol=RTOL)
    if framework == "tensorflow_v2":  # ART's Keras class_gradient is slower: once is enough
        # The public one-quantity functions give the same numbers.
        np.testing.assert_allclose(
            fisher_spectral_norm(classifier, x, verbose=False),
            stats.spectral_norm.values,
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            fisher_trace(classifier, x, verbose=False), stats.trace.values, rtol=1e-12
        )


@pytest.mark.parametrize(("framework", "softmax"), [CASES[1], CASES[2]])
def test_refined_box_radii_and_eigenvector_match_a_float64_pytorch_twin(tf, x, framework, softmax):
    """Every default statistic, including the refined and box-constrained radii (class
    gradients at the boundary points) and the top eigenvector, equals the PyTorch route's on
    the same network in float64.
    """
    classifier = _art_classifier(tf, framework, softmax)
    twin = PyTorchClassifier(
        _TorchTwin().double().eval(), loss=nn.CrossEntropyLoss(), input_shape=INPUT_SHAPE,
        nb_classes=NUM_CLASSES, clip_values=(0.0, 1.0), device_type="cpu",
    )
    got = fisher_statistics(classifier, x, eigenvector=True, verbose=False)
    expected = fisher_statistics(twin, x.astype(np.float64), eigenvector=True, verbose=False)
    np.testing.assert_allclose(got.spectral_norm.values, expected.spectral_norm.values, rtol=RTOL)
    np.testing.assert_allclose(got.trace.values, expected.trace.values, rtol=RTOL)
    assert set(got.refined_radius) == {"linf", "l2"}
    for norm in ("linf", "l2"):
        np.testing.assert_allclose(got.radius[norm].values, expected.radius[norm].values, rtol=RTOL)
        np.testing.assert_allclose(
            got.refined_radius[norm].values, expected.refined_radius[norm].values, rtol=RTOL
        )
        # The refinement changes something here (the net is not linear), so it was tested.
        assert np.any(got.refined_radius[norm].values < 0.999 * got.radius[norm].values)
    cosine = np.abs(np.sum(got.eigenvector * expected.eigenvector, axis=(1, 2, 3)))
    np.testing.assert_allclose(cosine, 1.0, atol=1e-6)


@pytest.mark.parametrize(("framework", "softmax"), CASES)
def test_output_type_is_detected_and_a_wrong_declaration_refused(tf, x, framework, softmax):
    """Softmax outputs are detected as probabilities and logits as logits; declaring the
    other type is refused. ART's TensorFlow and Keras class_gradient differentiate the outputs.
    """
    classifier = _art_classifier(tf, framework, softmax)
    adapter = ClassGradientAdapter(classifier)
    kind = "probabilities" if softmax else "logits"
    assert adapter.decide_output_type(x) == kind
    assert adapter.interpretation == "the outputs"
    wrong = "logits" if softmax else "probabilities"
    with pytest.raises(ValueError, match=f"output_type='{wrong}' was declared"):
        fisher_spectral_norm(classifier, x, output_type=wrong, verbose=False)


@pytest.mark.parametrize(("framework", "softmax"), [CASES[0], CASES[3]])
def test_blackbox_route_from_predict_queries(tf, x, framework, softmax):
    """Coordinate differences (the budget covers 2d + 3 queries) reproduce the exact values
    to float32 difference accuracy; an orthogonal sketch of m = 20 ≪ d = 72 directions is
    an estimate, within a few bootstrap standard errors.
    """
    classifier = _art_classifier(tf, framework, softmax)
    reference = _reference(tf, x)["spectral_norm"]
    coordinate = fisher_spectral_norm(classifier, x, method="blackbox", verbose=False)
    np.testing.assert_allclose(coordinate, reference, rtol=5e-3)  # measured: 9.1e-4
    sketch = FisherInformationMetric(
        classifier, method="blackbox", verbose=False, blackbox_params={"max_queries": 43}
    ).estimate(x)
    assert np.all(sketch.queries == 43)
    error = np.abs(sketch.values - reference)
    # Seeded directions: measured median 17%, at most 1.8 standard errors.
    assert np.median(error / reference) < 0.3
    assert np.all(error <= 3 * sketch.stderr)


@pytest.mark.parametrize("outputs", [1, 2, 5])
@pytest.mark.parametrize("kind", ["logits", "probabilities"])
def test_score_map_jacobian_equals_torch_func(outputs, kind):
    """The class_gradient route's ∂ as_logits/∂ raw (plain autograd) equals torch.func's,
    including probabilities below the floor, where the logarithm is clamped.
    """
    rng = np.random.default_rng(outputs)
    raw = torch.from_numpy(rng.random((7, outputs)))
    if kind == "probabilities" and outputs > 1:
        raw = raw / raw.sum(1, keepdim=True)
        raw[0, 0] = 1e-40
    single = torch.func.jacrev(lambda r: as_logits(r[None], kind)[0])
    torch.testing.assert_close(
        _score_map_jacobian(raw, kind), torch.func.vmap(single)(raw), rtol=0, atol=0
    )


def test_triton_guard_acts_only_where_tensorflow_came_first(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    monkeypatch.setattr(triton_guard, "_triton_installed", lambda: True)
    assert not keep_triton_out_beside_tensorflow()
    assert "triton" not in sys.modules
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    monkeypatch.setattr(triton_guard, "_triton_installed", lambda: False)
    assert not keep_triton_out_beside_tensorflow()  # not installed: nothing to keep out
    assert "triton" not in sys.modules
    monkeypatch.setattr(triton_guard, "_triton_installed", lambda: True)
    with pytest.warns(RuntimeWarning, match="import torch._dynamo before tensorflow"):
        assert keep_triton_out_beside_tensorflow()
    assert sys.modules["triton"] is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("triton")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not keep_triton_out_beside_tensorflow()  # once is enough


def _run(script: str) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter (this module importable); its last line is JSON."""
    path = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(script)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    # A crash (a negative return code is the signal, -11 a segmentation fault) shows its trace,
    # without faulthandler's closing list of extension modules.
    assert done.returncode == 0, done.stderr.split("\nExtension modules:")[0][-4000:]
    return {"stderr": done.stderr, **json.loads(done.stdout.strip().splitlines()[-1])}


def test_non_pytorch_route_loads_neither_dynamo_nor_triton():
    """Scoring a classifier that is not PyTorch, by every route, leaves torch._dynamo (and
    Triton) unloaded: nothing in the route can crash a TensorFlow or JAX process.
    """
    result = _run(
        """
        import json, sys
        import numpy as np
        from art.estimators.classification import SklearnClassifier
        from sklearn.linear_model import LogisticRegression
        import art_fim

        rng = np.random.default_rng(0)
        x = rng.random((40, 6))
        y = (x @ rng.normal(size=(6, 3))).argmax(1)
        classifier = SklearnClassifier(LogisticRegression().fit(x, y), clip_values=(0.0, 1.0))
        art_fim.fisher_statistics(classifier, x[:8], eigenvector=True, verbose=False)
        art_fim.fisher_statistics(classifier, x[:8], method="lanczos", verbose=False)
        art_fim.fisher_spectral_norm(classifier, x[:8], method="blackbox", verbose=False)
        art_fim.fisher_trace(classifier, x[:8], method="hutchinson", verbose=False)
        art_fim.average_case_robustness(classifier, x[:8], sigma=0.1, verbose=False)
        loaded = [name for name in ("torch._dynamo", "triton") if name in sys.modules]
        print(json.dumps({"loaded": loaded}))
        """
    )
    assert result["loaded"] == []


def test_tensorflow_imported_first_then_art_fim_end_to_end(tf):
    """A user's script: TensorFlow first, then ART's TensorFlowV2Classifier around a softmax
    CNN scored by every white-box statistic and the black-box route, then a PyTorch model and
    a Lipschitz bound in the same process. Before the fix this died with a segmentation fault.
    """
    result = _run(
        """
        import json, sys
        import numpy as np
        import tensorflow as tf
        import test_tensorflow as cases
        import art_fim
        import torch
        from art.estimators.classification import PyTorchClassifier
        from torch import nn

        x = np.random.default_rng(0).random((4, *cases.INPUT_SHAPE)).astype(np.float32)
        classifier = cases._art_classifier(tf, "tensorflow_v2", softmax=True)
        stats = art_fim.fisher_statistics(classifier, x, eigenvector=True, verbose=False)
        blackbox = art_fim.fisher_spectral_norm(classifier, x, method="blackbox", verbose=False)
        tf_loaded_dynamo = "torch._dynamo" in sys.modules
        twin = PyTorchClassifier(
            cases._TorchTwin().double().eval(), loss=nn.CrossEntropyLoss(),
            input_shape=cases.INPUT_SHAPE, nb_classes=cases.NUM_CLASSES, clip_values=(0.0, 1.0),
            device_type="cpu",
        )
        torch_stats = art_fim.fisher_statistics(twin, x.astype(np.float64), verbose=False)
        lanczos = art_fim.fisher_spectral_norm(twin, x, method="lanczos", verbose=False)
        convnet = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5))
        lipschitz = art_fim.lipschitz_bound(convnet.eval(), input_shape=(2, 6, 6)).value
        print(json.dumps({
            "exact": stats.spectral_norm.values.tolist(),
            "refined": stats.refined_radius["l2"].values.tolist(),
            "blackbox": blackbox.tolist(),
            "reference": cases._reference(tf, x)["spectral_norm"].tolist(),
            "torch_exact": torch_stats.spectral_norm.values.tolist(),
            "torch_refined": torch_stats.refined_radius["l2"].values.tolist(),
            "lanczos": lanczos.tolist(),
            "lipschitz": lipschitz,
            "tf_loaded_dynamo": tf_loaded_dynamo,
        }))
        """
    )
    assert not result["tf_loaded_dynamo"]
    assert "import torch._dynamo before tensorflow" in result["stderr"]
    reference = np.array(result["reference"])
    for key in ("exact", "torch_exact", "lanczos"):
        np.testing.assert_allclose(result[key], reference, rtol=RTOL)
    np.testing.assert_allclose(result["blackbox"], reference, rtol=5e-3)
    np.testing.assert_allclose(result["refined"], result["torch_refined"], rtol=RTOL)
    assert np.isfinite(result["lipschitz"]) and result["lipschitz"] > 0
