r"""The robustness–accuracy trade-off of Tsipras et al. as an exact oracle for linear classifiers.

Tsipras, Santurkar, Engstrom, Turner & Madry, "Robustness May Be at Odds with Accuracy"
(ICLR 2019, https://arxiv.org/abs/1805.12152), eq. (3):

.. math::  y ∼ \mathrm{U}\{−1, +1\},
           \quad x_1 = \begin{cases} +y & \text{w.p. } p \\ −y & \text{w.p. } 1 − p\end{cases},
           \quad x_2, …, x_{d+1} \overset{iid}{∼} N(ηy, 1).

``x₁`` is robust but only ``p``-accurate; the ``d`` weak features are each useless but
together nearly perfect, and an ℓ∞ adversary with ``ε ≥ 2η`` turns them against the label.
For a linear classifier ``sign(wᵀx + b)`` everything is closed form: with ``m = η Σ_{i≥2} w_i``
and ``s = ‖w_{2:}‖₂``, the signed margin ``y(wᵀx + b)`` given ``(y, x₁)`` is normal with mean
``y b + w₁ x₁ y + m`` and standard deviation ``s``, and the worst perturbation in a ball of radius
``ε`` lowers it by exactly ``ε ‖w‖_*`` (the dual norm: ℓ1 for an ℓ∞ threat, ℓ2 for ℓ2), so

.. math::  \mathrm{acc}_ε = \tfrac12 \sum_{y=±1} \Big[p\,Φ\Big(\frac{w_1 + yb + m − ε‖w‖_*}{s}\Big)
           + (1 − p)\,Φ\Big(\frac{−w_1 + yb + m − ε‖w‖_*}{s}\Big)\Big].

Theorem 2.1: any classifier with standard accuracy ``1 − δ`` has ℓ∞ robust accuracy at most
``p δ / (1 − p)`` at every ``ε ≥ 2η``. The Bayes classifier is the logistic model
``P(y = +1 | x) = σ(w*ᵀx)`` with ``w* = (log(p/(1−p)), 2η, …, 2η)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.special import ndtr
from torch import nn

if TYPE_CHECKING:
    from art.estimators.classification import PyTorchClassifier

LinearModel = tuple[np.ndarray, float]


@dataclass(frozen=True)
class TsiprasDistribution:
    """The distribution of Tsipras et al. (2019), eq. (3).

    Attributes:
        p: accuracy of the robust feature ``x₁``, ``½ ≤ p < 1``.
        d: number of weakly correlated features (inputs have ``d + 1`` coordinates).
        eta: their mean shift ``η`` (default ``3/√d``, where the averaging classifier is
            ``Φ(3) = 99.87%`` accurate and the paper's ``η = Θ(1/√d)`` holds).
    """

    p: float
    d: int
    eta: float = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        """Check ``p``, ``d`` and ``eta``; fill in the default ``eta``."""
        if not 0.5 <= self.p < 1.0:
            raise ValueError(f"p must lie in [0.5, 1), got {self.p!r}")
        if isinstance(self.d, bool) or not isinstance(self.d, (int, np.integer)) or self.d < 1:
            raise ValueError(f"d must be a positive integer, got {self.d!r}")
        if self.eta is None:
            object.__setattr__(self, "eta", 3.0 / np.sqrt(self.d))
        if not self.eta > 0:
            raise ValueError(f"eta must be positive, got {self.eta!r}")

    @property
    def input_dim(self) -> int:
        """``d + 1``."""
        return self.d + 1

    @property
    def critical_eps(self) -> float:
        """``2η``: from this ℓ∞ radius on, Theorem 2.1 applies."""
        return 2.0 * self.eta

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` points.

        Returns:
            ``(x [n, d+1] float32, y [n] int)`` with ``y ∈ {−1, +1}``.
        """
        rng = np.random.default_rng(seed)
        y = rng.choice(np.array([-1, 1]), size=n)
        x1 = np.where(rng.random(n) < self.p, y, -y)
        rest = rng.normal(self.eta * y[:, None], 1.0, size=(n, self.d))
        return np.concatenate([x1[:, None], rest], axis=1).astype(np.float32), y

    def bayes_classifier(self) -> LinearModel:
        """``w* = (log(p/(1−p)), 2η, …, 2η)``, ``b = 0``: the exact posterior ``σ(w*ᵀx)``."""
        return np.concatenate([[np.log(self.p / (1 - self.p))], np.full(self.d, 2 * self.eta)]), 0.0

    def averaging_classifier(self) -> LinearModel:
        """``f_avg``: ``w = (0, 1/d, …, 1/d)``; accurate (``Φ(η√d)``) and ℓ∞-fragile."""
        return np.concatenate([[0.0], np.full(self.d, 1.0 / self.d)]), 0.0

    def robust_feature_classifier(self) -> LinearModel:
        """``f_rob = sign(x₁)``: accuracy ``p``, robust to every ``ε < 1``."""
        return np.eye(1, self.input_dim).ravel(), 0.0

    def accuracy(
        self, w: np.ndarray, b: float = 0.0, eps: float = 0.0, norm: float = np.inf
    ) -> float:
        """Exact (robust) accuracy of ``sign(wᵀx + b)`` against perturbations ``‖δ‖_norm ≤ eps``.

        Args:
            w: ``[d + 1]`` weights.
            b: bias.
            eps: radius (0: standard accuracy).
            norm: ``np.inf`` or ``2``.

        Returns:
            The probability that ``y(wᵀ(x + δ) + b) > 0`` for every admissible ``δ``.
        """
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.input_dim,):
            raise ValueError(f"w must have shape ({self.input_dim},), got {w.shape}")
        if norm == np.inf:
            dual = np.abs(w).sum()
        elif norm == 2:
            dual = np.linalg.norm(w)
        else:
            raise ValueError(f"norm must be np.inf or 2, got {norm!r}")
        m, s = self.eta * w[1:].sum(), np.linalg.norm(w[1:])
        total = 0.0
        for sign_y in (1.0, -1.0):
            for x1_agrees, weight in ((1.0, self.p), (-1.0, 1.0 - self.p)):
                total += 0.5 * weight * _positive(x1_agrees * w[0] + sign_y * b + m - eps * dual, s)
        return float(total)

    def theorem_2_1_bound(self, standard_accuracy: float) -> float:
        """Theorem 2.1: ℓ∞ robust accuracy at ``ε ≥ 2η`` is at most ``p/(1−p) · (1 − accuracy)``."""
        return self.p / (1.0 - self.p) * (1.0 - standard_accuracy)


def _positive(mean: float, std: float) -> float:
    """``P[N(mean, std²) > 0]``; a point mass (``std = 0``) counts ties as errors."""
    if std == 0.0:
        return float(mean > 0.0)
    return float(ndtr(mean / std))


def linear_module(input_dim: int, w: np.ndarray | None = None, b: float = 0.0) -> nn.Linear:
    """A two-logit linear layer whose softmax is the logistic model ``σ(±(wᵀx + b))``.

    Logits ``(−(wᵀx+b)/2, (wᵀx+b)/2)`` for classes ``(y = −1, y = +1)``; zeros when ``w`` is None.
    """
    layer = nn.Linear(input_dim, 2)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        if w is not None:
            half = torch.as_tensor(np.asarray(w) / 2, dtype=layer.weight.dtype)
            layer.weight.copy_(torch.stack([-half, half]))
            layer.bias.copy_(torch.tensor([-b / 2, b / 2], dtype=layer.bias.dtype))
    return layer


def effective_weights(layer: nn.Linear) -> LinearModel:
    """``(w, b)`` of ``sign(wᵀx + b)`` for a two-logit linear layer.

    The decision function is the logit of class 1 minus the logit of class 0.
    """
    weight = layer.weight.detach().double().cpu().numpy()
    bias = layer.bias.detach().double().cpu().numpy()
    return weight[1] - weight[0], float(bias[1] - bias[0])


def class_indices(y: np.ndarray) -> np.ndarray:
    """Labels ``±1`` as class indices ``0`` (``y = −1``) and ``1`` (``y = +1``)."""
    return (np.asarray(y) > 0).astype(np.int64)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed NumPy's and PyTorch's global generators, restoring both afterwards.

    ART's trainers draw their shuffles from these global generators; this makes a training run
    reproducible without leaving the caller's random state changed.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        np.random.set_state(state)


def art_linear_classifier(layer: nn.Linear, learning_rate: float = 0.05) -> "PyTorchClassifier":
    """Wrap a two-logit linear layer as an ART ``PyTorchClassifier``.

    Its optimiser is Adam and its loss the cross-entropy, with no clipping: the features are
    unbounded, so ``clip_values`` is ``None`` and attacks only project onto their norm ball.
    """
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=layer,
        loss=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(layer.parameters(), lr=learning_rate),
        input_shape=(layer.in_features,),
        nb_classes=2,
        device_type="cpu",
    )


def train_linear_classifier(
    x: np.ndarray,
    y: np.ndarray,
    *,
    adversarial_eps: float | None = None,
    epochs: int = 10,
    batch_size: int = 100,
    learning_rate: float = 0.05,
    pgd_steps: int = 10,
    seed: int = 0,
) -> "PyTorchClassifier":
    """Train a linear classifier on ``(x, y ∈ {±1})`` with ART, as Tsipras et al. compare them.

    Standard training is ART's ``PyTorchClassifier.fit``. Adversarial training is ART's
    ``AdversarialTrainer`` with ``ratio=1`` (every example replaced by its attack: the robust
    objective ``min_w E max_{‖δ‖∞≤ε} loss``) and an ℓ∞ ``ProjectedGradientDescent`` with
    ``pgd_steps`` steps of ``ε/4``; for a linear model its fixed point is the exact worst case
    ``x − ε y sign(w)``.

    Args:
        x: ``[n, d + 1]`` features.
        y: ``[n]`` labels in ``{−1, +1}``.
        adversarial_eps: ℓ∞ training radius, or ``None`` for standard training.
        epochs: passes over the data.
        batch_size: examples per step.
        learning_rate: Adam's step size.
        pgd_steps: PGD iterations per batch (adversarial training).
        seed: seed of the shuffles (the weights start at zero).

    Returns:
        The trained ART classifier; :func:`effective_weights` of its ``model`` gives ``(w, b)``.
    """
    from art.attacks.evasion import ProjectedGradientDescent
    from art.defences.trainer import AdversarialTrainer

    classifier = art_linear_classifier(linear_module(x.shape[1]), learning_rate)
    labels = class_indices(y)
    with seeded(seed):
        if adversarial_eps is None:
            classifier.fit(x, labels, batch_size=batch_size, nb_epochs=epochs, verbose=False)
        else:
            attack = ProjectedGradientDescent(
                classifier, norm=np.inf, eps=adversarial_eps, eps_step=adversarial_eps / 4,
                max_iter=pgd_steps, num_random_init=0, verbose=False,
            )
            trainer = AdversarialTrainer(classifier, attack, ratio=1.0)
            trainer.fit(x, labels, batch_size=batch_size, nb_epochs=epochs)
    return classifier
