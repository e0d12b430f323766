"""Which attack-free score tracks AutoAttack, and the proven percentage, on fixture results.

The fixture (:data:`render_cases.PEER_MODELS`) puts the logit margin and the gradient norm on the
five points whose leave-one-out isotonic predictions ``tests/test_calibration.py`` works out by
hand, so the rendered errors are checked against that hand computation, not against the code
that produced them.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from render_cases import PEER_MODELS, write_peer_results, write_result

from leaderboard.calibration import leave_one_out_isotonic
from leaderboard.render import render

GROUP = "cifar10/Linf"
# tests/test_calibration.py's hand-computed leave-one-out on scores 1..5, accuracies
# 10, 30, 20, 40, 50: the models' order in PEER_MODELS.
HAND = [25.0, 15.0, 35.0, 37.5, 40.0]
AUTOATTACK = np.array([m[1] for m in PEER_MODELS])


def _render(root: Path, **kwargs: Any) -> dict[str, Any]:
    write_peer_results(root / "results", **kwargs)
    return render(root / "results", root / "out", n_resamples=50)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fixture rendered once, with every model's radii proven (the ten-class case)."""
    return _render(tmp_path_factory.mktemp("tracking"))


def _out(rendered: dict[str, Any]) -> Path:
    return rendered["files"][0].parent


def test_rows_are_every_score_sorted_by_absolute_spearman(rendered):
    """Every correlated score has a row; |ρ| never rises down the table; the page and the Markdown
    list the rows in the same order; exact rankers first, GREAT Score (ρ = −0.1) last.
    """
    tracked = rendered["tracked"][GROUP]
    correlations = rendered["correlations"][GROUP]
    assert {t.score for t in tracked} == set(correlations)
    assert {"great_score", "logit_margin_median", "gradient_norm_median",
            "predicted_robust_acc", "spectral_norm_median"} <= set(correlations)
    spearman = [abs(correlations[t.score]["spearman_vs_autoattack"].value) for t in tracked]
    assert spearman == sorted(spearman, reverse=True)
    assert spearman[0] == pytest.approx(1.0) and tracked[-1].score == "great_score"
    assert tracked[-1].spearman.value == pytest.approx(-0.1)
    order = [t.score for t in tracked]
    page = (_out(rendered) / "index.html").read_text()
    table = page[page.index('<table class="plain tracking"'):]
    table = table[:table.index("</table>")]
    assert re.findall(r'<tr data-score="([^"]+)"', table) == order
    markdown = (_out(rendered) / "leaderboard.md").read_text()
    section = markdown[markdown.index("### Which attack-free score tracks AutoAttack"):]
    labels_in_order = [line.split(" | ")[0][2:] for line in section.splitlines()[5:]
                       if line.startswith("| ")][:len(order)]
    from leaderboard.labels import score_label

    assert labels_in_order == [score_label(s) for s in order]


def test_calibrated_error_is_the_hand_computed_leave_one_out(rendered):
    """The logit margin (more robust when larger) and the gradient norm (its mirror image, less
    robust when larger, so fitted decreasing) both give the hand-worked predictions, MAE 11.5;
    fitting the gradient norm increasing instead would give another error.
    """
    tracked = {t.score: t for t in rendered["tracked"][GROUP]}
    for score in ("logit_margin_median", "gradient_norm_median"):
        fit = tracked[score].calibrated
        np.testing.assert_allclose(fit.predictions, HAND, rtol=0, atol=1e-12)
        assert fit.mae == pytest.approx(11.5, abs=1e-12)
        assert tracked[score].models == tuple(m[0] for m in PEER_MODELS)
    assert tracked["gradient_norm_median"].calibrated.increasing is False
    wrong_way = leave_one_out_isotonic(np.array([m[6] for m in PEER_MODELS]), AUTOATTACK,
                                       increasing=True)
    assert wrong_way.mae != pytest.approx(11.5)
    # GREAT Score declares larger = more robust; fits that learn their direction differ.
    great = np.array([m[4] for m in PEER_MODELS])
    assert tracked["great_score"].calibrated.mae == pytest.approx(
        leave_one_out_isotonic(great, AUTOATTACK, increasing=True).mae)
    with pytest.warns(UserWarning):  # scikit-learn's note on the fold's Spearman interval
        learned = leave_one_out_isotonic(great, AUTOATTACK, increasing="auto").mae
    assert tracked["great_score"].learned_mae == pytest.approx(learned)


def test_uncalibrated_error_and_costs(rendered):
    """The prediction's own error is mean |predicted − AutoAttack| = (2+3+1+4+1)/5 = 2.2 points,
    on its row only; costs are each score's seconds per image over AutoAttack's 1 s.
    """
    tracked = {t.score: t for t in rendered["tracked"][GROUP]}
    assert tracked["predicted_robust_acc"].uncalibrated_mae == pytest.approx(2.2)
    assert tracked["predicted_robust_acc"].uncalibrated_n == 5
    assert all(t.uncalibrated_mae is None for s, t in tracked.items()
               if s != "predicted_robust_acc")
    ratios = {s: t.cost.ratio for s, t in tracked.items()}
    assert ratios["spectral_norm_median"] == pytest.approx(0.2 / 8)  # the Fisher pass: 0.2 s / 8
    assert ratios["predicted_robust_acc"] == ratios["spectral_norm_median"]
    assert ratios["great_score"] == pytest.approx(0.005)
    assert ratios["logit_margin_median"] == pytest.approx(0.002)
    assert ratios["gradient_norm_median"] == pytest.approx(0.01)


def test_correlations_json_carries_them_beside_the_coefficients(rendered):
    """correlations.json keeps group -> score -> coefficient and adds the calibration, the
    uncalibrated error and the cost under their own keys.
    """
    written = json.loads((_out(rendered) / "correlations.json").read_text())[GROUP]
    margin = written["logit_margin_median"]
    assert margin["spearman_vs_autoattack"]["value"] == pytest.approx(0.9)
    loo = margin["isotonic_loo_vs_autoattack"]
    assert loo["mae"] == pytest.approx(11.5) and loo["n"] == 5 and loo["increasing"] is True
    assert loo["predictions"] == pytest.approx(HAND)
    assert loo["models"] == [m[0] for m in PEER_MODELS]
    assert written["gradient_norm_median"]["isotonic_loo_vs_autoattack"]["increasing"] is False
    assert written["predicted_robust_acc"]["uncalibrated_abs_error_vs_autoattack"] == {
        "mae": pytest.approx(2.2), "n": 5}
    assert written["great_score"]["cost_vs_autoattack"]["median_ratio"] == pytest.approx(0.005)
    assert "uncalibrated_abs_error_vs_autoattack" not in written["great_score"]


def test_fewer_than_three_models_give_no_calibration(tmp_path):
    """With two models there is no leave-one-out fit, no table, and correlations.json only has
    its coefficients; a baseline on two of three models gets a row without a calibrated error.
    """
    for i, (aa, lam) in enumerate([(10.0, 5.0), (40.0, 1.0)]):
        write_result(tmp_path / "two", f"M{i}", aa, lam, predicted=aa)
    rendered = render(tmp_path / "two", tmp_path / "two-out", n_resamples=20)
    assert rendered["tracked"] == {}
    assert '<table class="plain tracking"' not in (tmp_path / "two-out" / "index.html").read_text()
    written = json.loads((tmp_path / "two-out" / "correlations.json").read_text())[GROUP]
    assert set(written["spectral_norm_median"]) == {
        "spearman_vs_autoattack", "kendall_vs_autoattack", "pearson_vs_autoattack",
        "spearman_vs_clean", "partial_spearman_vs_autoattack_given_clean"}

    clever = {"clever": {"linf": {"n": 2, "median": 0.1, "score": 0.1, "seconds": 1.0,
                                  "seconds_per_image": 0.5}}}
    for i, (aa, lam) in enumerate([(10.0, 5.0), (40.0, 1.0), (25.0, 2.0)]):
        write_result(tmp_path / "three", f"M{i}", aa, lam, predicted=aa,
                     **({"baselines": clever} if i < 2 else {}))
    tracked = {t.score: t for t in render(tmp_path / "three", tmp_path / "three-out",
                                          n_resamples=20)["tracked"][GROUP]}
    assert tracked["clever_median"].calibrated is None
    assert tracked["spectral_norm_median"].calibrated is not None


def _model_header(page: str) -> str:
    return page[page.index('<table class="board"'):page.index("</thead>")]


def test_proven_percentage_is_shown_only_where_some_model_is_below_100(tmp_path, rendered):
    """Every radius proven (the ten-class zoo): no proven column, note or details line. One model
    at 97.5% at ℓ∞: a proven column in the page and the Markdown, the note, and that model's
    details naming it per threat model; the other models' details stay as they were.
    """
    page = (_out(rendered) / "index.html").read_text()
    markdown = (_out(rendered) / "leaderboard.md").read_text()
    assert "proven %" not in _model_header(page) and 'class="proven"' not in page
    assert "| proven |" not in markdown and "proven-note" not in page

    some = _render(tmp_path, proven={"P3": 97.5})
    page = (_out(some) / "index.html").read_text()
    markdown = (_out(some) / "leaderboard.md").read_text()
    assert "proven %" in _model_header(page) and "proven-note" in page
    details = re.findall(r'<tr class="detail" id="details-cifar10-Linf-(P\d)"(.*?)</tr>', page)
    shown = {model for model, body in details if 'class="proven"' in body}
    assert shown == {"P3"}
    body = dict(details)["P3"]
    assert "ℓ∞ (ε = 8/255): first-order 97.5%" in body
    assert "ℓ2 (ε = 0.5): first-order 100.0%" in body
    row = next(line for line in markdown.splitlines() if line.startswith("| P3 |"))
    header = next(line for line in markdown.splitlines() if line.startswith("| model |"))
    assert row.split(" | ")[header.split(" | ").index("proven")] == "97.5"
    with open(_out(some) / "leaderboard.csv") as handle:
        csv_rows = {r["model"]: r for r in csv.DictReader(handle)}
    assert float(csv_rows["P3"]["proven_first_order"]) == 97.5
    assert float(csv_rows["P0"]["proven_first_order"]) == 100.0


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("predicted_robust_acc.Linf.proven_first_order", 150.0,
     "field 'predicted_robust_acc.Linf.proven_first_order' is 150.0, outside [0, 100]"),
    ("baselines.great_score.score", -0.5, "field 'baselines.great_score.score' is -0.5, outside"),
    ("baselines.logit_margin.score", 1e309, "field 'baselines.logit_margin.score' is inf"),
])
def test_a_proven_percentage_or_peer_score_out_of_range_is_skipped_by_name(tmp_path, field, value,
                                                                           reason):
    """A negative logit margin is a margin (the fixture has them); a proven share above 100%, a
    negative GREAT Score or an infinite margin is not, and its file is named and left out.
    """
    write_peer_results(tmp_path / "results")
    path = tmp_path / "results" / "cifar10" / "Linf" / "P2.json"
    record = json.loads(path.read_text())
    *parents, last = field.split(".")
    target = record
    for key in parents:
        target = target[key]
    target[last] = value
    path.write_text(json.dumps(record).replace("Infinity", "1e309"))
    rendered = render(tmp_path / "results", tmp_path / "out", n_resamples=20)
    assert [s.file for s in rendered["skipped"]] == ["cifar10/Linf/P2.json"]
    assert reason in rendered["skipped"][0].reason
    assert {r["model"] for r in rendered["rows"]} == {"P0", "P1", "P3", "P4"}


def test_each_peers_declared_direction_is_the_one_its_score_reports():
    """The calibration's direction comes from :data:`leaderboard.labels.SCORES`; it must be the
    one each peer reports for itself (computed here on a small linear model).
    """
    import torch
    from torch import nn

    from leaderboard.baselines import BASELINES
    from leaderboard.labels import SCORES
    from leaderboard.peers import PEERS, peer_scores

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    x = np.random.default_rng(0).random((6, 3, 2, 2), dtype=np.float32)
    scores = peer_scores(model, x, np.arange(6) % 3, threat_model="Linf")
    columns = {b.name: b.column for b in BASELINES}
    assert set(PEERS) <= set(columns)
    for name, peer in scores.items():
        assert SCORES[columns[name]].higher_is_robust is peer.higher_is_robust, name
