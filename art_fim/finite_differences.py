r"""Directional derivatives of a query-only classifier by finite differences.

A query returns the classifier's whole score vector ``z(x) ∈ R^K``, so one central difference
along a unit direction ``u`` gives the ``K``-vector ``J u`` at once:

.. math::  J u ≈ \frac{z(x + h u) − z(x − h u)}{2h},
           \quad \text{error} ≈ \frac{h^2}{6} ‖z'''‖ + \frac{ε |z|}{h},

with ``ε`` the unit roundoff of the queries and scores. The default step balances the two
terms, ``h = ε^{1/3} · r`` with ``r`` the width of ``clip_values`` (or ``max(1, max|x|)``).
When the classifier returns probabilities ``q`` the differences are taken of ``log q``
(floored): they give ``(I − 1qᵀ) J``, whose rows differ from the logit Jacobian's by a
common vector that ``M = diag(p) − ppᵀ`` annihilates, so the Fisher ``Jᵀ M J`` is unchanged.
A binary model's single output becomes two scores first (:func:`art_fim.logits.as_logits`).

Box constraints: a coordinate where ``x ± h u`` would leave ``[low, high]`` is moved
one-sided, by ``2h u_i`` towards the inside of the box in one of the two queries and not at
all in the other. The two queries still differ by exactly ``2h u``, so the quotient is the
same directional derivative, central in the interior coordinates and one-sided (error
``O(h)``) in the boundary ones, and no query leaves the box.

| Paper link: https://arxiv.org/abs/2606.04767
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from art_fim.checks import OutputType, clip_bounds, output_eps, resolve_output_type
from art_fim.jacobian import InputJacobian
from art_fim.logits import as_logits
from art_fim.memory import QUERY_BYTES

logger = logging.getLogger(__name__)

PredictFn = Callable[[np.ndarray], np.ndarray]
#: ``directions(sample, first, n) -> [n, d]``: directions ``first .. first + n − 1`` of a sample.
DirectionsFn = Callable[[int, int, int], np.ndarray]


def default_step(scale: float, eps: float) -> float:
    """Return the central-difference step ``h = ε^{1/3} · scale``.

    Args:
        scale: the input scale: the width of ``clip_values``, or ``max(1, max|x|)``.
        eps: the unit roundoff of the queries and of the scores (the larger of the two).

    Returns:
        The step length along a unit direction.
    """
    return float(eps ** (1.0 / 3.0) * scale)


def box_bounds(
    clip_values: Any, input_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Return flattened ``(low, high)`` bounds, ``[d]`` each; ``None`` without ``clip_values``."""
    if clip_values is None:
        return None
    low, high = clip_bounds(clip_values, input_shape)
    return low.reshape(-1), high.reshape(-1)


def paired_offsets(
    x: np.ndarray, u: np.ndarray, step: float, bounds: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Return offsets ``(a, b)`` with ``a − b = 2h u`` and ``x + a``, ``x + b`` inside the box.

    Interior coordinates get ``a = h u``, ``b = −h u`` (central); a coordinate where either
    would leave ``[low, high]`` moves by ``2h u_i`` in whichever query goes towards the
    farther bound, and by zero in the other (one-sided).

    Args:
        x: ``[d]`` base point (or ``[n, d]`` base points).
        u: ``[n, d]`` unit directions.
        step: ``h``, at most a quarter of the box width.
        bounds: ``(low, high)``, ``[d]`` each, or ``None``.

    Returns:
        ``(a, b)``, ``[n, d]`` each.
    """
    a = step * u
    b = -a
    if bounds is None:
        return a, b
    below, above = x - bounds[0], bounds[1] - x
    rows, cols = np.nonzero(np.abs(a) > np.minimum(below, above))
    if rows.size:
        moved = a[rows, cols]
        below, above = (np.broadcast_to(room, a.shape)[rows, cols] for room in (below, above))
        # Move towards the farther bound: up where there is more room above, else down.
        forward = np.where(above >= below, moved > 0, moved < 0)
        a[rows, cols] = np.where(forward, 2.0 * moved, 0.0)
        b[rows, cols] = np.where(forward, 0.0, -2.0 * moved)
    return a, b


class FiniteDifferenceJacobian(InputJacobian):
    """Input Jacobian of a query-only classifier: ``J v`` from two queries per direction.

    Only forward products exist (``vjp`` raises). :meth:`directional_derivatives` evaluates
    many directions for every sample of the batch in a few ``predict`` calls, :meth:`sketch`
    streams many directions through it, and :meth:`rows` returns ``J`` itself (so ``gram``
    returns ``J Jᵀ``) from the ``d`` coordinate directions (``2d`` queries per sample).

    Args:
        predict: maps queries ``[n, *input_shape]`` to scores ``[n, K]`` (logits or
            probabilities); called with as many rows as fit in ``query_bytes``.
        x: ``[B, *input_shape]`` inputs in the classifier's own scale.
        output_type: ``"auto"`` (detect), ``"logits"`` or ``"probabilities"``.
        step: the step ``h`` along unit directions; default ``ε^{1/3}`` times the input
            scale, ``ε`` the roundoff of the query and score dtypes.
        clip_values: ``(min, max)`` box the queries must stay in, or ``None``.
        dtype: dtype of the queries (``float32`` or ``float64``); default ``x``'s dtype
            (``float32`` for half precision).
        query_bytes: bytes of float64 query points (and directions) held at once.

    Attributes:
        queries: queries made so far per sample, ``[B]``.
        step: the step in use.
        output_type: ``"logits"`` or ``"probabilities"`` (detected or checked).
    """

    def __init__(
        self,
        predict: PredictFn,
        x: np.ndarray,
        *,
        output_type: OutputType = "auto",
        step: float | None = None,
        clip_values: Any = None,
        dtype: Any = None,
        query_bytes: int = QUERY_BYTES,
    ) -> None:
        x = np.asarray(x)
        self._predict = predict
        self.query_bytes = int(query_bytes)
        self.input_shape = tuple(x.shape[1:])
        self._x = x.reshape(x.shape[0], -1).astype(np.float64)
        if dtype is None:
            dtype = x.dtype if x.dtype == np.float64 else np.float32
        self.query_dtype = np.dtype(dtype)
        if self.query_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {self.query_dtype}")
        self._bounds = box_bounds(clip_values, self.input_shape)
        raw = np.asarray(predict(x.astype(self.query_dtype)))
        self.output_type = resolve_output_type(raw, output_type)
        self.logits = torch.from_numpy(self._scores(raw))
        self.queries = np.ones(x.shape[0], dtype=np.int64)
        if self._bounds is not None:
            scale = float(np.max(self._bounds[1] - self._bounds[0]))
        else:
            scale = max(1.0, float(np.abs(self._x).max()))
        self.step = step if step is not None else default_step(
            scale, max(float(np.finfo(self.query_dtype).eps), output_eps(raw))
        )
        if not 0 < self.step <= scale / 4:
            raise ValueError(
                f"step must be in (0, {scale / 4:g}] (a quarter of the input range), "
                f"got {self.step!r}"
            )
        if self._bounds is not None:
            widths = self._bounds[1] - self._bounds[0]
            narrow = widths < 2 * self.step
            if narrow.any():
                warnings.warn(
                    f"clip_values leave less than two steps (2h = {2 * self.step:.3g}) in "
                    f"{int(narrow.sum())} of {narrow.size} features (narrowest: "
                    f"{float(widths.min()):.3g}): differences there cannot stay central, and lose "
                    "accuracy. Pass a smaller step (blackbox_params={'step': ...}) or check the "
                    "classifier's clip_values.",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def _scores(self, raw: np.ndarray) -> np.ndarray:
        raw = torch.from_numpy(np.asarray(raw, dtype=np.float64))
        return as_logits(raw, self.output_type).numpy()

    def _query(self, points: np.ndarray) -> np.ndarray:
        if self._bounds is not None:  # guard against rounding past the bounds
            np.clip(points, self._bounds[0], self._bounds[1], out=points)
        queries = points.astype(self.query_dtype, copy=False).reshape(-1, *self.input_shape)
        return self._scores(self._predict(queries))

    def directional_derivatives(self, v: np.ndarray, step: float | None = None) -> np.ndarray:
        """Return ``J_b v_{bj}`` for every sample ``b`` and direction ``j``.

        The shapes are ``[B, m, d] -> [B, m, K]``.

        Each direction costs two queries, ``x + a`` and ``x + b`` with ``a − b = 2h v/‖v‖``
        (see :func:`paired_offsets`); the result is ``‖v‖ (z(x + a) − z(x + b)) / (2h)``.

        Args:
            v: ``[B, m, d]`` directions (any norm; zero rows give zero).
            step: override of :attr:`step` (e.g. ``2h`` to check rounding).

        Returns:
            ``[B, m, K]`` float64.
        """
        h = self.step if step is None else step
        batch, m, d = v.shape
        norms = np.linalg.norm(v, axis=-1, keepdims=True)
        units = (v / np.where(norms > 0, norms, 1.0)).reshape(batch * m, d)
        out = np.empty((batch * m, self.num_classes))
        chunk = max(1, self.query_bytes // (16 * d))  # direction pairs per predict call
        for start in range(0, batch * m, chunk):
            stop = min(batch * m, start + chunk)
            n = stop - start
            points = np.empty((2 * n, d))
            for sample in range(start // m, (stop - 1) // m + 1):  # the samples in this chunk
                lo, hi = max(start, sample * m), min(stop, (sample + 1) * m)
                a, b = paired_offsets(self._x[sample], units[lo:hi], h, self._bounds)
                points[lo - start : hi - start] = self._x[sample] + a
                points[n + lo - start : n + hi - start] = self._x[sample] + b
            scores = self._query(points)
            out[start:stop] = (scores[:n] - scores[n:]) / (2.0 * h)
        self.queries += 2 * m
        return out.reshape(batch, m, -1) * norms

    def jvp(self, v: Tensor) -> Tensor:  # noqa: D102 - documented in the base class
        jv = self.directional_derivatives(v.detach().cpu().double().numpy()[:, None, :])
        return torch.from_numpy(jv[:, 0]).to(self.dtype)

    def sketch(self, directions: DirectionsFn, count: int) -> np.ndarray:
        """Return ``J_b v_{bj}`` for ``count`` directions per sample, ``[B, count, K]`` float64.

        The directions are asked for block by block, so that at most ``query_bytes`` of
        them are held at once; each costs two queries (:meth:`directional_derivatives`).

        Args:
            directions: ``directions(sample, first, n)`` returns that sample's directions
                ``first .. first + n − 1``, ``[n, d]``.
            count: directions per sample.
        """
        d = self.input_dim
        block = max(1, min(count, self.query_bytes // (8 * d * self.batch_size)))
        out = np.empty((self.batch_size, count, self.num_classes))
        for first in range(0, count, block):
            n = min(block, count - first)
            v = np.stack([directions(sample, first, n) for sample in range(self.batch_size)])
            out[:, first : first + n] = self.directional_derivatives(v)
        return out

    def rows(self) -> Tensor:
        """Return ``J`` from the ``d`` coordinate directions, float64 ``[B, K, d]``.

        This costs ``2d`` queries per sample.
        """
        d = self.input_dim

        def coordinates(sample: int, first: int, n: int) -> np.ndarray:
            eye = np.zeros((n, d))
            eye[np.arange(n), first + np.arange(n)] = 1.0
            return eye

        return torch.from_numpy(self.sketch(coordinates, d)).transpose(1, 2)
