"""The matrix-free route's subset radii and their proof keep the peak memory within the budget.

The proof that omitted classes cannot set a subset radius (:mod:`art_fim.subset_proof`) holds a
float64 orthonormal basis of the computed rows and may add up to ``2 · competitors`` rows per
input; :func:`art_fim.memory.plan_subset` sizes the batch for both, allows fewer added classes
where they do not fit, and runs the radii without the proof (all unproven, counted as not
robust) where its basis does not fit for one input. Peaks are measured as in ``test_engine.py``
(the process's peak resident set in a fresh interpreter) on a ``K = 1000`` model with large
inputs (``d = 49 152``: one input's 61 rows take 12 MB, their float64 basis 8 MB), where the
plan before this one (rows of ``3 · competitors`` classes where they fit, else of the
competitors alone, and fixed 128 MiB float64 work arrays) peaked at 268 MiB (default
competitors) and 314 MiB (``competitors=100``) under 64 MiB.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine import QUIET, _measure
from test_memory import _clear_refs_writable
from torch import nn

from art_fim import fisher_statistics
from art_fim.memory import FisherPlan, Footprint, plan_subset, probe_bytes, subset_bytes

BUDGET = 64 * 2**20
# Few Lanczos steps and Hutchinson probes: the radii and their proof are what is measured.
SOLVER = "method='lanczos', num_iter=20, num_probes=10"


class WideNet(nn.Module):
    """``K = 1000`` logits of ``3 × 128 × 128`` inputs: large Jacobian rows, a small graph.

    One strided convolution, pooled to ``8 × 8 × 8`` features and a linear layer; the logits
    are sharpened (times 4), which leaves the proof undecided for some inputs at first, so that
    it adds classes.
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 4, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(8), nn.Flatten(),
            nn.Linear(8 * 8 * 8, 1000),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, 1000]``."""
        return 4.0 * self.net(x)


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).random((4, 3, 128, 128)).astype(np.float32)


SETUP = """
from test_subset_memory import WideNet, _inputs
model, x = WideNet().eval(), _inputs()
"""
CALLS = {
    # 21 rows per input and their basis fit: the proof runs and adds classes.
    "proof": f"fisher_statistics(model, x, y, {SOLVER}, {QUIET})",
    # 101 rows fit, their float64 basis does not: the radii are computed, none proven.
    "no proof": f"fisher_statistics(model, x, y, competitors=100, {SOLVER}, {QUIET})",
}


@pytest.mark.slow
@pytest.mark.skipif(not _clear_refs_writable(), reason="needs Linux's /proc/self/clear_refs")
def test_subset_radii_and_their_proof_keep_the_peak_memory_within_the_budget():
    planned = _measure(CALLS, BUDGET, SETUP)
    unplanned = _measure(CALLS, 2**40, SETUP)
    report = {name: (planned[name] / 2**20, unplanned[name] / 2**20) for name in CALLS}
    assert all(planned[name] <= BUDGET for name in CALLS), report
    # The measurement can fail: without a budget, both exceed this one.
    assert all(unplanned[name] > BUDGET for name in CALLS), report


def test_the_proof_adds_classes_within_the_budget(caplog):
    """The 64 MiB run proves what the unlimited one proves, adding classes to do so."""
    model, x = WideNet().eval(), _inputs()
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    runs = {}
    for budget in (BUDGET, None):
        with caplog.at_level("DEBUG", logger="art_fim.subset_proof"):
            caplog.clear()
            runs[budget] = fisher_statistics(model, x, y, method="lanczos", num_iter=20,
                                             num_probes=10, memory_budget=budget, verbose=False)
        added = [int(r.message.rsplit(" ", 1)[1]) for r in caplog.records
                 if r.message.startswith("undecided")]
        assert max(added) > 0, added
    for name in ("linf", "l2"):
        for table in ("radius", "refined_radius"):
            small, large = getattr(runs[BUDGET], table)[name], getattr(runs[None], table)[name]
            np.testing.assert_array_equal(small.proven, large.proven)
            # One input per batch against four: float32 products rounded differently.
            np.testing.assert_allclose(small.values, large.values, rtol=1e-4)


def test_a_proof_that_does_not_fit_leaves_the_radii_unproven_and_not_robust(caplog):
    """101 rows fit 64 MiB but their float64 basis does not: radii computed, none proven, a
    warning, no input counted robust at a budget below every exact radius; every radius is at
    least the exact route's.
    """
    model, x = WideNet().eval(), _inputs()
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    with caplog.at_level("WARNING"):
        subset = fisher_statistics(model, x, y, method="lanczos", competitors=100, num_iter=20,
                                   num_probes=10, memory_budget=BUDGET, verbose=False)
    assert "not proven and count as not robust" in caplog.text
    exact = fisher_statistics(model, x, y, method="exact", verbose=False)
    for name, norm in (("linf", np.inf), ("l2", 2)):
        for table in ("radius", "refined_radius"):
            ours, truth = getattr(subset, table)[name], getattr(exact, table)[name]
            assert np.isfinite(ours.values).all() and not ours.proven.any()
            assert (ours.values >= truth.values * (1 - 1e-6)).all()
        smallest = exact.radius[name].values.min()  # robust on the exact route: all inputs
        assert smallest > 0 and exact.predicted_robust_accuracy(smallest / 2, norm) == 1.0
        assert subset.predicted_robust_accuracy(smallest / 2, norm) == 0.0


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    classes=st.integers(2, 2000), dim=st.integers(1, 200_000), itemsize=st.sampled_from([4, 8]),
    activations=st.integers(0, 10**7), competitors=st.integers(1, 200),
    multiple=st.integers(0, 3), batch=st.integers(1, 256), budget=st.integers(1, 2**31),
)
def test_the_subset_plan_fits_its_budget_and_adds_as_many_classes_as_fit(
    classes, dim, itemsize, activations, competitors, multiple, batch, budget
):
    """For any sizes: the planned batch's rows, proof and probes fit the budget; the proof adds as
    many classes as fit (up to its limit), runs wherever its bounds fit, and the radii are
    refused (``None``) only where the rows of one input do not fit one class at a time.
    """
    footprint = Footprint(classes, dim, itemsize, activations)
    plan = plan_subset(FisherPlan("lanczos", batch, None, footprint, budget), competitors,
                       multiple * competitors)
    kept = min(competitors + 1, classes)
    if plan is None:
        assert subset_bytes(footprint, kept, kept, 1, proof=False) > budget
        return
    total = kept + plan.added
    chunk = kept if plan.class_chunk is None else plan.class_chunk
    assert 1 <= plan.batch_size <= batch and 1 <= chunk <= kept
    assert plan.batch_size * subset_bytes(footprint, kept, total, chunk, plan.proof) <= budget
    assert plan.added <= min(multiple * competitors, classes - kept)
    if not plan.proof:
        assert plan.added == 0
        assert kept == classes or subset_bytes(footprint, kept, kept, 1) > budget
        return
    if plan.added < min(multiple * competitors, classes - kept):  # one more would not fit
        assert subset_bytes(footprint, kept, total + 1, 1) > budget
    # The probes beside the basis, within each input's share (or one probe at a time).
    held = activations + kept * dim * (itemsize + 8) + 16 * kept * classes
    assert (plan.probe_chunk == 1
            or plan.batch_size * (held + plan.probe_chunk * probe_bytes(footprint)) <= budget)
