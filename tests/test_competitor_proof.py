"""Radii from a subset of classes are proven to be the minimum over all classes, or flagged.

Truths: the exact route (all ``K`` rows) is the reference for every radius; the Gaussian
sketch's per-class statistic is exactly ``‖∇g_j‖² χ²_m`` (checked against a dense Jacobian and
by its failure rate); the proof's decision is checked on synthetic margins and norms where
every ratio is known.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from art_fim import fisher_statistics, predicted_robust_accuracy, robust_radius
from art_fim.competitor_proof import (
    competitors_to_add,
    kth_ratio,
    omitted_classes,
    ratio_lower_bounds,
    undecided,
)
from art_fim.competitors import nearest_competitors
from art_fim.jacobian import DenseJacobian
from art_fim.margin_norm_bound import (
    chi2_inflation,
    margin_norm_bounds,
    orthonormal_basis,
    residual_sketch,
    stacked_jvp,
)
from art_fim.streams import input_generators

NORMS = (math.inf, 2.0, 1.0)
NAMES = {math.inf: "linf", 2.0: "l2", 1.0: "l1"}


def steep_far_competitor(classes: int = 200, dim: int = 20, steep: int = 150) -> nn.Module:
    """A linear model whose label 0 leads; class ``steep`` trails far behind in logit order
    (margin about 8, rank ~150) but its margin's gradient is ~70× the others', so its ratio
    ``g / ‖∇g‖`` (about 0.18) is the smallest: the radius the 20 nearest classes miss.
    """
    torch.manual_seed(0)
    model = nn.Linear(dim, classes).double()
    with torch.no_grad():
        model.weight.mul_(0.2)
        model.weight[steep] *= 70.0
        model.bias.copy_(10.0 - 0.5 - 0.05 * torch.arange(classes, dtype=torch.float64))
        model.bias[0] = 10.0
    return model.eval()


def test_a_steep_competitor_far_down_the_logit_order_is_found():
    """K = 200 > 2·num_iter takes the matrix-free route; the minimising class is not among the 20
    nearest by margin, yet every default radius (first-order and refined, both norms) equals the
    exact route's: the proof finds the class undecided and adds it.
    """
    model = steep_far_competitor()
    x = np.random.default_rng(0).normal(0.0, 0.01, (6, 20))
    y = np.zeros(6, dtype=np.int64)
    logits = model(torch.from_numpy(x)).detach()
    assert not (nearest_competitors(logits, torch.from_numpy(y), 20) == 150).any()
    exact = fisher_statistics(model, x, y, method="exact", verbose=False)
    default = fisher_statistics(model, x, y, verbose=False)
    assert default.spectral_norm.method == "lanczos" and default.proof_failure == 1e-3
    for name in ("linf", "l2"):
        for table, truth in ((default.radius, exact.radius),
                             (default.refined_radius, exact.refined_radius)):
            assert table[name].proven.all()
            np.testing.assert_allclose(table[name].values, truth[name].values, rtol=1e-12)
    assert default.proven_fraction == dict.fromkeys(("linf", "l2", "linf_refined",
                                                     "l2_refined"), 1.0)
    assert exact.radius["l2"].proven is None and exact.proven_fraction["l2"] == 1.0


def test_an_unclosed_proof_is_flagged_and_not_counted():
    """With one competitor and no room to add more than one class, the steep class stays out for
    some inputs: those radii are flagged (an upper estimate, above the exact one), robust_radius
    warns, and predicted_robust_accuracy counts them as not robust, never above the exact route.
    """
    model = steep_far_competitor()
    x = np.random.default_rng(0).normal(0.0, 0.01, (6, 20))
    y = np.zeros(6, dtype=np.int64)
    exact = fisher_statistics(model, x, y, method="exact", norms=(2,), verbose=False)
    subset = fisher_statistics(model, x, y, norms=(2,), competitors=1, verbose=False)
    estimate, truth = subset.radius["l2"], exact.radius["l2"].values
    assert not estimate.proven.any()
    assert np.all(estimate.values > 2 * truth)  # what used to be reported as the radius
    eps = float(np.median(truth))
    assert subset.predicted_robust_accuracy(eps, 2, refined=False) == 0.0
    assert exact.predicted_robust_accuracy(eps, 2, refined=False) > 0.0
    assert subset.predicted_robust_accuracy(0.0, 2, refined=False) == 1.0  # correct at ε = 0
    with pytest.warns(UserWarning, match="6 of 6 l2 radii are upper estimates"):
        robust_radius(model, x, y, norm=2, competitors=1, refine=False, verbose=False)
    assert predicted_robust_accuracy(model, x, y, eps, norm=2, competitors=1,
                                     verbose=False) == 0.0


def _curved(seed: int, classes: int, dim: int = 6) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, 8), nn.Tanh(), nn.Linear(8, classes)).double().eval()


@settings(max_examples=12, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), classes=st.integers(4, 14), fraction=st.floats(0.0, 1.0),
       box=st.booleans(), refine=st.booleans(), norm=st.sampled_from(NORMS),
       steep=st.floats(1.0, 30.0))
def test_subset_radii_never_exceed_the_exact_route(seed, classes, fraction, box, refine, norm,
                                                   steep):
    """On random curved models (one class's output scaled by ``steep``) and options: every proven
    radius equals the exact route's, and the predicted robust accuracy (unproven inputs not
    robust) is never above the exact route's at any budget.
    """
    competitors = 1 + int(fraction * (classes - 3))
    model = _curved(seed, classes)
    with torch.no_grad():
        model[2].weight[classes - 1] *= steep
    rng = np.random.default_rng(seed)
    x = rng.random((8, 6))
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    classifier = (PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(6,),
                                    nb_classes=classes, clip_values=(0.0, 1.0), device_type="cpu")
                  if box else model)
    options = {"norms": (norm,), "refine": refine, "verbose": False}
    exact = fisher_statistics(classifier, x, y, method="exact", **options)
    subset = fisher_statistics(classifier, x, y, method="lanczos", competitors=competitors,
                               proof_failure=1e-6, **options)
    name = NAMES[norm]
    tables = [(subset.radius, exact.radius)]
    if refine:
        tables.append((subset.refined_radius, exact.refined_radius))
    for table, truth in tables:
        proven = table[name].proven
        np.testing.assert_allclose(table[name].values[proven], truth[name].values[proven],
                                   rtol=1e-9)
        grid = np.unique(np.concatenate([truth[name].values, table[name].values]))
        grid = grid[np.isfinite(grid)]
        for eps in np.concatenate([[0.0], (grid[:-1] + grid[1:]) / 2]):
            refined = table is subset.refined_radius
            assert (subset.predicted_robust_accuracy(eps, norm, refined)
                    <= exact.predicted_robust_accuracy(eps, norm, refined))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31), classes=st.integers(3, 30), kept=st.integers(1, 28),
       rank=st.integers(0, 4), slack=st.floats(1.0, 3.0))
def test_a_proof_with_valid_bounds_implies_the_exact_minimum(seed, classes, kept, rank, slack):
    """Synthetic margins and norms (every ratio known): whenever no omitted class is undecided
    under bounds U ≥ ‖∇g‖, the kept classes' minimum ratio is the minimum over all classes, and
    (with a rank) the `rank` smallest ratios over all classes are kept ones; the classes to add
    are distinct omitted ones, the undecided first.
    """
    generator = torch.Generator().manual_seed(seed)
    batch = 5
    margin = torch.rand(batch, classes, generator=generator, dtype=torch.float64) * 4 - 0.2
    norms = torch.rand(batch, classes, generator=generator, dtype=torch.float64) * 3 + 0.01
    labels = torch.randint(0, classes, (batch,), generator=generator)
    margin = margin.scatter(1, labels[:, None], 0.0)
    logits = -margin  # z_y − z_j = margin with z_y = 0
    keep = nearest_competitors(logits, labels, min(kept, classes - 1))
    omitted = omitted_classes(keep, classes)
    ratio = (margin / norms).scatter(1, labels[:, None], math.inf)
    kept_ratio = ratio.gather(1, keep)
    radius = torch.where(margin.scatter(1, labels[:, None], math.inf).amin(1) > 0,
                         kept_ratio.amin(1), torch.zeros(batch, dtype=torch.float64))
    upper = norms * (1 + (slack - 1) * torch.rand(batch, classes, generator=generator,
                                                  dtype=torch.float64))
    lower = ratio_lower_bounds(margin, upper, labels)
    threshold = kth_ratio(kept_ratio, rank) if rank else None
    open_classes = undecided(lower, omitted, radius, threshold)
    exact = torch.where(radius > 0, ratio.amin(1), radius)
    for b in range(batch):
        if not open_classes[b].any():
            assert exact[b] == radius[b]
            if rank and radius[b] > 0:
                smallest = ratio[b].topk(min(rank, classes - 1), largest=False).indices
                assert (~omitted[b, smallest]).all()
    extra = competitors_to_add(margin, omitted, open_classes, limit=7)
    assert extra.shape[1] == min(7, int(open_classes.sum(1).max()))
    for b in range(batch):
        chosen = extra[b].tolist()
        assert len(set(chosen)) == len(chosen) and omitted[b, chosen].all()
        first = int(min(open_classes[b].sum(), len(chosen)))
        assert open_classes[b, chosen[:first]].all()


def test_the_sketch_is_the_dense_sum_of_squares_and_its_bound_fails_at_the_stated_rate():
    """The residual sketch equals Σ_i ⟨∇g_j, (I − QQᵀ)ξ_i⟩² from the dense rows and the same
    probes (with and without a basis); over 1500 inputs the ℓ2 bound of a 5% budget fails for 5%
    of them (99.9% binomial interval), and where it holds the ℓ1 and ℓ∞ bounds hold too.
    """
    generator = torch.Generator().manual_seed(3)
    batch, classes, dim, probes = 1500, 2, 12, 8
    rows = torch.randn(batch, classes, dim, generator=generator, dtype=torch.float64)
    jac = DenseJacobian(rows, torch.zeros(batch, classes, dtype=torch.float64))
    labels = torch.zeros(batch, dtype=torch.int64)
    gradient = rows[:, 0] - rows[:, 1]
    drawn = torch.stack([
        torch.stack([torch.randn(dim, generator=g, dtype=torch.float64) for _ in range(probes)])
        for g in input_generators(5, 0, batch)
    ])  # [B, m, d]
    basis = orthonormal_basis(rows[:, :1])  # the label's row: its direction is known
    residual = drawn - torch.einsum("bdr,bmr->bmd", basis, torch.einsum("bdr,bmd->bmr", basis,
                                                                        drawn))
    for q, probes_used in ((None, drawn), (basis, residual)):
        sketch = residual_sketch(stacked_jvp(jac.jvp), labels, dim, q, probes,
                                 input_generators(5, 0, batch), probe_chunk=3)
        dense = torch.einsum("bmd,bd->bm", probes_used, gradient).square().sum(1)
        torch.testing.assert_close(sketch[:, 1], dense, rtol=1e-10, atol=1e-12)
    bounds = margin_norm_bounds(stacked_jvp(jac.jvp), labels, rows[:, :1], NORMS, probes, 0.05,
                                input_generators(5, 0, batch))
    held = bounds[2.0][:, 1] >= gradient.norm(dim=1)
    low, high = stats.binom.interval(0.999, batch, 0.05)
    assert low <= int((~held).sum()) <= high
    assert torch.all(bounds[math.inf][held, 1] >= gradient.abs().sum(1)[held])
    assert torch.all(bounds[1.0][held, 1] >= gradient.abs().amax(1)[held])
    assert chi2_inflation(probes, 0.05) == pytest.approx(
        math.sqrt(probes / stats.chi2.ppf(0.05, probes)))


def test_rows_that_span_the_input_space_give_the_exact_norms():
    """With computed rows spanning R^d the residual is zero: every class's bound is its margin
    gradient's dual norm itself (dense reference), in all three norms.
    """
    generator = torch.Generator().manual_seed(4)
    batch, classes, dim = 3, 9, 5
    rows = torch.randn(batch, classes, dim, generator=generator, dtype=torch.float64)
    jac = DenseJacobian(rows, torch.zeros(batch, classes, dtype=torch.float64))
    labels = torch.tensor([0, 4, 8])
    bounds = margin_norm_bounds(stacked_jvp(jac.jvp), labels, rows[:, :6], NORMS, 4, 1e-3,
                                input_generators(0, 0, batch))
    gradients = rows[torch.arange(batch), labels][:, None] - rows
    for norm, dual in ((2.0, 2), (math.inf, 1), (1.0, math.inf)):
        torch.testing.assert_close(bounds[norm], torch.linalg.vector_norm(gradients, dual, dim=2),
                                   rtol=1e-9, atol=1e-12)


def _nan_case():
    """A budget too small for one input's label-and-competitor rows: the radii are NaN."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 10)).double().eval()
    x = np.random.default_rng(0).random((3, 6))
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    return model, x, y, {"competitors": 3, "memory_budget": 100, "verbose": False}


@pytest.mark.parametrize("refine", [False, True])
def test_radii_not_computed_are_reported_or_refused_alike_by_every_api(refine, caplog):
    """NaN radii (a non-default competitors with a tight memory_budget): fisher_statistics
    reports them (NaN first-order and refined radii, a warning); every API that turns radii into
    robust accuracy, and robust_radius, refuses them with the same message: none counts them as
    non-robust.
    """
    model, x, y, options = _nan_case()
    message = "radii for norm l2 are NaN"
    with caplog.at_level("WARNING"):
        stats = fisher_statistics(model, x, y, norms=(2,), refine=refine, **options)
    assert "radii are not computed" in caplog.text
    assert np.isnan(stats.radius["l2"].values).all() and stats.correct.all()
    if refine:
        assert np.isnan(stats.refined_radius["l2"].values).all()
    with pytest.raises(ValueError, match=message):
        stats.predicted_robust_accuracy(0.1, norm=2, refined=refine)
    with pytest.raises(ValueError, match=message):
        stats.accuracy_curves()
    with pytest.raises(ValueError, match=message):
        robust_radius(model, x, y, norm=2, refine=refine, **options)
    with pytest.raises(ValueError, match=message):
        predicted_robust_accuracy(model, x, y, 0.1, norm=2, refine=refine, **options)
