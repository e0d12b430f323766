"""Every per-input statistic from one Jacobian per batch: ``fisher_statistics``.

The exact route computes the ``K`` rows of the logit Jacobian ``J`` of each input once; from
them come, with no further pass through the model,

* ``λ_max(F(x))``, ``tr F(x)`` and the top eigenvector of the input Fisher ``F = Jᵀ M J``
  (:func:`art_fim.exact.spectral_statistics`, https://arxiv.org/abs/2606.04767), and
* the first-order robust radius in each threat norm,
  ``r_q(x) = min_{j≠y} (z_y − z_j) / ‖∇(z_y − z_j)‖_{q*}`` (:mod:`art_fim.margins`), whose
  fraction ``≥ ε`` is an attack-free estimate of robust accuracy at ``ε``.

The refinement (on by default: it halves the error against AutoAttack) re-measures the
margins' gradients at the first-order boundary point, for the few competitors that can set
the minimum (``refine_competitors``, the nearest by first-order radius). For ImageNet-size
label spaces (``K`` in the thousands) ``method="auto"`` takes the matrix-free route: Lanczos
for ``λ_max``, Hutchinson for the trace, and the radii from the rows of the ``competitors``
nearest classes by logit margin instead of all ``K``. The radius alone, and robust accuracy
from it, are in :mod:`art_fim.robust_accuracy`.

Caveat: the first-order radius is a prediction, not a bound. It is optimistic where the
margins curve towards the boundary (their gradients grow on the way), and meaningless for
gradient-masked models (obfuscated or shattered gradients, randomised defences), whose
gradients at ``x`` say nothing about their attackability; the refinement corrects the first
case in part, nothing corrects the second. Check such models with an attack.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from art_fim.blackbox import BlackBoxFisher, QueryOptions
from art_fim.checks import OutputType, check_labels, check_positive_int
from art_fim.competitors import nearest_competitors
from art_fim.engine import Batch, BatchEngine
from art_fim.exact import spectral_statistics
from art_fim.finite_differences import box_bounds
from art_fim.margin_norm_bound import DEFAULT_FAILURE, DEFAULT_PROBES
from art_fim.memory import plan_fisher, plan_subset
from art_fim.metric import BatchEstimate, Method, SolverOptions, estimate_batch
from art_fim.norms import norm_name, parse_norm
from art_fim.options import Options
from art_fim.precision import Precision
from art_fim.radii import first_order_radii, refined_radii
from art_fim.results import FisherEstimate, FisherStatistics
from art_fim.subset_proof import PROOF_EXTRA, ProofOptions, prove_subset

logger = logging.getLogger(__name__)

_ROUTES = ("auto", "exact", "lanczos", "blackbox")
#: Competitors per input whose rows the matrix-free route computes for the radii (as targeted
#: attacks take the nearest classes by logit margin).
DEFAULT_COMPETITORS = 20
#: Competitors per input and norm whose gradients the refinement re-measures at the boundary point.
DEFAULT_REFINE_COMPETITORS = 3


def fisher_statistics(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray | None = None,
    norms: tuple[Any, ...] = (np.inf, 2),
    eigenvector: bool = False,
    refine: bool | None = None,
    method: Method = "auto",
    batch_size: int = 128,
    verbose: bool = True,
    competitors: int = DEFAULT_COMPETITORS,
    refine_competitors: int = DEFAULT_REFINE_COMPETITORS,
    box: bool = True,
    *,
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
) -> FisherStatistics:
    """Compute ``λ_max``, ``tr F``, robust radii (and the top eigenvector) from one Jacobian.

    The values equal those of separate :func:`~art_fim.fisher_spectral_norm`,
    :func:`~art_fim.fisher_trace` and :func:`~art_fim.robust_radius` calls with the same settings,
    at the cost of one of them (plus the refinement's few gradients at the boundary points). Routes:
    ``"exact"`` forms the ``K`` Jacobian rows (``λ_max``, trace and radii over all ``K − 1``
    competitors); ``"lanczos"`` is matrix-free (Lanczos for ``λ_max``, Hutchinson with standard
    errors for the trace) and takes the radii from the rows of the label and its ``competitors``
    nearest classes by logit margin (all of them, bit for bit the exact radii, when ``competitors ≥
    K − 1``); ``"auto"`` takes the cheaper of the two (:func:`~art_fim.memory.prefers_matrix_free`:
    Lanczos for ``K > 2 · num_iter``, i.e. ImageNet) or the one that fits the memory budget. The
    result's ``competitors`` records how many competitors the radii saw.

    Radii from a subset of classes are never optimistic unannounced: per input, the omitted
    classes are proven unable to set the radius (first-order and refined, in the box or not)
    from upper bounds on every margin's gradient norm (``proof_probes`` random JVPs,
    :mod:`art_fim.margin_norm_bound`; they hold with probability ``≥ 1 − proof_failure`` per
    input), adding up to ``2 · competitors`` more classes where the first test fails
    (:mod:`art_fim.competitor_proof`, :mod:`art_fim.subset_proof`; as many as fit
    ``memory_budget``, and no proof, every radius unproven, where its float64 basis does not
    fit: :func:`~art_fim.memory.plan_subset`). Each radius's ``proven``
    flags record the outcome (summary: :attr:`~art_fim.results.FisherStatistics.proven_fraction`);
    an unproven radius keeps the subset value as an upper estimate and counts as not robust.

    | Paper link: https://arxiv.org/abs/2606.04767

    Args:
        classifier: As for :func:`~art_fim.fisher_spectral_norm`.
        x: Inputs ``[N, *input_shape]`` in the classifier's own scale.
        y: Labels (indices ``[N]`` or one-hot ``[N, nb_classes]``); ``None``: the predicted
            classes, so that each radius is the distance to the decision boundary.
        norms: Threat norms of the radii: any of ``np.inf``, ``2``, ``1`` (empty: none).
        eigenvector: Also return the top eigenvector of ``F(x)`` (exact route only).
        refine: Also compute the refined radius (``False`` keeps the one-pass, first-order
            estimate; ``None``: refined on the white-box routes, which can, first-order on
            the query-only one, which cannot).
        method: ``"auto"``, ``"exact"``, ``"lanczos"`` or ``"blackbox"`` (``λ_max``, trace and
            ``ℓ2`` radius from a query sketch; ``ℓ∞`` / ``ℓ1`` radii in coordinate mode only).
        batch_size: Inputs per batch.
        verbose: Show a progress bar.
        competitors: Competitors per input the matrix-free route's radii consider.
        refine_competitors: Competitors per input and norm whose margin gradients the
            refinement re-measures at the boundary point (the nearest by first-order radius).
        box: Take each linearised margin's distance inside the classifier's ``clip_values``
            (exact for linear models; :func:`art_fim.box_search.box_radius_from_margins`);
            ``False``: the unconstrained ``g / ‖∇g‖_{q*}``. No effect without ``clip_values``.
        proof_probes: Random JVPs per input that bound the omitted classes' margin gradients
            (matrix-free route only).
        proof_failure: Probability per input that those bounds fail (``δ``).
        num_iter: Maximum Lanczos iterations (matrix-free route).
        tol: Relative tolerance of Lanczos.
        num_probes: Hutchinson probes per input (matrix-free route's trace).
        seed: Seed of every random draw (each input has its own stream).
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
        memory_budget: Peak bytes of one batch (see :class:`~art_fim.FisherInformationMetric`).
        blackbox_params: Options of the query-only route (:class:`~art_fim.BlackBoxFisher`).
        precision: ``"float32"`` (default) or ``"tf32"``.

    Returns:
        A :class:`~art_fim.results.FisherStatistics`.
    """
    options = Options(output_type, precision, memory_budget, seed, verbose, batch_size)
    solver = SolverOptions(num_iter, tol, num_probes)
    query = QueryOptions.from_params(blackbox_params)
    return statistics(
        classifier, x, y, norms, eigenvector, refine, method, competitors, refine_competitors,
        box, options, solver, query, ProofOptions(proof_probes, proof_failure),
    )


def statistics(
    classifier: Any,
    x: np.ndarray,
    y: np.ndarray | None,
    norms: tuple[Any, ...],
    eigenvector: bool,
    refine: bool | None,
    method: str,
    competitors: int,
    refine_competitors: int,
    box: bool,
    options: Options,
    solver: SolverOptions,
    query: QueryOptions,
    proof: ProofOptions = ProofOptions(),
) -> FisherStatistics:
    """:func:`fisher_statistics` with its settings already gathered (see there)."""
    norms = tuple(dict.fromkeys(parse_norm(norm) for norm in norms))
    if method not in _ROUTES:
        raise ValueError(
            f"method={method!r} cannot give the robust radius, which needs Jacobian rows; "
            f"choose one of {', '.join(_ROUTES)}."
        )
    check_positive_int("competitors", competitors)
    check_positive_int("refine_competitors", refine_competitors)
    proof.check()
    if method == "blackbox":
        if eigenvector or refine:  # asked for explicitly: refine=None means "where possible"
            raise ValueError(
                "eigenvector=True and refine=True need input gradients at new points; the "
                "query-only route gives neither. Pass refine=False (and eigenvector=False), or use "
                "a white-box classifier."
            )
        return _blackbox_statistics(BlackBoxFisher.from_options(classifier, options, query), x, y,
                                    norms)
    estimator = StatisticsEstimator(
        y, norms, eigenvector, refine is not False, method, int(competitors),
        int(refine_competitors), bool(box), solver, options.batch_size,
        ProofOptions(int(proof.probes), float(proof.failure)),
    )
    plan, columns = BatchEngine(classifier, options).compute(estimator, x)
    return estimator.result(plan, columns, options.precision)


@dataclass(frozen=True)
class StatisticsPlan:
    """How the white-box statistics cut a run (:meth:`StatisticsEstimator.plan`).

    Attributes:
        route: ``"exact"``, ``"lanczos"`` or ``"power"``.
        batch_size: inputs per batch.
        class_chunk: classes per batched backward pass (``None``: all).
        kept: competitors per input the radii consider.
        radius_norms: the norms whose radii are computed (none when the rows do not fit).
        refine: whether the refinement runs.
        bounds: the flattened input box, or ``None``.
        input_shape: the shape of one input.
        probe_chunk: probes per vectorised JVP of the subset proof.
        proof_limit: the most classes the subset proof may add per input.
        prove: whether the subset proof runs (else subset radii are all unproven).
    """

    route: str
    batch_size: int
    class_chunk: int | None
    kept: int
    radius_norms: tuple[float, ...]
    refine: bool
    bounds: tuple[Tensor, Tensor] | None
    input_shape: tuple[int, ...]
    probe_chunk: int = 1
    proof_limit: int = 0
    prove: bool = False

    @property
    def label(self) -> str:
        """The route, for the progress bar."""
        return self.route


class StatisticsPart(NamedTuple):
    """One batch's statistics, per input."""

    spectral_norm: BatchEstimate
    trace: BatchEstimate
    eigenvector: Tensor | None
    labels: Tensor
    predictions: Tensor
    correct: Tensor
    num_classes: np.ndarray
    radius: dict[str, Tensor]
    refined: dict[str, Tensor]
    proven: dict[str, Tensor]


class StatisticsEstimator:
    """The white-box per-batch estimator of every statistic (run by the batch engine)."""

    access = "gradients"
    description = "Fisher statistics"

    def __init__(
        self,
        y: np.ndarray | None,
        norms: tuple[float, ...],
        eigenvector: bool,
        refine: bool,
        method: str,
        competitors: int,
        refine_competitors: int,
        box: bool,
        solver: SolverOptions,
        requested: int,
        proof: ProofOptions = ProofOptions(),
    ) -> None:
        self.y = y
        self.norms = norms
        self.eigenvector = eigenvector
        self.refine = refine
        self.method = method
        self.competitors = competitors
        self.refine_competitors = refine_competitors
        self.box = box
        self.solver = solver
        self.requested = requested
        self.proof = proof
        self.labels: np.ndarray | None = None

    def plan(self, engine: BatchEngine, x: np.ndarray) -> StatisticsPlan:
        """The route and the batch, and on the matrix-free route the competitor rows'.

        From :func:`~art_fim.memory.plan_fisher` and :func:`~art_fim.memory.plan_subset`.

        Raises:
            ValueError: ``eigenvector=True`` off the exact route, or bad labels.
        """
        self.labels = None if self.y is None else check_labels(self.y, len(x))
        bounds = box_bounds(engine.adapter.clip_values, tuple(x.shape[1:]))
        bounds_t = None if bounds is None else (torch.tensor(bounds[0]), torch.tensor(bounds[1]))
        fisher = plan_fisher(
            engine.footprint(x, self.requested), engine.budget, self.requested, self.method,
            True, self.solver.num_iter, self.solver.num_probes, engine.matrix_free,
        )
        size, class_chunk = fisher.batch_size, fisher.class_chunk
        radius_norms, refine = self.norms, self.refine
        probes, limit, prove = 1, 0, False
        if fisher.method != "exact":
            if self.eigenvector:
                raise ValueError(
                    "eigenvector=True needs the K Jacobian rows of the exact route; pass "
                    "method='exact' (and raise memory_budget if it does not fit) or leave "
                    "eigenvector False."
                )
            # The rows and the proof's, with as many added classes as fit the budget.
            extra = PROOF_EXTRA * self.competitors
            fits = plan_subset(fisher, self.competitors, extra)
            if fits is None:
                if self.norms:
                    logger.warning(
                        "the Jacobian rows of one input's label and competitors exceed the memory "
                        "budget: λ_max and the trace take the matrix-free routes and the robust "
                        "radii are not computed (NaN); raise memory_budget or lower competitors "
                        "to compute them."
                    )
                radius_norms = ()  # NaN, first-order and refined alike
            else:
                omitted = max(0, fisher.footprint.classes - 1 - self.competitors)
                if self.norms and omitted and not fits.proof:
                    logger.warning(
                        "the subset proof's float64 basis exceeds the memory budget: the radii "
                        "from the nearest %d competitors are not proven and count as not robust; "
                        "raise memory_budget to prove them.", self.competitors,
                    )
                elif self.norms and fits.added < min(extra, omitted):
                    logger.warning(
                        "the memory budget leaves room for %d of the %d classes the subset proof "
                        "may add per input: radii it cannot prove with them count as not robust; "
                        "raise memory_budget to prove more.", fits.added, min(extra, omitted),
                    )
                size, class_chunk = fits.batch_size, fits.class_chunk
                probes, limit, prove = fits.probe_chunk, fits.added, fits.proof
        classes = fisher.footprint.classes
        kept = classes - 1 if fisher.method == "exact" else min(self.competitors, classes - 1)
        return StatisticsPlan(
            fisher.method, size, class_chunk, kept, radius_norms, refine, bounds_t,
            tuple(x.shape[1:]), probes, limit, prove,
        )

    def batch(self, engine: BatchEngine, batch: Batch, plan: StatisticsPlan) -> StatisticsPart:
        """One batch's statistics from one Jacobian (and the refinement's, at the boundary)."""
        adapter, b = engine.adapter, len(batch)
        jac = adapter.jacobian(batch.x, plan.class_chunk)
        if batch.start == 0 and self.y is not None:
            # The class range, now that K is known.
            check_labels(self.y, len(self.labels), jac.num_classes)
        target = (
            jac.logits.argmax(1) if self.labels is None
            else torch.from_numpy(self.labels[batch.start : batch.stop]).to(jac.device)
        )
        predictions = jac.logits.argmax(1)
        num_classes = np.full(b, jac.num_classes)
        if plan.route == "exact":
            rows, classes = jac.rows(), None
            lam, trace_values, vector = spectral_statistics(rows, jac.probs, self.eigenvector)
            spectral = _exact(lam, num_classes)
            trace = _exact(trace_values, num_classes)
        else:
            generators = batch.generators  # one stream per input, for Lanczos then Hutchinson
            spectral = estimate_batch(jac, plan.route, "spectral_norm", self.solver, generators)
            trace = estimate_batch(jac, "hutchinson", "trace", self.solver, generators)
            # The label's row alone where no radius is computed within the budget.
            count = self.competitors if plan.radius_norms else 0
            classes = nearest_competitors(jac.logits, target, count)
            rows, vector = jac.class_rows(classes), None
        every_logit = jac.logits

        def radii_of(rows: Tensor, classes: Tensor | None) -> tuple[dict[str, Tensor], Any]:
            logits = every_logit if classes is None else every_logit.gather(1, classes)
            return first_order_radii(
                rows, logits, target, plan.radius_norms, batch.x, plan.bounds, plan.refine,
                classes, self.box,
            )

        (radius, boundaries), proven = radii_of(rows, classes), {}
        subset = classes is not None and plan.radius_norms and classes.shape[1] < jac.num_classes
        if subset and not plan.prove:  # the proof does not fit the budget: none is proven
            proven = {
                f"{norm_name(norm)}{kind}": torch.zeros(b, dtype=torch.bool)
                for norm in plan.radius_norms for kind in ("", "_refined")
            }
        elif subset:
            # A subset of the classes: prove that it sets the radii, or flag them.
            rows, (radius, boundaries), proven = prove_subset(
                jac, target, classes, rows, (radius, boundaries), plan.radius_norms, radii_of,
                self.proof, plan.proof_limit,
                self.refine_competitors if plan.refine else 0, batch.generators,
                plan.probe_chunk,
            )
        del jac  # the refinement's Jacobians need the memory of this one's graph
        refined = refined_radii(
            adapter, boundaries, plan.class_chunk, self.refine_competitors, rows
        )
        del rows
        nan = torch.full((b,), math.nan, dtype=torch.float64)
        for norm in self.norms:  # not computed within the memory budget: NaN, refined too
            if norm not in plan.radius_norms:
                radius[norm_name(norm)] = refined[norm_name(norm)] = nan
        return StatisticsPart(
            spectral, trace, vector, target, predictions, predictions == target, num_classes,
            radius, refined, proven,
        )

    def result(
        self, plan: StatisticsPlan, columns: StatisticsPart, precision: str
    ) -> FisherStatistics:
        """The :class:`~art_fim.results.FisherStatistics` of the concatenated batches."""
        n = len(columns.labels)
        batch_size = min(plan.batch_size, n)  # the batches actually formed
        ones = np.ones(n, dtype=bool)

        def radius(values: np.ndarray, method: str, passes: int, key: str) -> FisherEstimate:
            # Subset radii carry per-input proof flags; not computed (NaN) or all classes: none.
            proven = columns.proven.get(key)
            return FisherEstimate(
                values, np.zeros(n), passes * columns.num_classes, ones, method,
                batch_size=batch_size, precision=precision,
                proven=None if proven is None else proven.astype(bool),
            )

        route = plan.route
        spectral = _estimate(columns.spectral_norm, route, batch_size, precision)
        trace = _estimate(
            columns.trace, "exact" if route == "exact" else "hutchinson", batch_size, precision
        )
        method = "exact" if route == "exact" else f"competitors={self.competitors}"
        radii = {
            name: radius(columns.radius[name], method, 1, name)
            for name in map(norm_name, self.norms)
        }
        refined = (
            {
                name: radius(columns.refined[name], f"{method}+refined", 2, f"{name}_refined")
                for name in map(norm_name, self.norms)
            }
            if plan.refine
            else {}
        )
        vectors = (
            columns.eigenvector.reshape(n, *plan.input_shape)
            if self.eigenvector and route == "exact"
            else None
        )
        return FisherStatistics(
            spectral_norm=spectral,
            trace=trace,
            radius=radii,
            refined_radius=refined,
            eigenvector=vectors,
            labels=columns.labels.astype(np.int64),
            predictions=columns.predictions.astype(np.int64),
            correct=columns.correct.astype(bool),
            competitors=plan.kept,
            refine_competitors=self.refine_competitors if plan.refine else 0,
            precision=precision,
            proof_failure=None if route == "exact" else self.proof.failure,
        )


def _exact(values: Tensor, num_classes: np.ndarray) -> BatchEstimate:
    """An exact route's values as a batch estimate: no error, ``K`` products per input."""
    b = len(num_classes)
    ones, no_dof = np.ones(b, dtype=bool), np.full(b, np.inf)
    return BatchEstimate(values, np.zeros(b), num_classes, ones, no_dof)


def _estimate(
    columns: BatchEstimate, method: str, batch_size: int, precision: str
) -> FisherEstimate:
    return FisherEstimate(
        columns.values, columns.stderr, columns.iterations, columns.converged, method,
        dof=columns.dof if method == "hutchinson" else None, batch_size=batch_size,
        precision=precision,
    )


def _blackbox_statistics(
    fisher: BlackBoxFisher, x: np.ndarray, y: np.ndarray | None, norms: tuple[float, ...]
) -> FisherStatistics:
    """λ_max, trace and radii from one set of queries per input (``BlackBoxFisher``)."""
    quantities = ("spectral_norm", "trace", *(f"radius_{norm_name(norm)}" for norm in norms))
    estimates = fisher.estimate_many(x, quantities, y)
    outputs = fisher.outputs(x)
    predictions = outputs.argmax(1)
    labels = predictions if y is None else check_labels(y, len(predictions), outputs.shape[1])
    return FisherStatistics(
        spectral_norm=estimates["spectral_norm"],
        trace=estimates["trace"],
        radius={norm_name(norm): estimates[f"radius_{norm_name(norm)}"] for norm in norms},
        refined_radius={},
        eigenvector=None,
        labels=labels,
        predictions=predictions.astype(np.int64),
        correct=predictions == labels,
        competitors=outputs.shape[1] - 1,
        precision=fisher.options.precision,
    )
