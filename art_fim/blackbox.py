r"""Query-only (black-box) input-Fisher estimators: a sketch of the ``K × K`` Gram ``J Jᵀ``.

A query returns the whole score vector, so a finite difference along a direction ``v`` gives
the ``K``-vector ``J v`` (:mod:`art_fim.finite_differences`). For directions with
``E[v vᵀ] = I``,

.. math::  \hat G = \frac1m \sum_{j=1}^m (J v_j)(J v_j)ᵀ, \qquad E[\hat G] = J Jᵀ,

and the exact formulas of :mod:`art_fim.exact` applied to ``Ĝ`` give
``λ_max(F) ≈ λ_max(Sᵀ Ĝ S)`` and the unbiased ``tr F ≈ Σ_k p_k Ĝ_kk − pᵀ Ĝ p``. Along the top
eigenvector the quadratic form is a mean of ``m`` squared Gaussians, so the relative error
is about ``√(2/m)``, whatever the input dimension ``d``. Directions:

* ``"orthogonal"``: blocks of up to ``d`` Gaussian directions made orthonormal and scaled by
  ``√d`` (each still uniform on the sphere, so ``E[v vᵀ] = I``); the error shrinks by
  ``√(1 − m/d)`` as ``m`` approaches ``d``.
* ``"gaussian"``: independent ``v ∼ N(0, I_d)``.
* ``"coordinate"``: ``v = √d e_i``, ``i = 1..d``: ``Ĝ = J Jᵀ`` exactly (up to the differences).

The first-order robust radius (:mod:`art_fim.margins`) comes from the same queries: the
``ℓ2`` threat's dual norms ``‖∇(z_y − z_j)‖₂² = G_yy + G_jj − 2 G_yj`` from ``Ĝ`` (with a
bootstrap standard error), the ``ℓ∞`` and ``ℓ1`` ones only from the rows of ``J`` itself,
i.e. in coordinate mode.

| Paper link: https://arxiv.org/abs/2606.04767
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from art_fim.checks import OutputType, check_labels, check_positive_int
from art_fim.defences import check_defences
from art_fim.engine import Batch, BatchEngine, BatchPlan
from art_fim.exact import spectrum_from_gram, trace_from_gram
from art_fim.finite_differences import FiniteDifferenceJacobian
from art_fim.jacobian import gram_from_rows
from art_fim.margins import first_order_radius, gram_dual_norms, margins, radius_from_margins
from art_fim.memory import QueryPlan, plan_queries
from art_fim.norms import parse_norm
from art_fim.options import SHARED, Options
from art_fim.precision import Precision
from art_fim.results import FisherEstimate

__all__ = [
    "BlackBoxFisher",
    "FiniteDifferenceJacobian",
    "QueryOptions",
    "sample_directions",
    "sketch_gram",
]

logger = logging.getLogger(__name__)

Directions = Literal["auto", "orthogonal", "gaussian", "coordinate"]
BlackBoxQuantity = Literal["spectral_norm", "trace", "radius_linf", "radius_l2", "radius_l1"]
QUANTITIES: tuple[str, ...] = ("spectral_norm", "trace", "radius_linf", "radius_l2", "radius_l1")
# Quantities that need the rows of J (coordinate mode), not only the Gram J Jᵀ.
_ROW_QUANTITIES = ("radius_linf", "radius_l1")

# Median (over inputs) relative disagreement of the differences at h and 2h above which a
# warning is raised: rounding spoils every input alike, while a ReLU kink crossed by one
# difference spoils only a few.
STEP_TOLERANCE = 0.05


def sample_directions(
    kind: str, start: int, count: int, dim: int, rng: np.random.Generator
) -> np.ndarray:
    """Return ``count`` directions with ``E[v vᵀ] = I``, ``[count, dim]`` float64.

    Args:
        kind: ``"orthogonal"``, ``"gaussian"`` or ``"coordinate"`` (rows ``√d e_i``,
            ``i = start .. start + count − 1``).
        start: index of the first direction (used by ``"coordinate"``).
        count: number of directions.
        dim: input dimension ``d``.
        rng: random generator.
    """
    if kind == "gaussian":
        return rng.standard_normal((count, dim))
    if kind == "coordinate":
        rows = np.zeros((count, dim))
        rows[np.arange(count), start + np.arange(count)] = np.sqrt(dim)
        return rows
    frames = []
    for offset in range(0, count, dim):
        gaussian = rng.standard_normal((dim, min(dim, count - offset)))
        frames.append(_haar_frame(gaussian).T * np.sqrt(dim))
    return np.concatenate(frames)


def _haar_frame(g: np.ndarray) -> np.ndarray:
    """Return ``Q`` of ``g = Q R`` with ``diag R > 0``: for Gaussian ``g``, a Haar-random frame.

    Large frames use CholeskyQR2 (``R = chol(gᵀg)``, twice; two matrix products instead of
    Householder reflections, and the same ``Q``), small ones NumPy's Householder QR.
    """
    if g.size > 2**16:
        q = torch.from_numpy(g)
        for _ in range(2):
            r, info = torch.linalg.cholesky_ex(q.T @ q, upper=True)
            if int(info) != 0:  # too ill-conditioned: Householder
                break
            q = torch.linalg.solve_triangular(r, q, upper=True, left=False)
        else:
            return q.numpy()
    q, r = np.linalg.qr(g)
    return q * np.where(np.diagonal(r) < 0, -1.0, 1.0)


def sketch_gram(jv: Tensor, weights: Tensor | None = None) -> Tensor:
    """Return ``Ĝ = (1/m) Σ_j w_j (J v_j)(J v_j)ᵀ``: ``[..., m, K] -> [..., K, K]`` float64.

    Args:
        jv: directional derivatives ``J v_j``.
        weights: ``[..., m]`` resampling counts (bootstrap), or ``None`` for all ones.
    """
    jv = jv.double()
    weighted = jv if weights is None else jv * weights.double()[..., None]
    return weighted.transpose(-1, -2) @ jv / jv.shape[-2]


def _quantity(
    quantity: str, gram: Tensor, logits: Tensor, labels: Tensor, rows: Tensor | None = None
) -> Tensor:
    """One quantity per sample from the Gram (sketch or exact), or from ``J`` for the radii."""
    if quantity == "trace":
        return trace_from_gram(gram, torch.softmax(logits.double(), -1))
    if quantity == "spectral_norm":
        eigenvalues, _ = spectrum_from_gram(gram, torch.softmax(logits.double(), -1))
        return eigenvalues[:, -1].clamp_min(0.0)
    norm = parse_norm(quantity.removeprefix("radius_"))
    if rows is not None:
        return first_order_radius(rows, logits, labels, norm)
    return radius_from_margins(margins(logits, labels), gram_dual_norms(gram, labels), labels)


def _bootstrap_stderr(
    jv: Tensor,
    logits: Tensor,
    labels: Tensor,
    quantity: str,
    num_bootstrap: int,
    rng: np.random.Generator,
) -> float:
    """Standard deviation of the estimate over directions resampled with replacement."""
    m = jv.shape[0]
    counts = torch.from_numpy(rng.multinomial(m, np.full(m, 1.0 / m), size=num_bootstrap))
    values = [
        _quantity(
            quantity,
            sketch_gram(jv.expand(len(c), -1, -1), c),
            logits.expand(len(c), -1),
            labels.expand(len(c)),
        )
        for c in counts.split(16)
    ]
    return float(torch.cat(values).std())


@dataclass(frozen=True)
class QueryOptions:
    """Settings of the query-only route's sketch, validated once (see :class:`BlackBoxFisher`).

    Attributes:
        max_queries: query budget per input.
        directions: ``"auto"``, ``"orthogonal"``, ``"gaussian"`` or ``"coordinate"``.
        step: finite-difference step along unit directions, or ``None`` for the default.
        dtype: query dtype, or ``None`` for ``x``'s.
        num_bootstrap: bootstrap resamples of the directions for the standard error.
        check_step: compare the differences at ``h`` and ``2h``.
    """

    max_queries: int = 400
    directions: Directions = "auto"
    step: float | None = None
    dtype: str | np.dtype | None = None
    num_bootstrap: int = 100
    check_step: bool = True

    def __post_init__(self) -> None:
        """Validate every setting; the dtype becomes a NumPy dtype."""
        if self.directions not in ("auto", "orthogonal", "gaussian", "coordinate"):
            raise ValueError(
                "directions must be 'auto', 'orthogonal', 'gaussian' or 'coordinate', got "
                f"{self.directions!r}"
            )
        check_positive_int("max_queries", self.max_queries)
        check_positive_int("num_bootstrap", self.num_bootstrap, low=0)
        if self.step is not None and not self.step > 0:
            raise ValueError(f"step must be positive, got {self.step!r}")
        if self.dtype is not None:
            object.__setattr__(self, "dtype", np.dtype(self.dtype))

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> QueryOptions:
        """The settings from a metric's ``blackbox_params`` (the shared settings refused there).

        Raises:
            ValueError: not a dict, an unknown key, a shared setting (``seed``, ...: passed to
                the metric itself), or an invalid value.
        """
        if params is None:
            return cls()
        if not isinstance(params, Mapping):
            raise ValueError(f"blackbox_params must be a dict, got {type(params).__name__}")
        accepted = [field.name for field in fields(cls)]
        for key in params:
            if key in SHARED:
                raise ValueError(
                    f"blackbox_params[{key!r}]: pass {key}= to the metric itself, which hands it "
                    "on."
                )
            if key not in accepted:
                valid = ", ".join(sorted(accepted))
                raise ValueError(f"Unknown blackbox_params key {key!r}; valid: {valid}")
        return cls(**params)

    def directions_plan(self, dim: int) -> tuple[str, int]:
        """Return the direction kind and the number ``m`` of directions for dimension ``d``."""
        overhead = 1 + (2 if self.check_step else 0)
        coordinate_budget = self.coordinate_budget(dim)
        kind = self.directions
        if kind == "auto":
            kind = "coordinate" if self.max_queries >= coordinate_budget else "orthogonal"
        if kind == "coordinate":
            if self.max_queries < coordinate_budget:
                raise ValueError(
                    f"directions='coordinate' needs max_queries ≥ {coordinate_budget} (2d + "
                    f"{overhead} for d = {dim}), got {self.max_queries}."
                )
            return kind, dim
        m = (self.max_queries - overhead) // 2
        if m < 2:
            raise ValueError(
                f"max_queries must be at least {overhead + 4} (two directions), got "
                f"{self.max_queries}"
            )
        return kind, m

    def coordinate_budget(self, dim: int) -> int:
        """Queries per input that coordinate mode needs at input dimension ``d``."""
        return 1 + (2 if self.check_step else 0) + 2 * dim


class BlackBoxFisher:
    """Input-Fisher ``λ_max`` or trace of any classifier from ``predict`` queries only.

    Works with ART's ``BlackBoxClassifier`` and ``BlackBoxClassifierNeuralNetwork``, any ART
    classifier (only ``predict`` is called), a plain function ``[n, *shape] -> [n, K]``, or a
    ``torch.nn.Module`` seen as a black box. Per input: one query at ``x``, two per direction,
    and two more to compare the differences at steps ``h`` and ``2h`` (a warning says when
    rounding dominates). The queries of several inputs are batched into few ``predict`` calls.

    | Paper link: https://arxiv.org/abs/2606.04767

    Args:
        classifier: the classifier; ``input_shape`` and ``clip_values`` are read from it
            when present, and no query leaves ``clip_values``.
        max_queries: query budget per input; ``m = (max_queries − 3) // 2`` directions
            (``(max_queries − 1) // 2`` without the step check).
        directions: ``"orthogonal"``, ``"gaussian"``, ``"coordinate"`` (``Ĝ = J Jᵀ``, needs
            ``max_queries ≥ 2d + 3``) or ``"auto"``: coordinate when the budget allows it,
            orthogonal otherwise.
        step: finite-difference step along unit directions; default ``ε^{1/3}`` times the
            input range, ``ε`` the roundoff of the query and score dtypes.
        dtype: query dtype, ``"float32"`` or ``"float64"`` (pass float64 when the classifier
            computes in float64); default ``x``'s dtype.
        num_bootstrap: bootstrap resamples of the directions for the standard error (``0``:
            none). Resampling treats directions as independent, so for orthogonal ones the
            standard error is conservative. Coordinate mode reports zero.
        check_step: spend two queries per input comparing the differences at ``h`` and ``2h``.
        output_type: ``"auto"`` (detect), ``"logits"`` or ``"probabilities"``.
        seed: seed of the directions and the bootstrap (each input has its own stream).
        batch_size: queries per ``predict`` call (ART's ``batch_size``).
        verbose: show a progress bar.
        precision: ``"float32"`` (default) or ``"tf32"`` (:mod:`art_fim.precision`).
        memory_budget: peak bytes of the query points held at once and of one ``predict``
            call; default: 256 MiB of query points, ``batch_size`` queries per call.
    """

    def __init__(
        self,
        classifier: Any,
        max_queries: int = 400,
        directions: Directions = "auto",
        step: float | None = None,
        dtype: str | np.dtype | None = None,
        num_bootstrap: int = 100,
        check_step: bool = True,
        output_type: OutputType = "auto",
        seed: int = 0,
        batch_size: int = 128,
        verbose: bool = True,
        precision: Precision = "float32",
        memory_budget: int | None = None,
    ) -> None:
        self.classifier = classifier
        self.query = QueryOptions(max_queries, directions, step, dtype, num_bootstrap, check_step)
        self.options = Options(output_type, precision, memory_budget, seed, verbose, batch_size)

    @classmethod
    def from_options(
        cls, classifier: Any, options: Options, query: QueryOptions | None = None
    ) -> BlackBoxFisher:
        """The estimator from settings already validated (a metric's ``method="blackbox"``)."""
        fisher = cls.__new__(cls)
        fisher.classifier = classifier
        fisher.query = query or QueryOptions()
        fisher.options = options
        return fisher

    def _engine(self) -> BatchEngine:
        return BatchEngine(self.classifier, self.options, access="queries")

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The classifier's answers at ``x`` (one query per input), ``[N, K]``."""
        _, columns = self._engine().compute(_Outputs(self.options.batch_size), x)
        return columns

    def estimate(
        self,
        x: np.ndarray,
        quantity: BlackBoxQuantity = "spectral_norm",
        y: np.ndarray | None = None,
    ) -> FisherEstimate:
        """Estimate ``λ_max(F(x))``, ``tr F(x)`` or a first-order robust radius from queries.

        Args:
            x: ``[N, *input_shape]`` inputs in the classifier's own scale.
            quantity: ``"spectral_norm"``, ``"trace"``, ``"radius_l2"``, or (coordinate mode
                only) ``"radius_linf"`` and ``"radius_l1"``.
            y: labels for the radii (indices or one-hot); ``None``: the predicted classes.

        Returns:
            A :class:`~art_fim.results.FisherEstimate` with bootstrap standard errors,
            ``iterations`` = directions and ``queries`` per input.
        """
        return self.estimate_many(x, (quantity,), y)[quantity]

    def estimate_many(
        self,
        x: np.ndarray,
        quantities: tuple[BlackBoxQuantity, ...] = ("spectral_norm", "trace"),
        y: np.ndarray | None = None,
    ) -> dict[str, FisherEstimate]:
        """Estimate several quantities from the same queries (one sketch ``Ĝ`` per input).

        Args:
            x: ``[N, *input_shape]`` inputs in the classifier's own scale.
            quantities: any of :data:`QUANTITIES`.
            y: labels for the radii (indices or one-hot); ``None``: the predicted classes, so
                that a radius is the distance to the decision boundary.

        Returns:
            One :class:`~art_fim.results.FisherEstimate` per quantity.

        Raises:
            ValueError: an unknown quantity, or an ``ℓ∞`` / ``ℓ1`` radius without coordinate mode.
        """
        for quantity in quantities:
            if quantity not in QUANTITIES:
                raise ValueError(
                    f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}"
                )
        check_defences(self.classifier, "blackbox")
        estimator = _SketchEstimator(self.query, self.options, quantities, y)
        plan, columns = self._engine().compute(estimator, x)
        if self.query.check_step:
            _warn_rounding(columns.discrepancy, float(columns.step[-1]))
        n = len(columns.queries)
        return {
            quantity: FisherEstimate(
                values=columns.values[quantity], stderr=columns.stderr[quantity],
                iterations=np.full(n, plan.directions), converged=np.ones(n, dtype=bool),
                method="blackbox", queries=columns.queries, precision=self.options.precision,
            )
            for quantity in quantities
        }

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Return the estimated ``λ_max(F(x))`` per input, shape ``[N]``."""
        return self.estimate(x).values


class _Outputs:
    """The classifier's answers at the inputs, in one pass of ``predict`` calls."""

    access = "queries"
    description = "outputs"

    def __init__(self, per_call: int) -> None:
        self.per_call = per_call

    def plan(self, engine: BatchEngine, x: np.ndarray) -> BatchPlan:
        """All inputs in one batch: ``predict`` cuts them into calls itself."""
        return BatchPlan(max(1, len(x)))

    def batch(self, engine: BatchEngine, batch: Batch, plan: BatchPlan) -> np.ndarray:
        """The answers, ``[B, K]``."""
        return engine.predict(batch.x, batch_size=self.per_call)


@dataclass(frozen=True)
class _SketchPlan:
    """Directions per input and how the queries are cut (one batch: :attr:`batch_size` inputs)."""

    kind: str
    directions: int
    dim: int
    queries: QueryPlan

    @property
    def batch_size(self) -> int:
        """Inputs whose directions are queried together."""
        return self.queries.group

    @property
    def label(self) -> str:
        """The directions, for the progress bar."""
        return f"{self.kind}, {self.directions} directions"


class _SketchPart(NamedTuple):
    """One group's estimates per quantity, queries, step check and step, per input."""

    values: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    queries: np.ndarray
    discrepancy: np.ndarray | None
    step: np.ndarray


class _SketchEstimator:
    """The query-only per-batch estimator: one sketch ``Ĝ`` (or ``J`` itself) per input."""

    access = "queries"
    description = "black-box Fisher"

    def __init__(
        self,
        query: QueryOptions,
        options: Options,
        quantities: tuple[BlackBoxQuantity, ...],
        y: np.ndarray | None,
    ) -> None:
        self.query = query
        self.quantities = quantities
        self.y = y
        self.memory_budget = options.memory_budget
        self.per_call = options.batch_size
        # Decided on the first group, checked on the rest.
        self.output_type: OutputType = options.output_type
        self.labels: Tensor | None = None

    def plan(self, engine: BatchEngine, x: np.ndarray) -> _SketchPlan:
        """The directions and the query cut.

        From :meth:`QueryOptions.directions_plan` and :func:`art_fim.memory.plan_queries`.
        """
        n, dim = len(x), int(np.prod(x.shape[1:]))
        kind, m = self.query.directions_plan(dim)
        row_quantities = [q for q in self.quantities if q in _ROW_QUANTITIES]
        if row_quantities and kind != "coordinate":
            raise ValueError(
                f"{', '.join(row_quantities)} need the rows of J (ℓ1 / ℓ∞ norms of gradient "
                "differences), which a sketch of J Jᵀ along random directions does not give; use "
                f"directions='coordinate' with max_queries ≥ {self.query.coordinate_budget(dim)}, "
                "a white-box classifier, or the ℓ2 radius ('radius_l2')."
            )
        self.labels = None if self.y is None else torch.from_numpy(check_labels(self.y, n))
        activations = 0 if self.memory_budget is None else engine.activation_bytes(x)
        budget = None if self.memory_budget is None else engine.budget
        queries = plan_queries(budget, n, dim, m, activations, self.per_call)
        return _SketchPlan(kind, m, dim, queries)

    def batch(self, engine: BatchEngine, batch: Batch, plan: _SketchPlan) -> _SketchPart:
        """One group's sketches and estimates."""
        query, kind, dim, m = self.query, plan.kind, plan.dim, plan.directions
        rngs = batch.rngs

        def predict(queries: np.ndarray) -> np.ndarray:
            return engine.predict(queries, batch_size=plan.queries.per_call)

        jac = FiniteDifferenceJacobian(
            predict, batch.x, output_type=self.output_type, step=query.step,
            clip_values=engine.clip_values, dtype=query.dtype,
            query_bytes=plan.queries.query_bytes,
        )
        self.output_type = jac.output_type
        if batch.start == 0 and self.y is not None:
            # The class range, now that K is known.
            check_labels(self.y, len(self.labels), jac.num_classes)
        labels = (
            jac.logits.argmax(1) if self.labels is None
            else self.labels[batch.start : batch.stop]
        )
        rows = jv = first = None
        if kind == "coordinate":
            rows = jac.rows()
            gram = gram_from_rows(rows)
        else:
            first_directions: dict[int, np.ndarray] = {}

            def directions(sample: int, start: int, count: int) -> np.ndarray:
                v = sample_directions(kind, start, count, dim, rngs[sample])
                if start == 0:
                    first_directions[sample] = v[0]
                return v

            jv = torch.from_numpy(jac.sketch(directions, m))
            gram = sketch_gram(jv)
            first = np.stack([first_directions[i] for i in range(len(batch))])
        discrepancy = (
            _step_discrepancy(jac, jv, rows, first, rngs) if query.check_step else None
        )
        values, stderr = {}, {}
        for quantity in self.quantities:
            values[quantity] = _quantity(quantity, gram, jac.logits, labels, rows).numpy()
            if jv is None or query.num_bootstrap < 2:
                stderr[quantity] = np.zeros(len(batch))
            else:
                stderr[quantity] = np.array([
                    _bootstrap_stderr(
                        jv[j], jac.logits[j : j + 1], labels[j : j + 1], quantity,
                        query.num_bootstrap, rngs[j],
                    )
                    for j in range(len(batch))
                ])
        return _SketchPart(
            values, stderr, jac.queries.copy(), discrepancy, np.full(len(batch), jac.step)
        )


def _step_discrepancy(
    jac: FiniteDifferenceJacobian,
    jv: Tensor | None,
    rows: Tensor | None,
    first: np.ndarray | None,
    rngs: list[np.random.Generator],
) -> np.ndarray:
    """``‖D_h − D_2h‖ / max(‖D_h‖, ‖D_2h‖)`` per input along one direction (two more queries).

    ``D_h`` is the first sketch direction's difference ``jv[:, 0]`` along ``first``, or in
    coordinate mode (``rows`` given) ``J w`` for a random ``w``.
    """
    if rows is not None:
        first = np.stack([rng.standard_normal(jac.input_dim) for rng in rngs])
        at_h = np.einsum("bkd,bd->bk", rows.numpy(), first)
    else:
        at_h = jv[:, 0].numpy()
    at_2h = jac.directional_derivatives(first[:, None], step=2 * jac.step)[:, 0]
    norm = np.maximum(np.linalg.norm(at_h, axis=-1), np.linalg.norm(at_2h, axis=-1))
    # Both differences exactly zero: the scores did not change at all (rounded away).
    gap = np.linalg.norm(at_h - at_2h, axis=-1)
    return np.where(norm > 0, gap / np.where(norm > 0, norm, 1.0), 1.0)


def _warn_rounding(discrepancy: np.ndarray, step: float) -> None:
    bad = discrepancy > STEP_TOLERANCE
    logger.info(
        "step check: median relative discrepancy %.3g between h and 2h", np.median(discrepancy)
    )
    if np.median(discrepancy) > STEP_TOLERANCE:
        warnings.warn(
            f"Finite differences at steps h={step:.3g} and 2h disagree by up to "
            f"{discrepancy.max():.1%} (median {np.median(discrepancy):.1%}) for "
            f"{int(bad.sum())} of {bad.size} inputs: rounding (or a non-smooth model) "
            "dominates the differences. Query in float64 (dtype='float64', with a classifier "
            "that computes and returns float64) or pass a larger step. If the classifier's "
            "outputs are random (a randomised defence), no step helps: score a deterministic "
            "classifier.",
            RuntimeWarning,
            stacklevel=3,
        )
