"""What a Lipschitz bound certifies, and how loose it is against the exact local ``‖J(x)‖₂``.

With ``L`` an upper bound on the ℓ2 Lipschitz constant of the logits ``z``:

* Fisher: ``λ_max(F(x)) ≤ λ_max(M(x)) ‖J(x)‖₂² ≤ min(½, 2(1 − p_max)) · L²`` with
  ``M = diag(p) − ppᵀ`` (Popoviciu: ``λ_max(M) ≤ ½``; and
  ``uᵀMu ≤ E_p(u_k − u_t)² ≤ 2(1 − p_t)``); a binary model with one logit ``t``:
  ``λ_max(F) = σ(1 − σ) ‖∇t‖² ≤ σ(1 − σ) · L²``. Probabilities are refused (``L`` must bound
  the logits).
* Radius: the margin ``z_t − z_j`` is ``√2 L``-Lipschitz (``‖e_t − e_j‖ = √2``), so if
  ``z_t − max_{j≠t} z_j > √2 L ε`` no ``‖δ‖₂ ≤ ε`` changes the prediction (Tsuzuku et al.,
  2018, https://arxiv.org/abs/1802.04034); a binary logit ``t`` is ``L``-Lipschitz itself
  (radius ``|t|/L``); ℓ∞ balls through ``‖δ‖₂ ≤ √d ‖δ‖∞``, ℓ1 balls through
  ``‖δ‖₂ ≤ ‖δ‖₁``.
* Local side: ``‖J(x)‖₂ = √λ_max(J Jᵀ)`` exactly per input from the ``K`` Jacobian rows of
  :class:`art_fim.jacobian.InputJacobian`; ``L / max_x ‖J(x)‖₂`` is how loose the bound is.

| Paper links: https://arxiv.org/abs/2606.04767, https://arxiv.org/abs/2410.23382
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from art_fim.adapters import Kind
from art_fim.checks import OutputType, check_labels, resolve_output_type
from art_fim.curve import robust_fraction
from art_fim.defences import check_defences
from art_fim.engine import Access, Batch, BatchEngine, BatchPlan, ExactPlan
from art_fim.exact import spectrum_from_gram
from art_fim.lipschitz.graph import LipschitzBound, check_hooks, lipschitz_bound
from art_fim.norms import parse_norm
from art_fim.options import Options


def _network(classifier: Any) -> nn.Module | None:
    """The ``torch.nn.Module`` behind a classifier, when there is one."""
    if isinstance(classifier, nn.Module):
        return classifier
    model = getattr(classifier, "model", None)
    return model if isinstance(model, nn.Module) else None


def _widened(x: Any) -> Any:
    """Half-precision inputs as float32: ART's ``predict`` feeds them to a float32 model as is."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.floating) and x.dtype.itemsize < 4:
        return x.astype(np.float32)
    return x


def _output_kind(raw: np.ndarray, output_type: OutputType) -> Kind:
    """Logits or probabilities, as :func:`~art_fim.checks.resolve_output_type` decides.

    A declaration of logits is believed for outputs that are all exactly 0 or 1 (a logit vector
    may be ``[1, 0, 0]``), which the detection would read as labels: the certificates need only
    the margins, which such logits have.
    """
    if output_type == "logits" and raw.ndim == 2 and np.isin(raw, (0.0, 1.0)).all():
        return "logits"
    return resolve_output_type(raw, output_type)


@dataclass(frozen=True)
class _RawOutputs:
    """Per batch: the validated inputs and the classifier's raw answers to them (float64).

    The queries go through ``predict``, as the margins a certificate is read from must be the
    classifier's own (what a user of it sees).
    """

    requested: int
    access: Access = "queries"
    description: str = "outputs"

    def plan(self, engine: BatchEngine, x: np.ndarray) -> BatchPlan:
        """Inputs per ``predict`` call, within the memory budget."""
        return BatchPlan(engine.batch_size(self.requested, engine.activation_bytes(x)))

    def batch(self, engine: BatchEngine, batch: Batch, plan: BatchPlan) -> dict[str, np.ndarray]:
        """The batch's inputs as validated, and its raw outputs."""
        raw = engine.predict(batch.x, batch_size=plan.batch_size).astype(np.float64)
        return {"x": batch.x, "raw": raw}


def _outputs(
    classifier: Any,
    x: np.ndarray,
    batch_size: int,
    output_type: OutputType,
    memory_budget: int | None,
) -> tuple[np.ndarray, np.ndarray, Kind]:
    """The validated inputs, their raw outputs ``[N, K]`` (float64) and the kind of outputs.

    ART's ``predict`` puts the model in eval mode and leaves it there; the engine gives the flags
    back. Predict-time defences and hooks are refused first: the bound covers neither.
    """
    check_defences(classifier, "certified")
    network = _network(classifier)
    if network is not None:
        check_hooks(network)
    options = Options(output_type, memory_budget=memory_budget, verbose=False)
    engine = BatchEngine(classifier, options, access="queries")
    _, columns = engine.compute(_RawOutputs(batch_size), _widened(x))
    return columns["x"], columns["raw"], _output_kind(columns["raw"], output_type)


def _resolve_bound(classifier: Any, x: np.ndarray, bound: float | LipschitzBound | None) -> float:
    """``L`` as a float: the given bound, or :func:`lipschitz_bound` on inputs shaped like ``x``.

    A :class:`LipschitzBound` must have been computed for this network, preprocessing and input
    shape (:meth:`LipschitzBound.check_use`); a plain number is the caller's responsibility.

    Raises:
        ValueError: a bound computed for something else; a local bound and inputs outside the
            box it holds on; a bound that is not a finite number ``≥ 0``.
    """
    if bound is None:
        shape = None if not isinstance(classifier, nn.Module) else tuple(x.shape[1:])
        bound = lipschitz_bound(classifier, shape)
    elif isinstance(bound, LipschitzBound):
        bound.check_use(classifier, tuple(x.shape[1:]))
    elif isinstance(bound, (bool, np.bool_)) or not isinstance(bound, (int, float, np.number)):
        raise ValueError(
            f"bound must be a LipschitzBound or a number, got {type(bound).__name__} {bound!r}."
        )
    if isinstance(bound, LipschitzBound) and bound.local and bound.input_box is not None:
        low, high = (np.asarray(b, dtype=np.float64) for b in bound.input_box)
        if (x < low - 1e-12).any() or (x > high + 1e-12).any():
            raise ValueError(
                f"The bound holds only for inputs in {bound.input_box} (it has attention or "
                "LayerNorm constants that are local), and x leaves that box."
            )
    value = float(bound)
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"The Lipschitz bound must be a finite non-negative number, got {value}.")
    return value


def _decision_scores(raw: np.ndarray, kind: Kind) -> tuple[np.ndarray, float]:
    """Scores whose argmax is the prediction, and ``c``: each difference is ``c L``-Lipschitz.

    ``K ≥ 2`` outputs are their own scores (``‖e_t − e_j‖ = √2``: ``c = √2``). A binary model's
    logit ``t`` gives ``(0, t)`` (class 1 iff ``t > 0``, the difference ``t``: ``c = 1``); its
    sigmoid probability ``s`` gives ``(1 − s, s)`` (the difference ``2s − 1``: ``c = 2``). These
    are the predictions of :func:`art_fim.logits.as_logits`, which every other estimator uses.
    """
    if raw.shape[1] >= 2:
        return raw, math.sqrt(2.0)
    t = raw[:, 0]
    if kind == "logits":
        return np.stack([np.zeros_like(t), t], axis=1), 1.0
    return np.stack([1.0 - t, t], axis=1), 2.0


def certified_fisher_bound(
    classifier: Any,
    x: np.ndarray,
    bound: float | LipschitzBound | None = None,
    batch_size: int = 128,
    output_type: OutputType = "auto",
    memory_budget: int | None = None,
) -> np.ndarray:
    """Certified upper bound on ``λ_max(F(x))`` per input.

    ``K ≥ 2`` logits ``z``: ``λ_max(F) ≤ λ_max(M) ‖J‖₂² ≤ min(½, 2(1 − p_max)) · L²``. A binary
    model's one logit ``t`` (``p = σ(t)``): ``F = σ(1 − σ) ∇t ∇tᵀ``, so
    ``λ_max(F) = σ(1 − σ) ‖∇t‖² ≤ σ(1 − σ) · L²`` (equality for a linear model with ``L = ‖w‖``).

    Args:
        classifier: ART ``PyTorchClassifier`` or ``torch.nn.Module`` (eval mode) returning logits.
        x: ``[N, *input_shape]`` inputs in the classifier's own scale (half precision is read as
            float32).
        bound: ``L`` of the classifier's outputs: a :class:`LipschitzBound` computed for this
            classifier and input shape, or a float (the caller's responsibility); computed when
            ``None``.
        batch_size: inputs per forward pass.
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``, as for
            :func:`art_fim.fisher_spectral_norm` (one output in ``[0, 1]`` needs a declaration).
        memory_budget: peak bytes of one forward pass (``None``: 2 GiB on CPU, half the free
            GPU memory).

    Returns:
        ``[N]`` upper bounds.

    Raises:
        ValueError: the classifier returns probabilities (``K ≥ 2`` or one sigmoid output): the
            bound needs the Lipschitz constant of the logits; or ``bound`` was computed for
            another network, preprocessing or input shape.
        UnsupportedDefenceError: a predict-time defence (the bound does not cover it).
        UnsupportedLayerError: hooks on the model, or a network the bound refuses.
    """
    x, raw, kind = _outputs(classifier, x, batch_size, output_type, memory_budget)
    if kind == "probabilities":
        raise ValueError(
            "The classifier returns probabilities; the certified Fisher bound needs the Lipschitz "
            "bound of the logits: remove the final softmax (or sigmoid)."
        )
    lipschitz = _resolve_bound(classifier, x, bound)
    return fisher_factor(raw) * lipschitz**2


def fisher_factor(raw: np.ndarray) -> np.ndarray:
    """``min(½, 2(1 − p_max))`` per row of logits ``[N, K]``; ``σ(t)(1 − σ(t))`` for one logit.

    In log space, float64: ``1 − p_max = Σ_{j≠t} p_j = exp(logsumexp_{j≠t} z_j − logsumexp z)``
    stays positive where ``p_max`` rounds to 1 (a logit gap of 38 gives ``1 − p_max ≈ 3e-17``),
    and ``σ(t)(1 − σ(t)) = exp(−softplus(t) − softplus(−t))``.
    """
    z = torch.as_tensor(np.asarray(raw, dtype=np.float64))
    if z.shape[1] == 1:
        t = z[:, 0]
        return torch.exp(-F.softplus(t) - F.softplus(-t)).numpy()
    top = F.one_hot(z.argmax(dim=1), z.shape[1]).bool()
    rest = torch.logsumexp(z.masked_fill(top, -math.inf), dim=1) - torch.logsumexp(z, dim=1)
    return torch.clamp(2.0 * torch.exp(rest), max=0.5).numpy()


def certified_radius(
    classifier: Any,
    x: np.ndarray,
    bound: float | LipschitzBound | None = None,
    batch_size: int = 128,
    output_type: OutputType = "auto",
    memory_budget: int | None = None,
) -> np.ndarray:
    """Certified ℓ2 radius per input around the prediction ``t``: ``(s_t − max_{j≠t} s_j) / (c L)``.

    ``s`` are the decision scores: the outputs themselves for ``K ≥ 2`` (logits or
    probabilities; ``c = √2``), ``(0, t)`` for a binary logit (radius ``|t| / L``) and
    ``(1 − s, s)`` for a sigmoid probability (radius ``|s − ½| / L``). ``L`` bounds the
    Lipschitz constant of the outputs the classifier returns. No perturbation with ``‖δ‖₂``
    below the radius changes the predicted class (where the bound is local, for perturbed inputs
    that stay in its box).

    Args:
        classifier: ART ``PyTorchClassifier`` or ``torch.nn.Module`` (eval mode).
        x: ``[N, *input_shape]`` inputs.
        bound: ``L``; computed when ``None``.
        batch_size: inputs per forward pass.
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
        memory_budget: peak bytes of one forward pass (``None``: 2 GiB on CPU, half the free
            GPU memory).

    Returns:
        ``[N]`` radii in the classifier's input scale.

    Raises:
        ValueError: ``bound`` was computed for another network, preprocessing or input shape.
        UnsupportedDefenceError: a predict-time defence (the bound does not cover it).
        UnsupportedLayerError: hooks on the model, or a network the bound refuses.
    """
    x, raw, kind = _outputs(classifier, x, batch_size, output_type, memory_budget)
    scores, factor = _decision_scores(raw, kind)
    return _radius(scores, factor, _resolve_bound(classifier, x, bound))


def _radius(scores: np.ndarray, factor: float, lipschitz: float) -> np.ndarray:
    top2 = np.sort(scores, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    if lipschitz == 0:
        return np.full(len(scores), np.inf)
    return margin / (factor * lipschitz)


def certified_accuracy(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps: float,
    norm: Any = 2,
    bound: float | LipschitzBound | None = None,
    batch_size: int = 128,
    output_type: OutputType = "auto",
    memory_budget: int | None = None,
) -> float:
    """Certified robust accuracy at ``eps``: correct, and certified beyond the ball's ℓ2 size.

    The certificate requires ``margin > c L ε₂`` strictly (:func:`certified_radius`), with ``ε₂``
    the ℓ2 radius of a ball containing the threat ball: ``ε`` for ℓ2 and for ℓ1
    (``‖δ‖₂ ≤ ‖δ‖₁``), ``√d ε`` for ℓ∞ (``‖δ‖₂ ≤ √d ‖δ‖∞``). Every attack's robust accuracy is
    at least this number. Labels, ``eps`` and ``norm`` are checked as
    :func:`art_fim.predicted_robust_accuracy` checks them.

    Args:
        classifier: ART ``PyTorchClassifier`` or ``torch.nn.Module`` returning scores.
        x: ``[N, *input_shape]`` inputs.
        y: labels, as indices ``[N]`` (or ``[N, 1]``) or one-hot ``[N, K]`` (``K = 2`` for a
            binary model with one output).
        eps: radius of the threat ball, finite and ``≥ 0``.
        norm: threat norm: ``np.inf``, ``2`` or ``1`` (or ``"inf"``, ``"L2"``, ``"L1"``).
        bound: ``L``; computed when ``None``.
        batch_size: inputs per forward pass.
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
        memory_budget: peak bytes of one forward pass (``None``: 2 GiB on CPU, half the free
            GPU memory).

    Returns:
        The certified fraction in ``[0, 1]``.

    Raises:
        ValueError: labels of the wrong shape, length, type or range; a negative or non-finite
            ``eps``; a norm other than ℓ∞, ℓ2, ℓ1; a boolean ``y``, ``eps`` or ``norm``; a
            ``bound`` computed for another network, preprocessing or input shape.
        UnsupportedDefenceError: a predict-time defence (the bound does not cover it).
        UnsupportedLayerError: hooks on the model, or a network the bound refuses.
    """
    _check_not_boolean(norm=norm, eps=eps, y=y)
    threat = parse_norm(norm)
    robust_fraction(np.zeros(1), eps)  # the check of eps that predicted_robust_accuracy makes
    x, raw, kind = _outputs(classifier, x, batch_size, output_type, memory_budget)
    scores, factor = _decision_scores(raw, kind)
    labels = check_labels(y, len(x), scores.shape[1])
    eps_2 = math.sqrt(x[0].size) * float(eps) if threat == math.inf else float(eps)
    radius = _radius(scores, factor, _resolve_bound(classifier, x, bound))
    correct = scores.argmax(axis=1) == labels
    return float(np.mean(correct & (radius > eps_2)))


def _check_not_boolean(**values: Any) -> None:
    """Refuse ``True``/``False`` where a number or labels are meant (``norm=True`` is not ℓ1)."""
    for name, value in values.items():
        array = np.asarray(value)
        if isinstance(value, (bool, np.bool_)) or array.dtype == np.bool_:
            raise ValueError(
                f"{name} is boolean ({value!r}): pass "
                + {"norm": "np.inf, 2 or 1 (or 'inf', 'L2', 'L1')",
                   "eps": "a finite number ≥ 0",
                   "y": "integer class indices [N] or one-hot labels [N, nb_classes]"}[name]
                + "."
            )


def local_norms(
    classifier: Any, x: np.ndarray, batch_size: int = 128, memory_budget: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``‖J(x)‖₂`` and ``λ_max(F(x))`` per input, from one input Jacobian per batch.

    ``‖J(x)‖₂ = √λ_max(J Jᵀ)`` is the local Lipschitz constant of the logits at ``x`` (every valid
    bound ``L`` is at least its largest value on any data); ``λ_max(F) = λ_max(Sᵀ J Jᵀ S)`` is the
    Fisher spectral norm (:mod:`art_fim.exact`). Both come from the same ``K × K`` Gram matrix.

    Args:
        classifier: anything :func:`art_fim.adapters.adapter_for` accepts (ART classifiers with
            gradients, or an eval-mode ``torch.nn.Module``) returning logits.
        x: ``[N, *input_shape]`` inputs.
        batch_size: inputs per Jacobian (reduced to fit ``memory_budget``).
        memory_budget: peak bytes of one batch's Jacobian (``None``: 2 GiB on CPU, half the
            free GPU memory).

    Returns:
        ``(jacobian_norms, fisher_norms)``, each ``[N]`` float64.
    """
    options = Options("logits", memory_budget=memory_budget, verbose=False)
    engine = BatchEngine(classifier, options)
    _, columns = engine.compute(_LocalNorms(batch_size), x)
    return columns["jacobian"], columns["fisher"]


@dataclass(frozen=True)
class _LocalNorms:
    """Per batch: ``‖J(x)‖₂`` and ``λ_max(F(x))`` from the ``K × K`` Gram matrix ``J Jᵀ``."""

    requested: int
    access: Access = "gradients"
    description: str = "local norms"

    def plan(self, engine: BatchEngine, x: np.ndarray) -> ExactPlan:
        """Batch size and classes per backward pass for all ``K`` rows."""
        return engine.exact_plan(x, self.requested)

    def batch(self, engine: BatchEngine, batch: Batch, plan: ExactPlan) -> dict[str, torch.Tensor]:
        """The batch's Jacobian norms and Fisher spectral norms."""
        jac = engine.adapter.jacobian(batch.x, plan.class_chunk)
        gram = jac.gram()
        return {
            "jacobian": torch.linalg.eigvalsh(gram)[:, -1].clamp_min(0.0).sqrt(),
            "fisher": spectrum_from_gram(gram, jac.probs)[0][:, -1].clamp_min(0.0),
        }


def jacobian_spectral_norm(
    classifier: Any, x: np.ndarray, batch_size: int = 128, memory_budget: int | None = None
) -> np.ndarray:
    """Exact ``‖J(x)‖₂`` per input (see :func:`local_norms`), float64 ``[N]``."""
    return local_norms(classifier, x, batch_size, memory_budget)[0]


@dataclass(frozen=True)
class Tightness:
    """A global bound against the local values it must dominate.

    Attributes:
        bound: the Lipschitz bound ``L``.
        local_max: ``max_x ‖J(x)‖₂`` on the data.
        local_median: median of ``‖J(x)‖₂``.
        ratio: ``L / local_max`` (≥ 1 for a valid bound; how many times too large it may be).
    """

    bound: float
    local_max: float
    local_median: float
    ratio: float


def tightness(
    classifier: Any,
    x: np.ndarray,
    bound: float | LipschitzBound | None = None,
    batch_size: int = 128,
    memory_budget: int | None = None,
) -> Tightness:
    """Compare ``L`` with the exact local ``‖J(x)‖₂`` on data: ``ratio = L / max_x ‖J(x)‖₂``."""
    x = np.asarray(x)
    lipschitz = _resolve_bound(classifier, x, bound)
    local = jacobian_spectral_norm(classifier, x, batch_size, memory_budget)
    local_max = float(local.max())
    ratio = lipschitz / local_max if local_max > 0 else math.inf
    return Tightness(lipschitz, local_max, float(np.median(local)), ratio)
