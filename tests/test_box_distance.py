"""Box-constrained distance to a linear margin: LP/QP oracles, hand cases and a linear model.

Oracles, independent of the library's sort-and-cumsum solution:
* ``ℓ∞`` and ``ℓ1``: scipy's HiGHS linear programs in ``δ`` itself (``ℓ∞``: variables
  ``(δ, t)``, ``min t`` with ``−t ≤ δ_i ≤ t``; ``ℓ1``: ``δ = δ⁺ − δ⁻``), the box as variable
  bounds, feasibility tolerances 1e-10; an infeasible LP means ``+inf``.
* ``ℓ2``: bisection (200 halvings) on the multiplier ``λ`` of the projection
  ``δ(λ) = clip(−λ a, low − x, high − x)`` (numpy's clip on the signed step, no capacities,
  no sorting), itself checked against SLSQP on fixed problems.
Agreement is asserted to ``rtol = 1e-6`` (``atol = 1e-9`` for the LP's absolute tolerances).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from box_helpers import box_first_order_radius, box_margin_step, box_radius
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog, minimize

from art_fim import box_distance
from art_fim.box_distance import box_margin_distance
from art_fim.margins import first_order_radius
from art_fim.norms import dual_norm

NORMS = [math.inf, 2.0, 1.0]
NORM_IDS = [f"norm={n}" for n in ("inf", "2", "1")]
_HIGHS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def _lp_bounds(lo: np.ndarray, hi: np.ndarray) -> list[tuple[float | None, float | None]]:
    """linprog's variable bounds, ``None`` for an infinite side."""
    return [(None if math.isinf(v) else v, None if math.isinf(w) else w)
            for v, w in zip(lo, hi, strict=True)]


def _oracle(
    g: float, a: np.ndarray, x: np.ndarray, low: np.ndarray, high: np.ndarray, norm: float
) -> float:
    """min ‖δ‖_q s.t. g + a·δ ≤ 0, low ≤ x + δ ≤ high: an LP (ℓ∞, ℓ1) or KKT bisection (ℓ2)."""
    if g <= 0:
        return 0.0
    dim, lo, hi = len(a), low - x, high - x
    if norm == math.inf:
        eye = np.eye(dim)
        column = -np.ones((dim, 1))
        a_ub = np.block([[a[None], np.zeros((1, 1))], [eye, column], [-eye, column]])
        res = linprog(np.r_[np.zeros(dim), 1.0], A_ub=a_ub, b_ub=np.r_[-g, np.zeros(2 * dim)],
                      bounds=_lp_bounds(lo, hi) + [(0, None)], method="highs", options=_HIGHS)
    elif norm == 1.0:
        res = linprog(np.ones(2 * dim), A_ub=np.r_[a, -a][None], b_ub=[-g],
                      bounds=_lp_bounds(np.zeros(dim), hi) + _lp_bounds(np.zeros(dim), -lo),
                      method="highs", options=_HIGHS)
    else:
        return _projection_distance(g, a, lo, hi)
    assert res.status in (0, 2), res.message
    return math.inf if res.status == 2 else float(res.fun)


def _projection_distance(g: float, a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """‖clip(−λ a, lo, hi)‖₂ at the λ where g + a·δ(λ) = 0, by bisection; +inf if none does."""
    with np.errstate(invalid="ignore"):
        corner = np.where(a == 0, 0.0, np.minimum(a * lo, a * hi))
    if g + corner.sum() > 0:
        return math.inf

    def rest(lam: float) -> float:
        return g + a @ np.clip(-lam * a, lo, hi)

    left, right = 0.0, 1.0
    while rest(right) > 0:
        left, right = right, 2 * right
    for _ in range(200):
        middle = 0.5 * (left + right)
        left, right = (middle, right) if rest(middle) > 0 else (left, middle)
    return float(np.linalg.norm(np.clip(-right * a, lo, hi)))


# --- random problems -------------------------------------------------------------------------

BATCH, COUNT = 2, 3


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    """``(g [B, C], a [B, C, d], x [B, d], low [d], high [d])`` with ``x`` in the box.

    Regimes: the margin is a fraction of the best corner's reach ``S = Σ|a_i| c_i``: small (the
    box rarely binds), large (it binds), or above 1 (unreachable); boxes are the unit cube, none,
    a lower bound only, or random; some gradient entries are zero and some ``x_i`` on a face.
    """
    dim = draw(st.integers(2, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    box = draw(st.sampled_from(["unit", "none", "lower", "random"]))
    fraction = draw(st.sampled_from([(1e-3, 0.05), (0.3, 0.97), (1.05, 2.0)]))
    zeros = draw(st.sampled_from([0.0, 0.3]))
    faces = draw(st.sampled_from([0.0, 0.3]))
    if box == "unit":
        low, high = np.zeros(dim), np.ones(dim)
    elif box == "none":
        low, high = np.full(dim, -np.inf), np.full(dim, np.inf)
    elif box == "lower":
        low, high = np.zeros(dim), np.full(dim, np.inf)
    else:
        low = rng.normal(size=dim)
        high = low + rng.exponential(size=dim)
    width = np.where(np.isfinite(high - low), high - low, 3.0)
    start = np.where(np.isfinite(low), low, -1.5)
    x = start + rng.random((BATCH, dim)) * width
    on_face = rng.random((BATCH, dim)) < faces
    x = np.where(on_face & (rng.random((BATCH, dim)) < 0.5) & np.isfinite(low), low, x)
    x = np.where(on_face & np.isfinite(high), np.where(rng.random((BATCH, dim)) < 0.5, high, x), x)
    a = rng.normal(size=(BATCH, COUNT, dim)) * 10.0 ** rng.uniform(-1, 1, size=dim)
    a = np.where(rng.random(a.shape) < zeros, 0.0, a)
    capacity = np.where(a > 0, (x - low)[:, None], (high - x)[:, None])
    with np.errstate(invalid="ignore"):
        reach = np.where(a == 0, 0.0, np.abs(a) * capacity).sum(-1)
    scale = np.where(np.isfinite(reach), reach, np.abs(a).sum(-1))
    g = rng.uniform(*fraction, size=(BATCH, COUNT)) * scale
    g = np.where(g > 0, g, rng.uniform(0.1, 1.0, size=g.shape))  # an all-zero gradient: unreachable
    return g, a, x, low, high


@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems())
def test_distance_matches_the_lp_qp_oracle(norm: float, problem: tuple[np.ndarray, ...]) -> None:
    """Every margin of a batch: the distance equals the oracle (rtol 1e-6, atol 1e-9; +inf alike),
    and the step for the first competitor is in the box, closes the margin (|g + a·δ| ≤ 1e-9 · g)
    and has norm D (rtol 1e-12).
    """
    g, a, x, low, high = problem
    distance = box_margin_distance(*map(torch.from_numpy, (g, a, x, low, high)), norm=norm).numpy()
    expected = np.array([[_oracle(g[b, j], a[b, j], x[b], low, high, norm) for j in range(COUNT)]
                         for b in range(BATCH)])
    np.testing.assert_allclose(distance, expected, rtol=1e-6, atol=1e-9)

    first = (g[:, 0], a[:, 0], x, low, high)
    step = box_margin_step(*map(torch.from_numpy, first), norm=norm).numpy()
    for b in range(BATCH):
        if math.isinf(distance[b, 0]):
            assert np.isnan(step[b]).all()
            continue
        assert np.all(x[b] + step[b] >= low - 1e-12) and np.all(x[b] + step[b] <= high + 1e-12)
        assert abs(g[b, 0] + a[b, 0] @ step[b]) <= 1e-9 * g[b, 0]
        np.testing.assert_allclose(np.linalg.norm(step[b], ord=norm), distance[b, 0], rtol=1e-12)


def _slsqp_distance(g: float, a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """min ‖δ‖₂ s.t. g + a·δ ≤ 0, lo ≤ δ ≤ hi by SLSQP (ftol 1e-14)."""
    constraint = {"type": "ineq", "fun": lambda d: -g - a @ d, "jac": lambda d: -a}
    res = minimize(lambda d: d @ d, np.zeros(len(a)), jac=lambda d: 2 * d, method="SLSQP",
                   bounds=list(zip(lo, hi, strict=True)), constraints=[constraint],
                   options={"ftol": 1e-14, "maxiter": 1000})
    assert res.success, res.message
    return float(np.sqrt(res.x @ res.x))


def test_l2_oracle_agrees_with_slsqp() -> None:
    """The ℓ2 bisection oracle and the library both match SLSQP (ftol 1e-14) on 25 box-constrained
    QPs in the unit box where the box binds or not (rtol 1e-6; they agree to about 1e-14).
    """
    rng = np.random.default_rng(7)
    for _ in range(25):
        dim = int(rng.integers(2, 12))
        x, a = rng.random(dim), rng.normal(size=dim)
        lo, hi = -x, 1.0 - x
        reach = np.abs(a) @ np.where(a > 0, x, 1.0 - x)
        g = rng.uniform(0.2, 0.95) * reach
        qp = _slsqp_distance(g, a, lo, hi)
        g_ = torch.tensor([[g]], dtype=torch.float64)
        a_, x_ = torch.from_numpy(a)[None, None], torch.from_numpy(x)[None]
        ours = box_margin_distance(g_, a_, x_, 0.0, 1.0, norm=2.0).item()
        np.testing.assert_allclose([_projection_distance(g, a, lo, hi), ours], qp, rtol=1e-6)


# --- hand-checked cases ----------------------------------------------------------------------

# (g, a, x, expected (ℓ∞, ℓ2, ℓ1)) in the unit box; derivations in the ids.
HAND_CASES = [
    # d = 1: capacity 0.3 below x (a > 0), reach 0.6; D = g / |a| = 0.2 in every norm.
    (0.4, [2.0], [0.3], (0.2, 0.2, 0.2)),
    # d = 1, a < 0: capacity 0.7 above x, reach 1.4; D = 0.4.
    (0.8, [-2.0], [0.3], (0.4, 0.4, 0.4)),
    # d = 1: reach 0.6 < 0.8: unreachable.
    (0.8, [2.0], [0.3], (math.inf, math.inf, math.inf)),
    # d = 2, box not binding: ℓ∞ 2t = 0.6; ℓ2 δ = (0.3, 0.3); ℓ1 0.6 / max|a|.
    (0.6, [1.0, 1.0], [0.5, 0.5], (0.3, 0.3 * math.sqrt(2), 0.6)),
    # d = 2, binding: c = (0.1, 0.5); ℓ∞ 2·0.1 + t = 0.6 → t = 0.4; ℓ2 λ = 0.4, δ = (0.1, 0.4);
    # ℓ1 greedy 0.1 on the first (buys 0.2) then 0.4 on the second. Unboxed: 0.2, 0.268, 0.3.
    (0.6, [2.0, 1.0], [0.1, 0.5], (0.4, math.sqrt(0.17), 0.5)),
    # d = 2, the corner exactly: g = S = 0.7, δ = −c.
    (0.7, [2.0, 1.0], [0.1, 0.5], (0.5, math.sqrt(0.26), 0.6)),
    # d = 2, a zero entry (no capacity) and x on the face of the other coordinate's move.
    (0.2, [0.0, 1.0], [0.5, 0.5], (0.2, 0.2, 0.2)),
    (0.6, [0.0, 1.0], [0.5, 0.5], (math.inf, math.inf, math.inf)),
    (0.2, [1.0, -1.0], [0.0, 0.5], (0.2, 0.2, 0.2)),
    # g ≤ 0: already closed.
    (0.0, [1.0, 1.0], [0.5, 0.5], (0.0, 0.0, 0.0)),
    (-1.0, [0.0, 0.0], [0.5, 0.5], (0.0, 0.0, 0.0)),
]


@pytest.mark.parametrize("g, a, x, expected", HAND_CASES,
                         ids=[f"case={i}" for i in range(len(HAND_CASES))])
def test_hand_cases(g: float, a: list[float], x: list[float], expected: tuple[float, ...]) -> None:
    """Closed-form distances in the unit box for d = 1, 2 (rtol 1e-12), for each norm."""
    for norm, value in zip(NORMS, expected, strict=True):
        g_, a_, x_ = (torch.tensor(v, dtype=torch.float64) for v in ([[g]], [[a]], [x]))
        distance = box_margin_distance(g_, a_, x_, 0.0, 1.0, norm)
        np.testing.assert_allclose(distance.item(), value, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
def test_without_a_box_it_is_the_first_order_formula(norm: float) -> None:
    """No box, an explicit infinite box, or a box too wide to bind: D = g / ‖a‖_{q*} (rtol 1e-12),
    including zero gradient entries and an all-zero gradient (+inf); and box_first_order_radius
    without a box equals first_order_radius (rtol 1e-12).
    """
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(4, 5, 30, generator=gen, dtype=torch.float64)
    a = torch.where(torch.rand(a.shape, generator=gen) < 0.3, 0.0, a)
    a[0, 1] = 0.0
    g = torch.rand(4, 5, generator=gen, dtype=torch.float64)
    x = torch.rand(4, 30, generator=gen, dtype=torch.float64)
    expected = g / dual_norm(a, norm)
    assert math.isinf(expected[0, 1])
    for low, high in ((None, None), (torch.full((30,), -math.inf), math.inf), (-1e6, 1e6)):
        distance = box_margin_distance(g, a, x, low, high, norm)
        torch.testing.assert_close(distance, expected, rtol=1e-12, atol=0)

    rows = torch.randn(4, 6, 30, generator=gen, dtype=torch.float64)
    logits = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    labels = logits.argmax(1)
    torch.testing.assert_close(box_first_order_radius(rows, logits, labels, x, norm=norm),
                               first_order_radius(rows, logits, labels, norm), rtol=1e-12, atol=0)


@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
def test_chunks_dtypes_and_masks(norm: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunking changes nothing (bit for bit); float32 gradients equal their float64 copy; bounds
    as [d], [B, d] or a number agree; a mask or a +inf margin excludes a column; NaN propagates.
    """
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(3, 4, 9, generator=gen)
    g = torch.rand(3, 4, generator=gen, dtype=torch.float64)
    x = torch.rand(3, 9, generator=gen, dtype=torch.float64)
    whole = box_margin_distance(g, a, x, 0.0, 1.0, norm)
    assert whole.dtype == torch.float64
    low, high = torch.zeros(9), torch.ones(3, 9)
    assert torch.equal(whole, box_margin_distance(g, a.double(), x, low, high, norm))
    monkeypatch.setattr(box_distance, "_CHUNK_ELEMENTS", 20)
    assert torch.equal(whole, box_margin_distance(g, a, x, 0.0, 1.0, norm))

    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[:, 0] = False
    excluded = g.clone()
    excluded[:, 0] = math.inf
    kept = box_radius(g, a, x, 0.0, 1.0, norm, mask=mask)
    torch.testing.assert_close(kept, whole[:, 1:].amin(1), rtol=0, atol=0)
    torch.testing.assert_close(box_radius(excluded, a, x, None, None, norm),
                               box_radius(g, a, x, None, None, norm, mask=mask), rtol=0, atol=0)
    g[1, 2] = math.nan
    assert torch.isnan(box_margin_distance(g, a, x, 0.0, 1.0, norm)[1, 2])


# --- a linear multinomial model in [0, 1]^d --------------------------------------------------


def _predict(w: np.ndarray, b: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The predicted classes of z = W x + b for points ``[n, d]``."""
    return np.argmax(points @ w.T + b, axis=1)


def _inside_directions(rng: np.random.Generator, dim: int, norm: float, count: int) -> np.ndarray:
    """Unit-‖·‖_q directions: random (uniform, Gaussian or Laplace by norm) and ± the axes."""
    if norm == math.inf:
        u = rng.uniform(-1, 1, size=(count, dim))
        u = np.where(rng.random(u.shape) < 0.5, np.sign(u), u)  # many on the cube's faces
    elif norm == 2.0:
        u = rng.normal(size=(count, dim))
    else:
        u = rng.laplace(size=(count, dim)) ** 3
    u = np.r_[u, np.eye(dim), -np.eye(dim)]
    return u / np.linalg.norm(u, ord=norm, axis=1, keepdims=True)


@pytest.mark.parametrize("norm", NORMS, ids=NORM_IDS)
def test_linear_model_box_radius_is_the_distance_to_another_class(norm: float) -> None:
    """z = W x + b on [0, 1]^d: the box radius equals min over competitors of the oracle distance
    (rtol 1e-6) and is ≥ the first-order radius (the box binds in some cases); the step for the
    nearest competitor with its margin raised by 1e-6 stays in the box, changes the predicted class
    and has norm ≤ D (1 + 1e-4); points x + clip(0.999 D u) for 300 sampled unit directions u
    (and the optimal step) keep the class.
    """
    rng = np.random.default_rng(11)
    binding = 0
    for _ in range(12):
        dim, classes = int(rng.integers(3, 9)), 4
        w, b = rng.normal(size=(classes, dim)), rng.normal(size=classes)
        x = rng.random(dim)
        face = rng.random(dim) < 0.4
        x[face] = rng.random(face.sum()) < 0.5  # some coordinates on a face of the box
        y = int(np.argmax(w @ x + b))
        rows, logits = torch.from_numpy(w)[None], torch.from_numpy(w @ x + b)[None]
        labels, xt = torch.tensor([y]), torch.from_numpy(x)[None]

        radius = box_first_order_radius(rows, logits, labels, xt, 0.0, 1.0, norm).item()
        z = w @ x + b
        oracle = [_oracle(z[y] - z[j], w[y] - w[j], x, np.zeros(dim), np.ones(dim), norm)
                  for j in range(classes) if j != y]
        np.testing.assert_allclose(radius, min(oracle), rtol=1e-6)
        unboxed = first_order_radius(rows, logits, labels, norm).item()
        assert radius >= unboxed * (1 - 1e-12)
        binding += radius > unboxed * (1 + 1e-6)

        if math.isinf(radius):  # no point of the box is classified otherwise
            assert np.all(_predict(w, b, rng.random((500, dim))) == y)
            continue
        margin = torch.from_numpy(z[y] - z)[None]
        gradient = torch.from_numpy(w[y] - w)[None]
        distances = box_margin_distance(margin, gradient, xt, 0.0, 1.0, norm)
        distances[0, y] = math.inf
        nearest = int(distances.argmin())
        g_j, a_j = margin[:, nearest], gradient[:, nearest]
        beyond = box_margin_step(g_j * (1 + 1e-6), a_j, xt, 0.0, 1.0, norm)[0].numpy()
        assert np.all((x + beyond >= 0) & (x + beyond <= 1))
        assert _predict(w, b, (x + beyond)[None])[0] != y
        assert np.linalg.norm(beyond, ord=norm) <= radius * (1 + 1e-4)

        optimal = box_margin_step(g_j, a_j, xt, 0.0, 1.0, norm)[0].numpy()
        steps = 0.999 * np.r_[_inside_directions(rng, dim, norm, 300) * radius, optimal[None]]
        assert np.all(_predict(w, b, np.clip(x + steps, 0.0, 1.0)) == y)
    assert binding >= 1
