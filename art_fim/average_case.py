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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from art_fim.adapters import ClassifierAdapter
from art_fim.binomial import IntervalMethod, binomial_interval
from art_fim.checks import OutputType, check_positive_int
from art_fim.engine import Batch, BatchEngine, check_memory_budget
from art_fim.gaussian_margins import (
    bracketing_bounds,
    margin_selector,
    mv_sigmoid,
    orthant_probability,
    scaled_margins,
)
from art_fim.jacobian import InputJacobian
from art_fim.noise import noisy_copies
from art_fim.params import Configurable
from art_fim.precision import Precision, check_precision

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
    generator: torch.Generator,
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
        generator: draws the noise.

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
        seed: seed of the noise and of the integrator.
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
        for name in ("batch_size", "noise_batch_size"):
            check_positive_int(name, getattr(self, name))
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
        if self.output_type not in ("auto", "logits", "probabilities"):
            raise ValueError(
                f"output_type must be 'auto', 'logits' or 'probabilities', got {self.output_type!r}"
            )
        check_precision(self.precision)
        check_memory_budget(self.memory_budget)

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
        engine = BatchEngine(
            self.classifier,
            self.output_type,
            access="outputs" if self.method == "mc" else "gradients",
            precision=self.precision,
            memory_budget=self.memory_budget,
            seed=self.seed,
            verbose=self.verbose,
        )
        # One noise stream for the whole call, drawn in input order (as the paper's code does).
        generator = engine.generator()
        with engine.run(x, f"average-case robustness ({self.method})") as run:
            batch_size, class_chunk, per_pass = self._plan(engine, run.x)
            parts = [
                self._estimate_batch(engine, batch, generator, class_chunk, per_pass)
                for batch in run.batches(batch_size)
            ]
        values, lower, upper, predicted, truncation = (np.concatenate(col) for col in zip(*parts))
        if truncation.max() > self.mvn_tolerance:
            logger.info(
                "keeping %s competitors can overstate p by up to %.2g (median %.2g)",
                self.competitors, truncation.max(), np.median(truncation),
            )
        return AverageCaseEstimate(
            values,
            lower,
            upper,
            predicted,
            self.method,
            float(self.sigma),
            self.samples,
            truncation,
        )

    def _plan(self, engine: BatchEngine, x: np.ndarray) -> tuple[int, int | None, int]:
        """Inputs per batch, classes per backward pass and noisy copies per forward pass.

        All within the memory budget:

        Monte Carlo holds one forward pass of the noisy copies
        (:meth:`~art_fim.engine.BatchEngine.noisy_copies_per_pass`); Taylor one exact-route
        Jacobian per batch; MMSE, per input, the Jacobian of its ``N`` noisy copies (the graph
        and one backward pass at a time, ``≤ 4 A`` per copy, ``A`` the graph size of
        :mod:`art_fim.memory`; the float64 ``(K − 1) × K`` margin selector and two
        float64 input-sized rows per copy) and the ``K − 1`` averaged float64 rows.
        """
        base = self.method.removesuffix("_mvs")
        if base == "mc":
            return self.batch_size, None, engine.noisy_copies_per_pass(x, self.noise_batch_size)
        if base == "taylor":
            return (*engine.exact_plan(x, self.batch_size), 0)
        requested = max(1, min(self.batch_size, self.noise_batch_size // self.samples))
        footprint = engine.footprint(x, requested)
        copy = 4 * footprint.activations + 8 * footprint.classes**2 + 16 * footprint.dim
        per_input = self.samples * copy + footprint.classes * footprint.dim * 8
        return engine.batch_size(requested, per_input), None, 0

    def _estimate_batch(
        self,
        engine: BatchEngine,
        batch: Batch,
        generator: torch.Generator,
        class_chunk: int | None,
        per_pass: int,
    ) -> tuple[np.ndarray, ...]:
        x = torch.as_tensor(batch.x, device=engine.device).to(engine.dtype)
        if self.method == "mc":
            return self._monte_carlo(engine, x, generator, per_pass)
        base = self.method.removesuffix("_mvs")
        if base == "taylor":
            jac = engine.adapter.jacobian(batch.x, class_chunk)
            z, corr, target = taylor_margins(jac, self.sigma)
        else:
            target = engine.outputs(x).argmax(1)
            margins, margin_gram = smoothed_margins(
                engine.adapter, x, target, self.sigma, self.samples, generator
            )
            z, corr = scaled_margins(margins, margin_gram, self.sigma)
        z_np = z.cpu().numpy()
        lower, upper = bracketing_bounds(z_np)
        if self.method.endswith("_mvs"):
            values, truncation = mv_sigmoid(z_np), np.zeros(len(z_np))
        else:
            values, truncation = orthant_probability(
                z_np, corr.cpu().numpy(), competitors=self.competitors,
                tolerance=self.mvn_tolerance, seed=self.seed, first_index=batch.start,
            )
        return values, lower, upper, target.cpu().numpy(), truncation

    def _monte_carlo(
        self, engine: BatchEngine, x: Tensor, generator: torch.Generator, noise_per_pass: int
    ) -> tuple[np.ndarray, ...]:
        b, total = x.shape[0], self.samples
        target = engine.outputs(x).argmax(1)
        per_pass = max(1, noise_per_pass // b)
        kept = torch.zeros(b, dtype=torch.long, device=target.device)
        for start in range(0, total, per_pass):
            copies = min(per_pass, total - start)
            predictions = engine.outputs(noisy_copies(x, self.sigma, copies, generator)).argmax(1)
            kept += (predictions.reshape(b, copies) == target[:, None]).sum(1)
        successes = kept.cpu().numpy()
        lower, upper = binomial_interval(successes, total, self.confidence, self.interval)
        return successes / total, lower, upper, target.cpu().numpy(), np.zeros(b)


def average_case_robustness(
    classifier: Any,
    x: np.ndarray,
    sigma: float,
    method: AverageCaseMethod = "mmse",
    batch_size: int = 64,
    verbose: bool = True,
    **kwargs: Any,
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
        kwargs: Further :class:`AverageCaseRobustness` parameters.

    Returns:
        ``p_σ(x)`` per input, shape ``[N]``.
    """
    metric = AverageCaseRobustness(
        classifier, sigma, method=method, batch_size=batch_size, verbose=verbose, **kwargs
    )
    return metric(x)
