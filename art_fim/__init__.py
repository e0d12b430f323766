"""art_fim: attack-free robustness metrics for ART classifiers.

The core metric is the spectral norm of the input Fisher information matrix
``F(x) = Jᵀ (diag(p) − ppᵀ) J`` (https://arxiv.org/abs/2606.04767).

ART-facing API:
    :func:`fisher_spectral_norm`, :func:`fisher_trace`, :class:`FisherInformationMetric`;
    attack-free robust accuracy, :func:`robust_radius` and :func:`predicted_robust_accuracy`;
    and :func:`fisher_statistics`, every per-input statistic from one Jacobian per batch;
    :func:`average_case_robustness` and :class:`AverageCaseRobustness` (the probability that a
    prediction survives Gaussian noise, https://arxiv.org/abs/2307.13885).
Building blocks:
    :class:`InputJacobian` and its constructions, the exact, Lanczos, power-iteration and
    Hutchinson estimators, the query-only :class:`BlackBoxFisher` (a sketch of ``J Jᵀ`` from
    finite differences), and :func:`summarize` for dataset summaries; the ℓ∞ Fisher variant
    :func:`fisher_linf_bounds`, the noise-KL link :func:`expected_noise_kl`, vulnerability
    rankings (:mod:`art_fim.vulnerability`) and the Tsipras et al. trade-off oracle
    (:mod:`art_fim.tradeoff`).
Certified bounds from the architecture (:mod:`art_fim.lipschitz`):
    :func:`lipschitz_bound` (the logits' ℓ2 Lipschitz constant from the real module graph),
    :func:`certified_fisher_bound`, :func:`certified_radius`, :func:`certified_accuracy`, and the
    exact local side :func:`local_norms` / :func:`tightness`.
"""

from art_fim.adapters import ClassGradientMismatchError, NotDifferentiableError, adapter_for
from art_fim.average_case import AverageCaseEstimate, AverageCaseRobustness, average_case_robustness
from art_fim.blackbox import BlackBoxFisher, sample_directions, sketch_gram
from art_fim.checks import LabelOnlyOutputError
from art_fim.defences import UnsupportedDefenceError
from art_fim.exact import exact_spectral_norm, exact_trace, spectral_statistics, top_eigenvector
from art_fim.finite_differences import FiniteDifferenceJacobian
from art_fim.hutchinson import hutchinson_trace
from art_fim.iterative import EigenResult, lanczos, power_iteration
from art_fim.jacobian import AutogradJacobian, DenseJacobian, InputJacobian
from art_fim.joint_statistics import fisher_statistics
from art_fim.linf_fisher import fisher_linf_bounds
from art_fim.lipschitz import (
    LipschitzBound,
    UnsupportedLayerError,
    certified_accuracy,
    certified_fisher_bound,
    certified_radius,
    jacobian_spectral_norm,
    lipschitz_bound,
    local_norms,
    tightness,
)
from art_fim.margins import first_order_radius
from art_fim.metric import FisherInformationMetric, fisher_spectral_norm, fisher_trace
from art_fim.noise_kl import NoiseKL, expected_noise_kl
from art_fim.results import FisherEstimate, FisherStatistics, summarize
from art_fim.robust_accuracy import predicted_robust_accuracy, robust_radius
from art_fim.tradeoff import TsiprasDistribution
from art_fim.vulnerability import class_averages, rank_agreement, vulnerability_ranking

__version__ = "0.1.0"

__all__ = [
    "AutogradJacobian",
    "AverageCaseEstimate",
    "AverageCaseRobustness",
    "BlackBoxFisher",
    "ClassGradientMismatchError",
    "DenseJacobian",
    "EigenResult",
    "FiniteDifferenceJacobian",
    "FisherEstimate",
    "FisherInformationMetric",
    "FisherStatistics",
    "InputJacobian",
    "LabelOnlyOutputError",
    "LipschitzBound",
    "NoiseKL",
    "NotDifferentiableError",
    "TsiprasDistribution",
    "UnsupportedDefenceError",
    "UnsupportedLayerError",
    "adapter_for",
    "average_case_robustness",
    "certified_accuracy",
    "certified_fisher_bound",
    "certified_radius",
    "class_averages",
    "exact_spectral_norm",
    "exact_trace",
    "expected_noise_kl",
    "first_order_radius",
    "fisher_linf_bounds",
    "fisher_spectral_norm",
    "fisher_statistics",
    "fisher_trace",
    "hutchinson_trace",
    "jacobian_spectral_norm",
    "lanczos",
    "lipschitz_bound",
    "local_norms",
    "power_iteration",
    "predicted_robust_accuracy",
    "rank_agreement",
    "robust_radius",
    "sample_directions",
    "sketch_gram",
    "spectral_statistics",
    "summarize",
    "tightness",
    "top_eigenvector",
    "vulnerability_ranking",
]
