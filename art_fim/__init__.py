"""art_fim: attack-free robustness metrics for ART classifiers.

The core metric is the spectral norm of the input Fisher information matrix
``F(x) = Jᵀ (diag(p) − ppᵀ) J`` (https://arxiv.org/abs/2606.04767).

ART-facing API:
    :func:`fisher_spectral_norm`, :func:`fisher_trace`, :class:`FisherInformationMetric`;
    :func:`average_case_robustness` and :class:`AverageCaseRobustness` (the probability that a
    prediction survives Gaussian noise, https://arxiv.org/abs/2307.13885).
Building blocks:
    :class:`InputJacobian` and its constructions, the exact, Lanczos, power-iteration and
    Hutchinson estimators, the query-only :class:`BlackBoxFisher` (a sketch of ``J Jᵀ`` from
    finite differences), and :func:`summarize` for dataset summaries; the ℓ∞ Fisher variant
    :func:`fisher_linf_bounds`, the noise-KL link :func:`expected_noise_kl`, vulnerability
    rankings (:mod:`art_fim.vulnerability`) and the Tsipras et al. trade-off oracle
    (:mod:`art_fim.tradeoff`).
"""

from art_fim.adapters import NotDifferentiableError, adapter_for
from art_fim.average_case import AverageCaseEstimate, AverageCaseRobustness, average_case_robustness
from art_fim.blackbox import BlackBoxFisher, sample_directions, sketch_gram
from art_fim.checks import LabelOnlyOutputError
from art_fim.exact import exact_spectral_norm, exact_trace, top_eigenvector
from art_fim.finite_differences import FiniteDifferenceJacobian
from art_fim.hutchinson import hutchinson_trace
from art_fim.iterative import EigenResult, lanczos, power_iteration
from art_fim.jacobian import AutogradJacobian, DenseJacobian, InputJacobian
from art_fim.linf_fisher import fisher_linf_bounds
from art_fim.metric import FisherInformationMetric, fisher_spectral_norm, fisher_trace
from art_fim.noise_kl import NoiseKL, expected_noise_kl
from art_fim.results import FisherEstimate, summarize
from art_fim.tradeoff import TsiprasDistribution
from art_fim.vulnerability import class_averages, rank_agreement, vulnerability_ranking

__version__ = "0.1.0"

__all__ = [
    "AutogradJacobian",
    "AverageCaseEstimate",
    "AverageCaseRobustness",
    "BlackBoxFisher",
    "DenseJacobian",
    "EigenResult",
    "FiniteDifferenceJacobian",
    "FisherEstimate",
    "FisherInformationMetric",
    "InputJacobian",
    "LabelOnlyOutputError",
    "NoiseKL",
    "NotDifferentiableError",
    "TsiprasDistribution",
    "adapter_for",
    "average_case_robustness",
    "class_averages",
    "exact_spectral_norm",
    "exact_trace",
    "expected_noise_kl",
    "fisher_linf_bounds",
    "fisher_spectral_norm",
    "fisher_trace",
    "hutchinson_trace",
    "lanczos",
    "power_iteration",
    "rank_agreement",
    "sample_directions",
    "sketch_gram",
    "summarize",
    "top_eigenvector",
    "vulnerability_ranking",
]
