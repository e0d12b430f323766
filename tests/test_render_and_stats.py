"""Leaderboard statistics and rendering: coefficients against independent computations."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from leaderboard.render import render
from leaderboard.stats import correlate, partial_spearman


def test_coefficients_equal_scipy_and_intervals_bracket_them():
    """Each coefficient is scipy's on the same data, inside its own bootstrap interval."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = -0.7 * x + rng.normal(size=40)
    expected = {
        "spearman": stats.spearmanr(x, y).statistic,
        "kendall": stats.kendalltau(x, y).statistic,
        "pearson": stats.pearsonr(x, y).statistic,
    }
    for kind, value in expected.items():
        result = correlate(x, y, kind, n_resamples=500)
        assert result.value == pytest.approx(value, rel=1e-12)
        assert result.low <= result.value <= result.high and result.n == 40


def test_partial_spearman_equals_correlation_of_rank_residuals():
    """ρ_xy·z by the closed form equals the Pearson correlation of the rank residuals on rank z."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=60)
    x = z + rng.normal(size=60)
    y = z - 0.5 * x + rng.normal(size=60)
    rx, ry, rz = (stats.rankdata(v) for v in (x, y, z))
    design = np.column_stack([np.ones_like(rz), rz])
    residual = [r - design @ np.linalg.lstsq(design, r, rcond=None)[0] for r in (rx, ry)]
    assert partial_spearman(x, y, z) == pytest.approx(np.corrcoef(*residual)[0, 1], rel=1e-10)


def test_bootstrap_interval_covers_the_population_value():
    """The 95% interval covers the population Spearman ρ_s = (6/π) arcsin(ρ/2) in ≥ 32 of 40 draws.

    For bivariate normal data with correlation ρ = 0.5 and n = 60, a nominal 95% interval misses
    about 2 of 40 times; 9 or more misses has probability below 1% even at 90% true coverage.
    """
    truth = 6 / math.pi * math.asin(0.25)
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        x, y = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], size=60).T
        result = correlate(x, y, "spearman", n_resamples=400, seed=seed)
        covered += result.low <= truth <= result.high
    assert covered >= 32


def test_undefined_correlations_are_nan():
    """Fewer than three models, or a constant variable, give NaN rather than a number."""
    assert math.isnan(correlate([1.0, 2.0], [2.0, 1.0]).value)
    assert math.isnan(correlate([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]).value)
    with pytest.raises(ValueError, match="needs the control variable"):
        correlate([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "partial_spearman")


def _write_result(root: Path, name: str, autoattack: float | None, lam: float, status: str = "ok",
                  predicted: float | None = None, method: str = "exact") -> None:
    summary = {"n": 8.0, "mean": 2 * lam, "median": lam, "mean_log10": math.log10(lam), "std": 0.1}
    record = {
        "model": name, "dataset": "cifar10", "threat_model": "Linf", "status": status,
        "error": None if status == "ok" else "Traceback ...\nRuntimeError: out of memory",
        "reported": {"clean_acc": 80.0 + lam, "autoattack_acc": autoattack, "architecture": "WideResNet-28-10",
                     "eps": "8/255", "additional_data": False, "venue": ""},
        "n_examples": 8, "clean_acc": 75.0,
        "fisher": {"spectral_norm": summary, "trace": summary} if status == "ok" else None,
        "predicted_robust_acc": {"Linf": {"eps": 8 / 255, "first_order": predicted},
                                 "L2": {"eps": 0.5, "first_order": 99.0}} if status == "ok" else None,
        "seconds": {"load": 0.1, "fisher": 0.2, "total": 0.3}, "images_per_second": 10.0,
        "method": method, "batch_size": 8, "device": "cpu", "seed": 0, "versions": {},
    }
    path = root / "cifar10" / "Linf" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_render_writes_every_output_and_ranks_correctly(tmp_path):
    """Five models with Fisher falling as AutoAttack accuracy rises: ρ = −1 in every output."""
    for i, (aa, lam) in enumerate([(10.0, 50.0), (20.0, 20.0), (30.0, 9.0), (45.0, 2.0), (60.0, 0.5)]):
        _write_result(tmp_path / "results", f"Model{i}", aa, lam)
    _write_result(tmp_path / "results", "Broken", 55.0, 1.0, status="failed")
    _write_result(tmp_path / "results", "NoAutoAttack", None, 3.0)
    out = tmp_path / "rendered"
    rendered = render(tmp_path / "results", out)

    table = rendered["correlations"]["cifar10/Linf"]["lambda_max_median"]
    assert table["spearman_vs_autoattack"].value == pytest.approx(-1.0)
    assert table["kendall_vs_autoattack"].value == pytest.approx(-1.0)
    assert table["spearman_vs_autoattack"].n == 5  # failed and AutoAttack-less models excluded
    with open(out / "leaderboard.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7 and {r["status"] for r in rows} == {"ok", "failed"}
    assert json.loads((out / "correlations.json").read_text())["cifar10/Linf"]["lambda_max_median"][
        "spearman_vs_autoattack"]["value"] == pytest.approx(-1.0)
    text = (out / "leaderboard.md").read_text()
    assert text.index("Model4") < text.index("Model0")  # ranked by AutoAttack accuracy
    # Failures are listed after the table of scored models, by their error's last line.
    assert "\n- Broken: RuntimeError: out of memory\n" in text and text.index("Not scored (1):") > text.index("Model0")
    for name in ("fisher_vs_autoattack.png", "clean_vs_autoattack.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_without_results_says_what_to_do(tmp_path):
    """An empty results directory raises an error that points to `run`."""
    with pytest.raises(FileNotFoundError, match="python -m leaderboard run"):
        render(tmp_path, tmp_path / "out")


def test_render_reports_predicted_robust_accuracy_and_its_mean_error(tmp_path):
    """|predicted − AutoAttack| per model at its own threat model, and its mean over the models
    that have both (here |42 − 40| and |25 − 30|: 3.5 points over 2); the method column says
    which route ran instead of a blanket "(exact)"."""
    _write_result(tmp_path / "results", "A", 40.0, 2.0, predicted=42.0)
    _write_result(tmp_path / "results", "B", 30.0, 5.0, predicted=25.0, method="lanczos (trace: hutchinson)")
    _write_result(tmp_path / "results", "NoPrediction", 20.0, 9.0)
    _write_result(tmp_path / "results", "NoAutoAttack", None, 3.0, predicted=50.0)
    out = tmp_path / "rendered"
    rows = {r["model"]: r for r in render(tmp_path / "results", out)["rows"]}
    assert rows["A"]["predicted_robust_acc"] == 42.0 and rows["A"]["predicted_abs_error"] == pytest.approx(2.0)
    assert rows["B"]["predicted_abs_error"] == pytest.approx(5.0)
    assert rows["NoPrediction"]["predicted_abs_error"] is None and rows["NoAutoAttack"]["predicted_abs_error"] is None
    text = (out / "leaderboard.md").read_text()
    assert "Mean |predicted − AutoAttack| over 2 models: 3.50 points." in text
    assert "| lanczos (trace: hutchinson) |" in text and "(exact)" not in text
    with open(out / "leaderboard.csv") as handle:
        csv_rows = {r["model"]: r for r in csv.DictReader(handle)}
    assert float(csv_rows["B"]["predicted_abs_error"]) == pytest.approx(5.0)
