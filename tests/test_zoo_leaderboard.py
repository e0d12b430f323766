"""The project's zoo on the leaderboard, end to end on a stand-in zoo built at test time.

Two zoo architectures (VGG and ResNet-9) get seeded random weights, saved as the zoo saves
them (float16 state dicts), and model-info files with made-up AutoAttack accuracies at both
threat models. Scoring them must file each model under both threat models with that threat
model's own AutoAttack accuracy, from one pass (the second record is the first one's,
refiled); its baselines must keep their stated relations to the exact ``λ_max`` of the same
images; a rerun must resume, a lost record must be refiled rather than rescored; and
``render`` must give each metric's cost relative to AutoAttack's and say that two models are
too few for a rank correlation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import leaderboard.run as lb_run
from leaderboard import store
from leaderboard.__main__ import main
from leaderboard.baselines import Baselines
from leaderboard.render import render
from leaderboard.scoring import ScoreConfig
from leaderboard.zoo.architectures import build
from leaderboard.zoo.entries import zoo_entries
from leaderboard.zoo.plan import ZOO
from leaderboard.zoo.weights import save_weights, weights_path

MODELS = ("vgg_standard", "resnet9_standard")
# Made-up measurements per model and threat model: (AutoAttack accuracy, attack seconds).
MEASURED = {
    ("vgg_standard", "Linf"): (3.0, 40.0), ("vgg_standard", "L2"): (11.0, 90.0),
    ("resnet9_standard", "Linf"): (7.0, 60.0), ("resnet9_standard", "L2"): (19.0, 120.0),
}
N_EXAMPLES, ATTACKED = 4, 20
BASELINES = Baselines(blackbox_n=2, blackbox_queries=400, reference_n=3, clever_n=1,
                      clever_nb_batches=3,
                      clever_batch_size=4)


def make_zoo(root: Path) -> Path:
    """A zoo folder with random-weight models and model-info files at both threat models."""
    for seed, name in enumerate(MODELS):
        torch.manual_seed(seed)
        save_weights(build(ZOO[name].architecture).eval(), weights_path(name, root))
        for threat, eps in (("Linf", 8 / 255), ("L2", 0.5)):
            robust, seconds = MEASURED[name, threat]
            path = root / "model_info" / "cifar10" / threat / f"{name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({
                "name": name, "architecture": ZOO[name].architecture, "threat_model": threat,
                "eps": eps,
                "clean_acc": 50.0 + seed, "autoattack_acc": robust, "n_examples": ATTACKED,
                "attack_seconds": seconds,
            }))
    return root


def _record(results: Path, threat: str, name: str) -> dict[str, Any]:
    return json.loads((results / "cifar10" / threat / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stand-in zoo scored once with every baseline."""
    root = tmp_path_factory.mktemp("zoo")
    zoo, results = make_zoo(root / "zoo"), root / "results"
    config = ScoreConfig(model_dir=str(zoo), n_examples=N_EXAMPLES, batch_size=4, method="exact",
                         device="cpu",
                         progress=False, source="zoo", baselines=BASELINES)
    entries = zoo_entries(zoo)
    summary = lb_run.run_models(entries, config, results, progress=False)
    return {"zoo": zoo, "results": results, "config": config, "entries": entries,
            "summary": summary}


def test_every_model_is_filed_under_both_threat_models_with_its_own_autoattack_accuracy(scored):
    """Four records from two passes: the L2 record is the Linf one refiled, with L2's accuracies."""
    assert [(e.name, e.threat_model) for e in scored["entries"]] == [
        ("vgg_standard", "Linf"), ("vgg_standard", "L2"), ("resnet9_standard", "Linf"),
        ("resnet9_standard", "L2")]
    assert not scored["summary"].failed and len(scored["summary"].done) == 4
    for name in MODELS:
        linf, l2 = (_record(scored["results"], t, name) for t in ("Linf", "L2"))
        for threat, record in (("Linf", linf), ("L2", l2)):
            assert record["status"] == "ok" and record["threat_model"] == threat
            assert record["reported"]["autoattack_acc"] == MEASURED[name, threat][0]
            assert record["reported"]["attack_seconds"] == MEASURED[name, threat][1]
            assert record["reported"]["architecture"] == ZOO[name].architecture
            assert record["checkpoint_load"] == "weights_only"
        assert l2["shared_from"] == "Linf" and "shared_from" not in linf
        assert l2["fisher"] == linf["fisher"] and l2["baselines"] == linf["baselines"]
        assert set(linf["predicted_robust_acc"]) == {"Linf", "L2"}


def test_baselines_keep_their_stated_relations_to_the_exact_spectral_norm(scored):
    """Per image: the reference estimate (the largest of 100 Rayleigh quotients) is at most the
    exact λ_max; the query-only estimate with m orthogonal directions is within 5·√(2/m) of it
    (its stated relative error is about √(2/m)); CLEVER is a positive distortion per threat
    model.
    """
    m = (BASELINES.blackbox_queries - 3) // 2
    for name in MODELS:
        record = _record(scored["results"], "Linf", name)
        exact = store.read_per_image(scored["results"] / "cifar10" / "Linf" / f"{name}.npz")[
            "spectral_norm"
        ]
        baselines = record["baselines"]
        reference = np.array(baselines["reference_whitebox"]["values"])
        assert len(reference) == BASELINES.reference_n
        assert np.all(reference <= exact[: len(reference)] * (1 + 1e-6))
        assert np.all(reference > 0)
        blackbox = np.array(baselines["blackbox"]["values"])
        assert len(blackbox) == BASELINES.blackbox_n
        np.testing.assert_array_less(np.abs(blackbox / exact[: len(blackbox)] - 1),
                                     5 * math.sqrt(2 / m))
        assert set(baselines["clever"]) == {"linf", "l2"}
        for summary in baselines["clever"].values():
            assert summary["n"] == BASELINES.clever_n and all(v > 0 for v in summary["values"])
            assert summary["seconds_per_image"] == pytest.approx(summary["seconds"] / summary["n"])
        assert record["settings"]["baselines"] == BASELINES.settings()


def test_rerun_resumes_and_refiles_a_lost_threat_model_without_rescoring(scored, monkeypatch):
    """A rerun scores nothing; with one L2 record deleted it refiles it from the Linf result."""
    results, config, entries = scored["results"], scored["config"], scored["entries"]
    before = _record(results, "L2", "resnet9_standard")
    (results / "cifar10" / "L2" / "resnet9_standard.json").unlink()

    def must_not_score(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model with a stored result was scored again")

    monkeypatch.setattr(lb_run, "score_and_write", must_not_score)
    summary = lb_run.run_models(entries, config, results, progress=False)
    assert summary.done == ["cifar10/L2/resnet9_standard"] and len(summary.skipped) == 3
    after = _record(results, "L2", "resnet9_standard")
    assert {k: v for k, v in after.items() if k != "per_image"} == {k: v for k, v in before.items()
                                                                    if k != "per_image"}
    assert (
        lb_run.run_models(entries, config, results, progress=False).skipped
        == [e.key for e in entries]
    )


def test_render_gives_costs_relative_to_autoattack_and_says_two_models_are_too_few(
    scored, tmp_path
):
    """Cost ratio = (Fisher seconds / n) / (attack seconds / attacked images), per model;
    correlations NaN.
    """
    rendered = render(scored["results"], tmp_path)
    rows = {(r["model"], r["threat_model"]): r for r in rendered["rows"]}
    for (name, threat), (_, attack_seconds) in MEASURED.items():
        record = _record(scored["results"], threat, name)
        row = rows[name, threat]
        assert row["autoattack_seconds_per_image"] == pytest.approx(attack_seconds / ATTACKED)
        assert row["fisher_seconds_per_image"] == pytest.approx(
            record["seconds"]["fisher"] / N_EXAMPLES
        )
        assert row["clever_median"] == record["baselines"]["clever"][threat.lower()]["median"]
    for group in ("cifar10/Linf", "cifar10/L2"):
        table = rendered["correlations"][group]
        assert {"blackbox_spectral_norm_median", "reference_spectral_norm_median",
                "clever_median"} <= set(table)
        assert all(math.isnan(c.value) and c.n == 2 for row in table.values() for c in row.values())
    text = (tmp_path / "leaderboard.md").read_text()
    assert "rank correlations need at least 3 models" in text and "× AutoAttack's" in text
    assert (tmp_path / "scores_vs_autoattack.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_scores_the_zoo_and_renders_it(scored, tmp_path, capsys):
    """`run --source zoo` (no baselines, so it is quick) then `render --source zoo`; both exit 0."""
    results = tmp_path / "results"
    args = ["--source", "zoo", "--model-dir", str(scored["zoo"]), "--results", str(results)]
    fast = ["--n-examples", "3", "--blackbox-n", "0", "--reference-n", "0", "--clever-n", "0",
            "--no-progress"]
    assert main(["run", *args, *fast]) == 0
    out = capsys.readouterr().out
    assert "2 of the zoo's 18 planned models scored" in out
    assert sorted(p.relative_to(results).as_posix() for p in results.glob("*/*/*.json")) == [
        f"cifar10/{t}/{n}.json" for t in ("L2", "Linf") for n in sorted(MODELS)]
    assert main(["render", "--source", "zoo", "--results", str(results)]) == 0
    assert "need at least 3 models" in capsys.readouterr().out


@pytest.mark.parametrize("kept", [0.05, 0.5], ids=["5% kept (torch: OSError Errno 22)", "50% kept"])
def test_truncated_weights_fail_their_model_naming_the_file(tmp_path, kept):
    """A zoo checkpoint cut short is recorded as failed with its file name and size, and the run
    goes on.
    """
    zoo, results = make_zoo(tmp_path / "zoo"), tmp_path / "results"
    path = weights_path("vgg_standard", zoo)
    path.write_bytes(path.read_bytes()[: int(kept * path.stat().st_size)])
    args = ["run", "--source", "zoo", "--model-dir", str(zoo), "--results", str(results),
            "--n-examples", "2",
            "--blackbox-n", "0", "--reference-n", "0", "--clever-n", "0", "--no-progress"]
    assert main(args) == 1
    failed = _record(results, "Linf", "vgg_standard")
    assert failed["status"] == "failed"
    first_line = failed["error"].splitlines()[0]
    assert (
        f"{path} ({path.stat().st_size} bytes) could not be read" in first_line
        and "truncated" in first_line
    )
    assert _record(results, "Linf", "resnet9_standard")["status"] == "ok"
