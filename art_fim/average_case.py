r"""ART-facing average-case robustness: the probability that a prediction survives Gaussian noise.

.. math::

   p_σ(x) = P_{ε∼N(0,σ²I)}\big[\arg\max_k f_k(x+ε) = t\big],
   \qquad t = \arg\max_k f_k(x),

with the estimators of Han, Srinivas & Lakkaraju, "Characterizing Data Point Vulnerability as
Average-Case Robustness" (UAI 2024, https://arxiv.org/abs/2307.13885):

* ``"mc"``: Monte Carlo, the fraction of ``M`` noisy copies (10,000 by default, as in the
  paper's demo) that keep the prediction, with a Wilson or Clopper–Pearson interval;
* ``"taylor"``: linearise the margins ``g_i = z_t − z_i`` at ``x``; ``p_σ`` becomes the
  ``(K−1)``-dimensional normal orthant probability ``Φ_{UUᵀ}(z)`` of the scaled margins
  ``z_i = g_i / (σ‖∇g_i‖)`` (see :mod:`art_fim.gaussian_margins`); exact for linear models;
* ``"mmse"``: the same with the margins and their gradients averaged over ``N`` noisy copies
  (10 by default), the least-squares linear fit of the margins over the noise;
* ``"taylor_mvs"``, ``"mmse_mvs"``: the closed form ``1 / (1 + Σ_i exp(−z_i))`` instead of
  the orthant probability (no integration, differentiable, crude).

Every linearised estimate carries the bounds ``max(0, 1 − Σ Φ(−z_i)) ≤ Φ_{UUᵀ}(z) ≤ min Φ(z_i)``
as a sanity check; for large ``K``, ``competitors`` keeps only the nearest competitors
(smallest ``z``) in the integral, and the estimate reports how much that can add. Jacobians come
from :class:`art_fim.jacobian.InputJacobian`: Taylor needs only its ``K × K`` Gram ``J Jᵀ``
(the one the exact Fisher uses), MMSE ``K − 1`` vector-Jacobian products of the noisy copies.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from art_fim.adapters import ClassifierAdapter
from art_fim.binomial import IntervalMethod, binomial_interval
from art_fim.checks import OutputType, check_positive_int
from art_fim.engine import Batch, BatchEngine
from art_fim.gaussian_margins import (
    bracketing_bounds,
    margin_selector,
    mv_sigmoid,
    orthant_probability,
    scaled_margins,
)
from art_fim.jacobian import InputJacobian
from art_fim.memory import mmse_bytes
from art_fim.noise import noisy_copies, noisy_passes
from art_fim.options import Options
from art_fim.params import Configurable
from art_fim.precision import Precision

logger = logging.getLogger(__name__)

AverageCaseMethod = Literal["mc", "taylor", "mmse", "taylor_mvs", "mmse_mvs"]
METHODS: tuple[str, ...] = ("mc", "taylor", "mmse", "taylor_mvs", "mmse_mvs")
DEFAULT_SAMPLES = {"mc": 10_000, "mmse": 10}


@dataclass(frozen=True)
class AverageCaseEstimate:
    """Per-input average-case robustness.

    Attributes:
        values: ``p_σ(x)`` per input, ``[N]``.
        lower: ``"mc"``: lower end of the confidence interval; linearised methods: the Boole
            lower bound ``max(0, 1 − Σ_i Φ(−z_i))`` on the orthant probability.
        upper: ``"mc"``: upper end of the interval; linearised: ``min_i Φ(z_i)``.
        predicted: the clean prediction ``t`` per input (the class that must survive).
        method: the estimator.
        sigma: the noise standard deviation, in the classifier's input scale.
        num_samples: noisy copies per input (``M`` for ``"mc"``, ``N`` for ``"mmse"``, 0 else).
        truncation_error: how much dropping far competitors can have added to each value
            (``Σ_dropped Φ(−z_i)``; zero for ``"mc"`` and the sigmoid variants).
    """

    values: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    predicted: np.ndarray
    method: str
    sigma: float
    num_samples: int
    truncation_error: np.ndarray


def taylor_margins(
    jac: InputJacobian, sigma: float, target: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Scaled margins and their correlation from one Jacobian: the Taylor estimator's inputs.

    ``g = A f`` (``f`` the logits) and ``H = A (J Jᵀ) Aᵀ``, with the rows of ``A`` equal to
    ``e_t − e_i``.

    Args:
        jac: the batch's input Jacobian.
        sigma: noise standard deviation.
        target: the class that must survive (default: the predicted class).

    Returns:
        ``(z [B, K−1], correlation [B, K−1, K−1], target [B])``.
    """
    logits = jac.logits.double()
    target = logits.argmax(1) if target is None else target
    selector = margin_selector(logits, target)
    margins = (selector @ logits[:, :, None])[:, :, 0]
    margin_gram = selector @ jac.gram().to(selector.device) @ selector.transpose(1, 2)
    z, corr = scaled_margins(margins, margin_gram, sigma)
    return z, corr, target


def smoothed_margins(
    adapter: ClassifierAdapter,
    x: Tensor,
    target: Tensor,
    sigma: float,
    copies: int,
    generator: torch.Generator | Sequence[torch.Generator],
) -> tuple[Tensor, Tensor]:
    """Margins and margin gradients averaged over ``N`` noisy copies: the MMSE estimator's inputs.

    ``ĝ = (1/N) Σ_j g(x + ε_j)`` and ``∇ĝ = (1/N) Σ_j ∇g(x + ε_j)``, with ``t`` held at the clean
    prediction. The averaged gradients are ``K − 1`` VJPs of the noisy batch with cotangents
    ``e_t − e_i``, averaged over each input's copies.

    Args:
        adapter: the classifier's white-box adapter.
        x: ``[B, *input_shape]`` clean inputs.
        target: ``[B]`` clean predictions.
        sigma: noise standard deviation (for the copies and, later, the scaling).
        copies: ``N``.
        generator: draws the noise: one for the batch, or one per input
            (:func:`~art_fim.noise.noisy_copies`).

    Returns:
        ``(ĝ [B, K−1], H [B, K−1, K−1])`` with ``H = ∇ĝ ∇ĝᵀ``, float64.
    """
    b = x.shape[0]
    noisy = noisy_copies(x, sigma, copies, generator)
    jac = adapter.jacobian(noisy.cpu().numpy())
    logits = jac.logits.double()
    selector = margin_selector(logits, target.to(logits.device).repeat_interleave(copies))
    margins = (selector @ logits[:, :, None])[:, :, 0].reshape(b, copies, -1).mean(1)
    rows = torch.stack(
        [
            jac.vjp(selector[:, i].to(jac.dtype)).double().reshape(b, copies, -1).mean(1)
            for i in range(selector.shape[1])
        ],
        dim=1,
    )
    return margins, rows @ rows.transpose(1, 2)


class AverageCaseRobustness(Configurable):
    """Average-case robustness of an ART classifier: ``P[prediction unchanged under N(0, σ²I)]``.

    ``metric(x)`` returns ``p_σ(x)`` per input; :meth:`estimate` adds the interval (Monte
    Carlo) or the bracketing bounds (linearised methods) and the clean predictions.

    | Paper link: https://arxiv.org/abs/2307.13885

    Args:
        classifier: ``PyTorchClassifier`` (differentiated through its preprocessing), any ART
            classifier with ``class_gradient``, or an ``nn.Module`` in eval mode; for
            ``method="mc"`` any ART classifier with ``predict`` (``BlackBoxClassifier`` too).
        sigma: noise standard deviation in the classifier's input scale (e.g. [0, 1] pixels).
        method: ``"mc"``, ``"taylor"``, ``"mmse"``, ``"taylor_mvs"`` or ``"mmse_mvs"``.
        batch_size: inputs per batch.
        num_samples: noisy copies per input: ``M`` for ``"mc"`` (default 10,000), ``N`` for the
            MMSE methods (default 10); unused by the Taylor methods.
        noise_batch_size: noisy inputs per forward pass (Monte Carlo) or per Jacobian (MMSE).
        interval: ``"wilson"`` or ``"clopper-pearson"``, for Monte Carlo.
        confidence: two-sided level of the Monte Carlo interval.
        competitors: classes kept in the orthant probability (nearest first; ``None``: all).
        mvn_tolerance: error target of the orthant-probability integrator.
        seed: seed of the noise and of the integrator (input ``i``'s draws depend on
            ``(seed, i)`` only, not on ``batch_size``).
        output_type: ``"auto"`` (detect), ``"logits"`` or ``"probabilities"``.
        verbose: show a progress bar.
        precision: ``"float32"`` (default) or ``"tf32"`` (:mod:`art_fim.precision`).
        memory_budget: peak bytes of one batch (the noisy copies per pass and the inputs per
            Jacobian are reduced to fit); default half the free GPU memory or 2 GiB on CPU.
    """

    metric_params = [
        "sigma",
        "method",
        "batch_size",
        "num_samples",
        "noise_batch_size",
        "interval",
        "confidence",
        "competitors",
        "mvn_tolerance",
        "seed",
        "output_type",
        "verbose",
        "precision",
        "memory_budget",
    ]

    def __init__(
        self,
        classifier: Any,
        sigma: float,
        method: AverageCaseMethod = "mmse",
        batch_size: int = 64,
        num_samples: int | None = None,
        noise_batch_size: int = 512,
        interval: IntervalMethod = "wilson",
        confidence: float = 0.95,
        competitors: int | None = None,
        mvn_tolerance: float = 1e-4,
        seed: int = 0,
        output_type: OutputType = "auto",
        verbose: bool = True,
        precision: Precision = "float32",
        memory_budget: int | None = None,
    ) -> None:
        self.classifier = classifier
        self.sigma = sigma
        self.method = method
        self.batch_size = batch_size
        self.num_samples = num_samples
        self.noise_batch_size = noise_batch_size
        self.interval = interval
        self.confidence = confidence
        self.competitors = competitors
        self.mvn_tolerance = mvn_tolerance
        self.seed = seed
        self.output_type = output_type
        self.verbose = verbose
        self.precision = precision
        self.memory_budget = memory_budget
        self._check_params()

    def _check_params(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float, np.number)):
            raise TypeError(
                "sigma must be a positive number (the noise standard deviation), got "
                f"{self.sigma!r}"
            )
        if not (np.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be positive and finite, got {self.sigma!r}")
        check_positive_int("noise_batch_size", self.noise_batch_size)
        for name in ("num_samples", "competitors"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if self.method == "mc" and self.num_samples is not None and self.num_samples < 2:
            raise ValueError("num_samples must be at least 2 for Monte Carlo")
        if self.interval not in ("wilson", "clopper-pearson"):
            raise ValueError(
                f"interval must be 'wilson' or 'clopper-pearson', got {self.interval!r}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence!r}")
        if not self.mvn_tolerance > 0:
            raise ValueError(f"mvn_tolerance must be positive, got {self.mvn_tolerance!r}")
        self._options = Options(
            self.output_type, self.precision, self.memory_budget, self.seed, self.verbose,
            self.batch_size,
        )

    @property
    def samples(self) -> int:
        """Noisy copies per input for the current method (0 for the Taylor methods)."""
        base = self.method.removesuffix("_mvs")
        if base == "taylor":
            return 0
        return int(self.num_samples or DEFAULT_SAMPLES[base])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Return ``p_σ(x)`` per input, shape ``[N]``."""
        return self.estimate(x).values

    def estimate(self, x: np.ndarray) -> AverageCaseEstimate:
        """Estimate ``p_σ(x)`` per input with an interval or bounds.

        Args:
            x: ``[N, *input_shape]`` inputs in the classifier's own scale.

        Returns:
            An :class:`AverageCaseEstimate`.
        """
        access = "outputs" if self.method == "mc" else "gradients"
        engine = BatchEngine(self.classifier, self._options, access=access)
        _, columns = engine.compute(_AverageCaseEstimator(self, access), x)
        truncation = columns.truncation
        if truncation.max() > self.mvn_tolerance:
            logger.info(
                "keeping %s competitors can overstate p by up to %.2g (median %.2g)",
                self.competitors, truncation.max(), np.median(truncation),
            )
        return AverageCaseEstimate(
            columns.values,
            columns.lower,
            columns.upper,
            columns.predicted,
            self.method,
            float(self.sigma),
            self.samples,
            truncation,
        )


class _AverageCasePlan(NamedTuple):
    batch_size: int
    class_chunk: int | None
    noise_per_pass: int
    label: str = ""


class _AverageCasePart(NamedTuple):
    """One batch's estimate, interval or bounds, clean predictions and truncation, per input."""

    values: Any
    lower: Any
    upper: Any
    predicted: Any
    truncation: Any


class _AverageCaseEstimator:
    """The per-batch estimator of :class:`AverageCaseRobustness` (each input's own noise)."""

    description = "average-case robustness"

    def __init__(self, metric: AverageCaseRobustness, access: str) -> None:
        self.metric = metric
        self.access = access
        self.method = metric.method
        self.base = metric.method.removesuffix("_mvs")
        self.description = f"average-case robustness ({metric.method})"

    def plan(self, engine: BatchEngine, x: np.ndarray) -> _AverageCasePlan:
        """Inputs per batch, classes per backward pass and noisy copies per forward pass.

        All within the memory budget (:mod:`art_fim.memory`): Monte Carlo holds one forward
        pass of the noisy copies; Taylor one exact-route Jacobian per batch; MMSE, per input,
        the Jacobian of its ``N`` noisy copies and the ``K − 1`` averaged rows.
        """
        metric = self.metric
        if self.base == "mc":
            per_pass = engine.noisy_copies_per_pass(x, metric.noise_batch_size)
            return _AverageCasePlan(metric.batch_size, None, per_pass)
        if self.base == "taylor":
            size, class_chunk = engine.exact_plan(x, metric.batch_size)
            return _AverageCasePlan(size, class_chunk, 0)
        requested = max(1, min(metric.batch_size, metric.noise_batch_size // metric.samples))
        per_input = mmse_bytes(engine.footprint(x, requested), metric.samples)
        return _AverageCasePlan(engine.batch_size(requested, per_input), None, 0)

    def batch(
        self, engine: BatchEngine, batch: Batch, plan: _AverageCasePlan
    ) -> _AverageCasePart:
        """One batch's estimates."""
        metric = self.metric
        x = torch.as_tensor(batch.x, device=engine.device).to(engine.dtype)
        if self.method == "mc":
            return self._monte_carlo(engine, x, batch.generators, plan.noise_per_pass)
        if self.base == "taylor":
            jac = engine.adapter.jacobian(batch.x, plan.class_chunk)
            z, corr, target = taylor_margins(jac, metric.sigma)
        else:
            target = engine.outputs(x).argmax(1)
            margins, margin_gram = smoothed_margins(
                engine.adapter, x, target, metric.sigma, metric.samples, batch.generators
            )
            z, corr = scaled_margins(margins, margin_gram, metric.sigma)
        z_np = z.cpu().numpy()
        lower, upper = bracketing_bounds(z_np)
        if self.method.endswith("_mvs"):
            values, truncation = mv_sigmoid(z_np), np.zeros(len(z_np))
        else:
            values, truncation = orthant_probability(
                z_np, corr.cpu().numpy(), competitors=metric.competitors,
                tolerance=metric.mvn_tolerance, seed=metric.seed, first_index=batch.start,
            )
        return _AverageCasePart(values, lower, upper, target, truncation)

    def _monte_carlo(
        self,
        engine: BatchEngine,
        x: Tensor,
        generators: list[torch.Generator],
        noise_per_pass: int,
    ) -> _AverageCasePart:
        metric = self.metric
        b, total = x.shape[0], metric.samples
        target = engine.outputs(x).argmax(1)
        kept = torch.zeros(b, dtype=torch.long, device=target.device)
        for outputs in noisy_passes(
            engine.outputs, x, metric.sigma, total, noise_per_pass, generators
        ):
            kept += (outputs.argmax(-1) == target[:, None]).sum(1)
        successes = kept.cpu().numpy()
        lower, upper = binomial_interval(successes, total, metric.confidence, metric.interval)
        return _AverageCasePart(successes / total, lower, upper, target, np.zeros(b))


def average_case_robustness(
    classifier: Any,
    x: np.ndarray,
    sigma: float,
    method: AverageCaseMethod = "mmse",
    batch_size: int = 64,
    verbose: bool = True,
    *,
    num_samples: int | None = None,
    noise_batch_size: int = 512,
    interval: IntervalMethod = "wilson",
    confidence: float = 0.95,
    competitors: int | None = None,
    mvn_tolerance: float = 1e-4,
    seed: int = 0,
    output_type: OutputType = "auto",
    precision: Precision = "float32",
    memory_budget: int | None = None,
) -> np.ndarray:
    """Probability per input that the prediction survives ``N(0, σ²I)`` input noise.

    ``p_σ(x) = P_ε[argmax f(x + ε) = argmax f(x)]``, by Monte Carlo or by the linearised
    (multivariate-normal) estimators of Han et al. Same shape as ``art.metrics.clever_u``: an
    ART classifier and inputs in, NumPy out.

    | Paper link: https://arxiv.org/abs/2307.13885

    Args:
        classifier: An ART classifier or a PyTorch module in eval mode (see
            :class:`AverageCaseRobustness`).
        x: Inputs ``[N, *input_shape]`` in the classifier's own scale.
        sigma: Noise standard deviation in that scale.
        method: ``"mc"``, ``"taylor"``, ``"mmse"``, ``"taylor_mvs"`` or ``"mmse_mvs"``.
        batch_size: Inputs per batch.
        verbose: Show a progress bar.
        num_samples: Noisy copies per input (Monte Carlo and MMSE; see
            :class:`AverageCaseRobustness`).
        noise_batch_size: Noisy inputs per forward pass or per Jacobian.
        interval: ``"wilson"`` or ``"clopper-pearson"`` (Monte Carlo).
        confidence: Two-sided level of the Monte Carlo interval.
        competitors: Classes kept in the orthant probability (``None``: all).
        mvn_tolerance: Error target of the orthant-probability integrator.
        seed: Seed of the noise and of the integrator.
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
        precision: ``"float32"`` (default) or ``"tf32"``.
        memory_budget: Peak bytes of one batch.

    Returns:
        ``p_σ(x)`` per input, shape ``[N]``.
    """
    metric = AverageCaseRobustness(
        classifier, sigma, method, batch_size, num_samples, noise_batch_size, interval,
        confidence, competitors, mvn_tolerance, seed, output_type, verbose, precision,
        memory_budget,
    )
    return metric(x)
