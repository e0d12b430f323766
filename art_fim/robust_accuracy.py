"""Attack-free robust accuracy: the robust radius per input, and the fraction robust at ``eps``.

The radius is :func:`~art_fim.fisher_statistics`' (first-order or refined, :mod:`art_fim.margins`)
of one threat norm, or on the query-only route the first-order radius of the query sketch
(:class:`~art_fim.BlackBoxFisher`). It is a prediction, not a bound: optimistic where the
margins curve towards the boundary, and meaningless for gradient-masked models (see
:mod:`art_fim.joint_statistics`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from art_fim.blackbox import BlackBoxFisher, QueryOptions
from art_fim.checks import OutputType
from art_fim.curve import refuse_missing, robust_fraction
from art_fim.joint_statistics import DEFAULT_COMPETITORS, DEFAULT_REFINE_COMPETITORS, statistics
from art_fim.margin_norm_bound import DEFAULT_FAILURE, DEFAULT_PROBES
from art_fim.metric import Method, SolverOptions
from art_fim.norms import norm_name
from art_fim.options import Options
from art_fim.precision import Precision
from art_fim.results import FisherEstimate
from art_fim.subset_proof import ProofOptions


def robust_radius(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    norm: Any = np.inf,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    refine: bool | None = None,
    *,
    competitors: int = DEFAULT_COMPETITORS,
    refine_competitors: int = DEFAULT_REFINE_COMPETITORS,
    box: bool = True,
    proof_probes: int = DEFAULT_PROBES,
    proof_failure: float = DEFAULT_FAILURE,
    num_iter: int = 50,
    tol: float = 1e-6,
    num_probes: int = 100,
    seed: int = 0,
    output_type: OutputType = "auto",
    memory_budget: int | None = None,
    blackbox_params: Mapping[str, Any] | None = None,
    precision: Precision = "float32",
) -> np.ndarray:
    r"""Compute the robust radius per input: the (refined) linearised distance to the boundary.

    The first-order radius is

    .. math::  r_q(x) = \min_{j ≠ y} \frac{z_y − z_j}{‖∇_x (z_y − z_j)‖_{q^*}}

    with ``q*`` the dual norm (``ℓ1`` for an ``ℓ∞`` threat, ``ℓ2`` for ``ℓ2``, ``ℓ∞`` for
    ``ℓ1``), and ``0`` where the prediction is wrong: exact for linear models without box
    constraints, invariant to rescaling the logits. By default it is refined: each margin is
    divided by the larger of its dual gradient norms at ``x`` and at the first-order boundary
    point (for the competitors that can set the minimum), never larger than ``r_q`` and
    equal for linear models; ``refine=False`` returns ``r_q`` itself (one Jacobian pass). It
    is an estimate, not a certificate: optimistic where the margins curve towards the
    boundary, and meaningless for gradient-masked models (see the module docstring).

    | Paper link: https://arxiv.org/abs/1705.08475 (the linearised margin bound)

    Args:
        classifier: As for :func:`~art_fim.fisher_spectral_norm`.
        x: Inputs ``[N, *input_shape]`` in the classifier's own scale.
        y: Labels, indices ``[N]`` or one-hot ``[N, nb_classes]``.
        norm: Threat norm: ``np.inf``, ``2`` or ``1``.
        method: ``"auto"``, ``"exact"``, ``"lanczos"`` (radii from the nearest competitors) or
            ``"blackbox"`` (``ℓ2`` from the query sketch; ``ℓ∞`` and ``ℓ1`` in coordinate mode
            only; first-order).
        batch_size: Inputs per batch.
        verbose: Show a progress bar.
        refine: Refine the radius (``None``: wherever the route can, i.e. white-box).
        competitors: Competitors per input the matrix-free route's radii consider.
        refine_competitors: Competitors per input whose gradients the refinement re-measures.
        box: Take the distances inside the classifier's ``clip_values``.
        proof_probes: Random JVPs per input that bound the omitted classes' margin gradients
            (matrix-free route only; :func:`~art_fim.fisher_statistics`).
        proof_failure: Probability per input that those bounds fail (``δ``).
        num_iter: Maximum Lanczos iterations (matrix-free route).
        tol: Relative tolerance of Lanczos.
        num_probes: Hutchinson probes per input (matrix-free route).
        seed: Seed of every random draw.
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
        memory_budget: Peak bytes of one batch (see :class:`~art_fim.FisherInformationMetric`).
        blackbox_params: Options of the query-only route (:class:`~art_fim.BlackBoxFisher`).
        precision: ``"float32"`` (default) or ``"tf32"``.

    Returns:
        Radius per input in the classifier's input scale, shape ``[N]``. On the matrix-free
        route a radius not proven to be the minimum over all classes is an upper estimate,
        announced by a ``UserWarning``; :func:`~art_fim.fisher_statistics` gives the per-input
        flags.

    Raises:
        ValueError: radii not computed within ``memory_budget`` (as
            :meth:`~art_fim.FisherStatistics.predicted_robust_accuracy` refuses them).
    """
    estimate = radius_estimate(
        classifier, x, y, norm, method, refine, competitors, refine_competitors, box,
        Options(output_type, precision, memory_budget, seed, verbose, batch_size),
        SolverOptions(num_iter, tol, num_probes), QueryOptions.from_params(blackbox_params),
        ProofOptions(proof_probes, proof_failure),
    )
    if estimate.proven is not None and not estimate.proven.all():
        warnings.warn(
            f"{int((~estimate.proven).sum())} of {estimate.proven.size} {norm_name(norm)} radii "
            f"are upper estimates: taken over the label and its nearest competitors, they are not "
            "proven to be the minimum over all classes (predicted_robust_accuracy counts them "
            "as not robust). Raise competitors, or pass method='exact'.",
            stacklevel=2,
        )
    return estimate.values


def predicted_robust_accuracy(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps: float,
    norm: Any = np.inf,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    refine: bool | None = None,
    *,
    competitors: int = DEFAULT_COMPETITORS,
    refine_competitors: int = DEFAULT_REFINE_COMPETITORS,
    box: bool = True,
    proof_probes: int = DEFAULT_PROBES,
    proof_failure: float = DEFAULT_FAILURE,
    num_iter: int = 50,
    tol: float = 1e-6,
    num_probes: int = 100,
    seed: int = 0,
    output_type: OutputType = "auto",
    memory_budget: int | None = None,
    blackbox_params: Mapping[str, Any] | None = None,
    precision: Precision = "float32",
) -> float:
    """Estimate robust accuracy at ``eps`` without an attack: the fraction correct, radius ≥ eps.

    Uses the refined radius by default (within a point of AutoAttack on the project's zoo);
    see :func:`robust_radius` for the radius and its caveats (optimistic on curved or
    gradient-masked models). On the matrix-free route an input whose radius is not proven to
    be the minimum over all classes counts as not robust (:func:`~art_fim.fisher_statistics`).
    For the whole accuracy-vs-ε curve from one pass, use
    :meth:`~art_fim.FisherStatistics.accuracy_curves` on :func:`~art_fim.fisher_statistics`.

    Args:
        classifier: As for :func:`~art_fim.fisher_spectral_norm`.
        x: Inputs ``[N, *input_shape]`` in the classifier's own scale.
        y: Labels, indices ``[N]`` or one-hot ``[N, nb_classes]``.
        eps: Perturbation budget in the classifier's input scale (e.g. ``8/255``).
        norm: Threat norm: ``np.inf``, ``2`` or ``1``.
        method: ``"auto"``, ``"exact"``, ``"lanczos"`` or ``"blackbox"``.
        batch_size: Inputs per batch.
        verbose: Show a progress bar.
        refine: Use the refined radius (``None``: wherever the route can).
        competitors: Competitors per input the matrix-free route's radii consider.
        refine_competitors: Competitors per input whose gradients the refinement re-measures.
        box: Take the distances inside the classifier's ``clip_values``.
        proof_probes: Random JVPs per input that bound the omitted classes' margin gradients
            (matrix-free route only; :func:`~art_fim.fisher_statistics`).
        proof_failure: Probability per input that those bounds fail (``δ``).
        num_iter: Maximum Lanczos iterations (matrix-free route).
        tol: Relative tolerance of Lanczos.
        num_probes: Hutchinson probes per input (matrix-free route).
        seed: Seed of every random draw.
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
        memory_budget: Peak bytes of one batch (see :class:`~art_fim.FisherInformationMetric`).
        blackbox_params: Options of the query-only route (:class:`~art_fim.BlackBoxFisher`).
        precision: ``"float32"`` (default) or ``"tf32"``.

    Returns:
        A fraction in ``[0, 1]``.

    Raises:
        ValueError: a bad ``eps``, or radii not computed within ``memory_budget`` (which would
            count as non-robust).
    """
    robust_fraction(np.zeros(1), eps)  # check eps before any work
    estimate = radius_estimate(
        classifier, x, y, norm, method, refine, competitors, refine_competitors, box,
        Options(output_type, precision, memory_budget, seed, verbose, batch_size),
        SolverOptions(num_iter, tol, num_probes), QueryOptions.from_params(blackbox_params),
        ProofOptions(proof_probes, proof_failure),
    )
    return robust_fraction(estimate.values, eps, estimate.proven)


def radius_estimate(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray,
    norm: Any,
    method: Method,
    refine: bool | None,
    competitors: int,
    refine_competitors: int,
    box: bool,
    options: Options,
    solver: SolverOptions,
    query: QueryOptions,
    proof: ProofOptions = ProofOptions(),
) -> FisherEstimate:
    """The radius of one norm, refined where asked for and possible.

    Raises:
        ValueError: no labels, ``refine=True`` on the query-only route, or radii not computed
            within ``memory_budget`` (NaN; no robust fraction may count them).
    """
    if y is None:
        raise ValueError("y is required: pass the labels (indices or one-hot) of x.")
    name = norm_name(norm)
    if method == "blackbox":
        if refine:
            raise ValueError(
                "refine=True needs input gradients at new points, which the query-only route "
                "lacks; pass refine=False."
            )
        # The query-only radius sees every competitor and is never refined.
        estimate = BlackBoxFisher.from_options(classifier, options, query).estimate(
            x, f"radius_{name}", y
        )
    else:
        stats = statistics(
            classifier, x, y, (norm,), False, refine is not False, method, competitors,
            refine_competitors, box, options, solver, query, proof,
        )
        estimate = (stats.refined_radius if refine is not False else stats.radius)[name]
    refuse_missing(estimate.values, name)
    return estimate
