"""Leaderboard statistics and rendering: coefficients against independent computations."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from render_cases import write_result as _write_result
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


def test_render_writes_every_output_and_ranks_correctly(tmp_path):
    """Five models with Fisher falling as AutoAttack accuracy rises: ρ = −1 in every output."""
    for i, (aa, lam) in enumerate([(10.0, 50.0), (20.0, 20.0), (30.0, 9.0), (45.0, 2.0),
                                   (60.0, 0.5)]):
        _write_result(tmp_path / "results", f"Model{i}", aa, lam)
    _write_result(tmp_path / "results", "Broken", 55.0, 1.0, status="failed")
    _write_result(tmp_path / "results", "NoAutoAttack", None, 3.0)
    out = tmp_path / "rendered"
    rendered = render(tmp_path / "results", out)

    table = rendered["correlations"]["cifar10/Linf"]["spectral_norm_median"]
    assert table["spearman_vs_autoattack"].value == pytest.approx(-1.0)
    assert table["kendall_vs_autoattack"].value == pytest.approx(-1.0)
    assert table["spearman_vs_autoattack"].n == 5  # failed and AutoAttack-less models excluded
    with open(out / "leaderboard.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7 and {r["status"] for r in rows} == {"ok", "failed"}
    written = json.loads((out / "correlations.json").read_text())["cifar10/Linf"]
    assert written["spectral_norm_median"]["spearman_vs_autoattack"]["value"] == pytest.approx(-1.0)
    text = (out / "leaderboard.md").read_text()
    assert text.index("Model4") < text.index("Model0")  # ranked by AutoAttack accuracy
    # Failures are listed after the table of scored models, by their error's last line.
    assert (
        "\n- Broken: RuntimeError: out of memory\n" in text
        and text.index("Not scored (1):") > text.index("Model0")
    )
    for name in ("fisher_vs_autoattack.png", "clean_vs_autoattack.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_without_results_says_what_to_do(tmp_path):
    """An empty results directory raises an error that points to `run`."""
    with pytest.raises(FileNotFoundError, match="python -m leaderboard run"):
        render(tmp_path, tmp_path / "out")


def test_render_reports_predicted_robust_accuracy_and_its_mean_error(tmp_path):
    """|predicted − AutoAttack| per model at its own threat model, and its mean over the models
    that have both (here |42 − 40| and |25 − 30|: 3.5 points over 2); the method column says
    which route ran instead of a blanket "(exact)".
    """
    _write_result(tmp_path / "results", "A", 40.0, 2.0, predicted=42.0)
    _write_result(tmp_path / "results", "B", 30.0, 5.0, predicted=25.0,
                  method="lanczos (trace: hutchinson)")
    _write_result(tmp_path / "results", "NoPrediction", 20.0, 9.0)
    _write_result(tmp_path / "results", "NoAutoAttack", None, 3.0, predicted=50.0)
    out = tmp_path / "rendered"
    rows = {r["model"]: r for r in render(tmp_path / "results", out)["rows"]}
    assert (
        rows["A"]["predicted_robust_acc"] == 42.0 and rows["A"]["predicted_abs_error"]
        == pytest.approx(2.0)
    )
    assert rows["B"]["predicted_abs_error"] == pytest.approx(5.0)
    assert (
        rows["NoPrediction"]["predicted_abs_error"] is None
        and rows["NoAutoAttack"]["predicted_abs_error"] is None
    )
    text = (out / "leaderboard.md").read_text()
    assert "Mean |predicted − AutoAttack| over 2 models: 3.50 points." in text
    assert "| lanczos (trace: hutchinson) |" in text and "(exact)" not in text
    with open(out / "leaderboard.csv") as handle:
        csv_rows = {r["model"]: r for r in csv.DictReader(handle)}
    assert float(csv_rows["B"]["predicted_abs_error"]) == pytest.approx(5.0)


def _attach_npz(root: Path, name: str, arrays: dict[str, np.ndarray]) -> Path:
    """Store per-image arrays beside a result written by _write_result, and record their SHA-256 in
    its JSON.
    """
    from leaderboard import store

    json_path = root / "cifar10" / "Linf" / f"{name}.json"
    npz = json_path.with_suffix(".npz")
    record = json.loads(json_path.read_text())
    record["per_image"] = {"file": npz.name, "sha256": store.write_per_image(npz, arrays)}
    json_path.write_text(json.dumps(record))
    return npz


def _arrays(radius: list[float], refined: list[float] | None = None) -> dict[str, np.ndarray]:
    n = len(radius)
    arrays = {"index": np.arange(n), "label": np.zeros(n, dtype=np.int64),
              "prediction": np.array([0 if r > 0 else 1 for r in radius]),
              "spectral_norm": np.ones(n),
              "trace": np.ones(n), "radius_linf": np.array(radius, dtype=np.float64)}
    if refined is not None:
        arrays["radius_linf_refined"] = np.array(refined, dtype=np.float64)
    return arrays


def _three_good_results(root: Path) -> None:
    for i, (aa, lam) in enumerate([(10.0, 50.0), (30.0, 9.0), (60.0, 0.5)]):
        _write_result(root, f"Good{i}", aa, lam, predicted=aa + 1)


MALFORMED_JSON = {
    "not UTF-8": (b'\xff\xfe{"model": "Bad"}', r"is not UTF-8 text \(byte 0xff at offset 0\)"),
    "not JSON": (b'{"model": "Bad", "status": ', r"is not valid JSON"),
    "a list, not an object": (b'[{"model": "Bad"}]', r"holds a list, not a JSON object"),
    "a list where an object belongs": (
        json.dumps({"model": "Bad", "dataset": "cifar10", "threat_model": "Linf", "status": "ok",
                    "reported": [40.0, 50.0]}).encode(),
        r"field 'reported' is a list, expected an object or null"),
    "a string where a number belongs": (
        json.dumps({"model": "Bad", "dataset": "cifar10", "threat_model": "Linf", "status": "ok",
                    "reported": {"autoattack_acc": "40.0"}}).encode(),
        r"field 'reported.autoattack_acc' is a string, expected a number or null"),
    "a required field missing": (json.dumps({"model": "Bad", "dataset": "cifar10",
                                             "status": "ok"}).encode(),
                                 r"field 'threat_model' is missing"),
}


@pytest.mark.parametrize("case", list(MALFORMED_JSON), ids=list(MALFORMED_JSON))
def test_render_names_and_skips_a_malformed_result_json(tmp_path, case):
    """A bad JSON is skipped by name with its reason; the others render; the page and the Markdown
    list it.
    """
    results, out = tmp_path / "results", tmp_path / "out"
    _three_good_results(results)
    content, reason = MALFORMED_JSON[case]
    (results / "cifar10" / "Linf" / "Bad.json").write_bytes(content)
    rendered = render(results, out, n_resamples=50)
    assert [s.file for s in rendered["skipped"]] == ["cifar10/Linf/Bad.json"]
    assert re.search(reason, rendered["skipped"][0].reason)
    assert {r["model"] for r in rendered["rows"]} == {"Good0", "Good1", "Good2"}
    page = (out / "index.html").read_text()
    assert "Files skipped (1)" in page and "<code>cifar10/Linf/Bad.json</code>" in page
    assert "Files skipped (1)" in (out / "leaderboard.md").read_text()


def test_render_command_fails_on_a_skipped_file_unless_partial_is_allowed(tmp_path, capsys):
    """`render` exits 1 naming the skipped file, and 0 with --allow-partial (writing the outputs
    both times).
    """
    from leaderboard.__main__ import main

    results, out = tmp_path / "results", tmp_path / "out"
    _three_good_results(results)
    (results / "cifar10" / "Linf" / "Bad.json").write_bytes(b"\xff")
    assert main(["render", "--results", str(results), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "cifar10/Linf/Bad.json: is not UTF-8 text" in err and "--allow-partial" in err
    assert (out / "index.html").is_file()
    assert main(["render", "--results", str(results), "--out", str(out), "--allow-partial"]) == 0


@pytest.mark.parametrize("damage", ["altered", "truncated", "missing"])
def test_render_checks_each_npz_against_the_sha256_its_json_records(tmp_path, damage):
    """An .npz that differs from its JSON's hash, is cut short or is absent is named; its model is
    left out.
    """
    results = tmp_path / "results"
    _three_good_results(results)
    _write_result(results, "Damaged", 45.0, 2.0, predicted=44.0)
    npz = _attach_npz(results, "Damaged", _arrays([0.0, 0.01, 0.05, 0.2]))
    _attach_npz(results, "Good0", _arrays([0.0, 0.02, 0.03, 0.1]))
    if damage == "altered":
        from leaderboard import store

        store.write_per_image(npz, _arrays([0.0, 0.01, 0.05, 0.3]))
        reason = "is not the file Damaged.json describes (SHA-256 differs)"
    elif damage == "truncated":
        npz.write_bytes(npz.read_bytes()[:100])
        reason = "is truncated or corrupt (100 bytes"
    else:
        npz.unlink()
        reason = "is missing (Damaged.json names it)"
    rendered = render(results, tmp_path / "out", n_resamples=50)
    assert [s.file for s in rendered["skipped"]] == ["cifar10/Linf/Damaged.npz"]
    assert (
        reason in rendered["skipped"][0].reason
        and "Damaged left out" in rendered["skipped"][0].reason
    )
    assert "Damaged" not in {r["model"] for r in rendered["rows"]}
    assert "cifar10/Linf/Good0" in rendered["curves"]  # the intact .npz is used


def test_refined_prediction_is_used_where_stored_and_both_are_shown(tmp_path):
    """With refined predictions, |Δ| and the correlations use them: here the refined values rank the
    models as AutoAttack does (ρ = +1) while the first-order ones rank them in reverse (ρ = −1).
    """
    results = tmp_path / "results"
    for i, (aa, first, refined) in enumerate([(10.0, 40.0, 12.0), (20.0, 30.0, 19.0),
                                              (30.0, 20.0, 33.0)]):
        _write_result(results, f"M{i}", aa, 1.0 + i, predicted=first)
        path = results / "cifar10" / "Linf" / f"M{i}.json"
        record = json.loads(path.read_text())
        record["predicted_robust_acc"]["Linf"]["refined"] = refined
        path.write_text(json.dumps(record))
    _write_result(results, "OldFile", 40.0, 0.5, predicted=41.0)  # first-order only: still shown
    out = tmp_path / "out"
    rendered = render(results, out, n_resamples=50)
    rows = {r["model"]: r for r in rendered["rows"]}
    assert (
        rows["M0"]["predicted_robust_acc"] == 12.0 and rows["M0"]["predicted_first_order"] == 40.0
    )
    assert rows["M0"]["predicted_abs_error"] == pytest.approx(2.0)
    assert (
        rows["OldFile"]["predicted_robust_acc"] == 41.0
        and rows["OldFile"]["predicted_refined"] is None
    )
    predicted = rendered["correlations"]["cifar10/Linf"]["predicted_robust_acc"]
    assert predicted["spearman_vs_autoattack"].value == pytest.approx(1.0)
    text = (out / "leaderboard.md").read_text()
    assert (
        "| predicted (refined) | predicted (first-order) |" in text
        and "| 12.0 | 40.0 | 2.0 |" in text
    )
    with open(out / "leaderboard.csv") as handle:
        csv_rows = {r["model"]: r for r in csv.DictReader(handle)}
    assert (
        float(csv_rows["M2"]["predicted_refined"]) == 33.0
        and float(csv_rows["M2"]["predicted_first_order"]) == 20.0
    )
    page = (out / "index.html").read_text()
    assert ">predicted %<" in page and ">predicted, first-order %<" in page


def test_accuracy_curve_from_the_radii_with_autoattack_points(tmp_path):
    """The curve is robust_fraction of the stored radii at each budget (first-order and refined);
    its AutoAttack points are the reported accuracy at 8/255 and each further budget's file; a
    malformed budget file is named and skipped; the page embeds the curve as a PNG data URI.
    """
    from art_fim.curve import robust_fraction

    results, curves_dir = tmp_path / "results", tmp_path / "autoattack_curve"
    _three_good_results(results)
    first, refined = [0.0, 0.01, 0.02, 0.04, 0.08], [0.0, 0.005, 0.015, 0.03, 0.07]
    _attach_npz(results, "Good1", _arrays(first, refined))
    budget = curves_dir / "cifar10" / "Linf"
    budget.mkdir(parents=True)
    (budget / "Good1_eps4-255.json").write_text(json.dumps({"eps": 4 / 255, "autoattack_acc": 45.0,
                                                            "n_examples": 500}))
    (budget / "Good1_eps16-255.json").write_text(json.dumps({"eps": 16 / 255,
                                                             "autoattack_acc": [5.0]}))
    out = tmp_path / "out"
    rendered = render(results, out, n_resamples=50, autoattack_curves=curves_dir)
    curve = rendered["curves"]["cifar10/Linf/Good1"]
    assert set(rendered["curves"]) == {"cifar10/Linf/Good1"}
    for i, eps in enumerate(curve.eps):
        assert curve.first_order[i] == pytest.approx(100 * robust_fraction(np.array(first), eps))
        assert curve.refined[i] == pytest.approx(100 * robust_fraction(np.array(refined), eps))
    assert curve.eps[0] == 0.0 and curve.eps[-1] >= 2 * 8 / 255
    assert [(p.eps, p.accuracy) for p in curve.autoattack] == [(4 / 255, 45.0), (8 / 255, 30.0)]
    assert [s.file for s in rendered["skipped"]] == ["cifar10/Linf/Good1_eps16-255.json"]
    assert "field 'autoattack_acc' is a list" in rendered["skipped"][0].reason
    page = (out / "index.html").read_text()
    assert re.search(r'alt="accuracy vs eps of Good1" [^>]*src="data:image/png;base64,', page)
    assert (out / "accuracy_vs_eps_cifar10_Linf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_is_self_contained_and_names_every_point(tmp_path):
    """index.html loads nothing from elsewhere, has a row per scored model, a tooltip per plotted
    point naming its model, and the identity line on the predicted-vs-AutoAttack panel; values are
    escaped.
    """
    results = tmp_path / "results"
    for i, (aa, lam) in enumerate([(10.0, 50.0), (20.0, 20.0), (30.0, 9.0), (45.0, 2.0)]):
        _write_result(results, f"Model{i}", aa, lam, predicted=aa + 2)
    _write_result(results, "Odd<b>", 25.0, 4.0, predicted=24.0)
    out = tmp_path / "out"
    render(results, out, n_resamples=50)
    page = (out / "index.html").read_text()
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "url(http" not in page
    models = [f"Model{i}" for i in range(4)] + ["Odd&lt;b&gt;"]
    assert sorted(re.findall(r'<tr class="model" data-model="([^"]+)"', page)) == sorted(models)
    assert "Odd<b>" not in page
    predicted_svg = page.split('id="figure-predicted_vs_autoattack"', 1)[1].split("</figure>", 1)[0]
    assert "identity: predicted = AutoAttack" in predicted_svg
    titles = re.findall(r"<title>([^<]+)</title>", predicted_svg)
    assert sorted(t.split(" (")[0] for t in titles) == sorted(models)
    fisher_svg = page.split('id="figure-fisher_vs_autoattack"', 1)[1].split("</figure>", 1)[0]
    assert (
        len(re.findall(r'<g id="fisher_vs_autoattack-\d+" class="point"><title>', fisher_svg)) == 5
    )


def test_npz_with_the_old_array_names_is_read_under_the_current_names(tmp_path):
    """A per-image file written before ``lambda_max`` became ``spectral_norm`` is read under the
    current names, by the store and by render's checked reader, and renders like a current one.
    """
    from leaderboard import store
    from leaderboard.read_results import read_results

    root = tmp_path / "results"
    _three_good_results(root)
    old = {"index": np.arange(4), "label": np.zeros(4, dtype=np.int64),
           "prediction": np.zeros(4, dtype=np.int64),
           "lambda_max": np.array([1.0, 2.0, 3.0, 4.0]), "lambda_max_stderr": np.zeros(4),
           "trace": np.array([2.0, 3.0, 4.0, 5.0]), "trace_stderr": np.zeros(4)}
    assert set(store.RENAMED_ARRAYS) <= set(old)
    npz = _attach_npz(root, "Good0", old)
    sha256 = json.loads(npz.with_suffix(".json").read_text())["per_image"]["sha256"]
    arrays = store.read_per_image(npz, sha256)
    assert sorted(arrays) == sorted(store.PER_IMAGE_ARRAYS)
    np.testing.assert_array_equal(arrays["spectral_norm"], old["lambda_max"])
    np.testing.assert_array_equal(arrays["spectral_norm_stderr"], old["lambda_max_stderr"])
    assert store.summarize_per_image(arrays)["fisher"]["spectral_norm"]["median"] == 2.5
    read = read_results(root)
    assert read.skipped == []
    per_image = {r.record.model: r.per_image for r in read.results}["Good0"]
    assert sorted(per_image) == sorted(store.PER_IMAGE_ARRAYS)
    rows = render(root, tmp_path / "rendered", n_resamples=20)["rows"]
    assert {r["model"] for r in rows} == {"Good0", "Good1", "Good2"}


def test_committed_zoo_results_are_read_and_render_with_nothing_skipped(tmp_path):
    """The committed zoo results (per-image files written with the old array names) pass every
    check, their per-image values reproduce each JSON's Fisher summaries, and they render.
    """
    from leaderboard import store
    from leaderboard.read_results import read_results
    from leaderboard.zoo.weights import ZOO_DIR

    committed = Path(__file__).resolve().parents[1] / "leaderboard" / "results" / "zoo"
    read = read_results(committed)
    assert read.skipped == [] and read.results
    for result in read.results:
        if not result.record.ok:
            continue
        assert set(store.PER_IMAGE_ARRAYS) <= set(result.per_image)
        assert not set(store.RENAMED_ARRAYS) & set(result.per_image)
        budgets = {threat: p["eps"] for threat, p in result.record.predicted_robust_acc.items()}
        summary = store.summarize_per_image(result.per_image, budgets)
        # Equal to the last bit but for mean_log10, whose vectorised log10 may round a value one
        # ulp apart on another NumPy build or CPU; 1e-12 relative leaves no room for a real change.
        assert summary["fisher"].keys() == result.record.fisher.keys(), result.path
        for quantity, summarised in summary["fisher"].items():
            stored = result.record.fisher[quantity]
            assert summarised.keys() == stored.keys(), result.path
            for name, value in summarised.items():
                assert value == pytest.approx(stored[name], rel=1e-12, abs=1e-15), (
                    result.path, quantity, name)
    rendered = render(committed, tmp_path / "rendered", n_resamples=20,
                      autoattack_curves=ZOO_DIR / "autoattack_curve")
    assert rendered["skipped"] == []
    assert len(rendered["rows"]) == len(read.results)


@pytest.mark.parametrize("kind", ["spearman", "kendall", "pearson", "partial_spearman"])
def test_vectorised_bootstrap_equals_scipy_bootstrap(kind):
    """Value and interval equal ``scipy.stats.bootstrap`` (paired, percentile) with the same seed,
    on data with ties, where every resample's coefficient is computed one at a time by scipy.
    """
    rng = np.random.default_rng(7)
    x = np.round(rng.normal(size=15), 1)
    y = np.round(x + rng.normal(size=15), 1)
    z = rng.normal(size=15)
    one = {"spearman": lambda a, b: stats.spearmanr(a, b).statistic,
           "kendall": lambda a, b: stats.kendalltau(a, b).statistic,
           "pearson": lambda a, b: stats.pearsonr(a, b).statistic,
           "partial_spearman": partial_spearman}[kind]
    samples = (x, y, z) if kind == "partial_spearman" else (x, y)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # Resamples that repeat one model make a variable constant: scipy warns, returns NaN.
        warnings.simplefilter("ignore")
        reference = stats.bootstrap(samples, one, paired=True, vectorized=False, n_resamples=300,
                                    method="percentile", rng=np.random.default_rng(3))
    distribution = reference.bootstrap_distribution
    low, high = np.quantile(distribution[np.isfinite(distribution)], [0.025, 0.975])
    result = correlate(x, y, kind, control=z if kind == "partial_spearman" else None,
                       n_resamples=300, seed=3)
    assert result.value == pytest.approx(one(*samples), abs=1e-12)
    assert (result.low, result.high) == (pytest.approx(low, abs=1e-12),
                                        pytest.approx(high, abs=1e-12))


def test_wilson_interval_of_an_accuracy_equals_scipys():
    """An accuracy of k/n in percent gets scipy's Wilson interval of k out of n, in percent."""
    from leaderboard.stats import accuracy_interval

    for k, n in [(0, 500), (64, 500), (500, 500), (4_123, 10_000), (1, 3)]:
        interval = stats.binomtest(k, n).proportion_ci(method="wilson")
        low, high = accuracy_interval(100 * k / n, n)
        assert (low, high) == (pytest.approx(100 * interval.low, abs=1e-9),
                               pytest.approx(100 * interval.high, abs=1e-9))
    assert accuracy_interval(50.0, None) is None and accuracy_interval(150.0, 10) is None


def test_no_string_in_the_stylesheet_or_script_spans_a_line():
    """A line break inside a CSS string makes the browser drop or nest every later rule (it once
    left most of the stylesheet unapplied); the same in JavaScript is a syntax error.
    """
    from leaderboard.page_assets import CSS, SCRIPT

    for text in (CSS, SCRIPT):
        strings = re.findall(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', text, flags=re.DOTALL)
        assert strings and not [s for s in strings if "\n" in s]
    assert CSS.count("{") == CSS.count("}")


def test_a_models_curve_is_legible():
    """The curve in a model's details is at least 600 px wide with text of 11 pt or more."""
    from leaderboard import plots
    from leaderboard.model_curves import ModelCurve

    eps = np.linspace(0, 0.1, 11)
    curve = ModelCurve("M", "cifar10", "Linf", eps, 80 - 500 * eps, 78 - 500 * eps, 8 / 255, ())
    from matplotlib.text import Text
    from PIL import Image

    with plots.style():
        figure = plots.curve_figure(curve)
    width, _ = Image.open(io.BytesIO(plots.png(figure))).size
    sizes = [t.get_fontsize() for t in figure.figure.findobj(Text) if t.get_text()]
    plots.close([figure])
    assert width >= 600 and min(sizes) >= 11


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.0, 2.0), refined=st.booleans())
def test_stored_unproven_radii_are_never_counted_robust(seed: int, eps: float,
                                                        refined: bool) -> None:
    """A stored radius not proven to be the minimum over all classes counts as not robust.

    The stored summary equals ``art_fim``'s own count with the flags, never exceeds the count
    over proven inputs alone, and reports the proven percentage.
    """
    from art_fim.curve import robust_fraction
    from leaderboard import store

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    radius = np.where(rng.random(n) < 0.2, 0.0, rng.exponential(1.0, n))
    proven = rng.random(n) < rng.random()
    arrays = {"index": np.arange(n), "label": np.zeros(n, np.int64),
              "prediction": np.zeros(n, np.int64), "spectral_norm": np.ones(n),
              "trace": np.ones(n), "radius_l2": radius, "proven_l2": proven}
    if refined:
        arrays |= {"radius_l2_refined": radius * 0.9, "proven_l2_refined": proven}
    predicted = store.summarize_per_image(arrays, {"L2": eps})["predicted_robust_acc"]["L2"]
    robust_and_proven = 100.0 * float(np.mean((radius > 0) & (radius >= eps) & proven))
    expected = 100.0 * robust_fraction(radius, eps, proven)
    assert predicted["first_order"] == expected
    assert predicted["proven_first_order"] == 100.0 * float(np.mean(proven))
    if eps > 0:
        assert predicted["first_order"] == robust_and_proven
    if refined:
        assert predicted["refined"] <= predicted["first_order"]
        assert predicted["proven_refined"] == predicted["proven_first_order"]


def test_log_axes_read_as_plain_numbers(tmp_path: Path) -> None:
    r"""Every log axis of the scatter figures labels its ticks ``0.1``, ``1``, ``10``, not the
    math-text source (``$\mathdefault{10^{1}}$``) that the page's ``$``-is-a-dollar setting
    would show as it is.
    """
    from matplotlib.text import Text

    from leaderboard import plots

    root = tmp_path / "results"
    for i, lam in enumerate([0.05, 0.5, 5.0, 50.0]):
        _write_result(root, f"Model{i}", autoattack=40.0 - 10 * i, lam=lam,
                      predicted=39.0 - 10 * i)
    rendered = render(root, tmp_path / "out", n_resamples=20)
    with plots.style():
        figures = plots.scatter_figures(rendered["rows"], rendered["correlations"])
        texts = []
        for figure in figures:
            figure.figure.canvas.draw()
            texts += [t.get_text() for t in figure.figure.findobj(Text) if t.get_text()]
            log_axes = [ax for ax in figure.figure.axes if ax.get_xscale() == "log"]
            for ax in log_axes:
                shown = {t.get_text() for t in ax.get_xticklabels() if t.get_visible()}
                assert shown & {"0.1", "1", "10"}, (figure.name, shown)
    plots.close(figures)
    assert any(f.name == "fisher_vs_autoattack" for f in figures)
    assert not [t for t in texts if "mathdefault" in t or t.startswith("$")]
