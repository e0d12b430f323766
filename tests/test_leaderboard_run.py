"""End to end, offline: RobustBench-layout checkpoints -> `run`, killed halfway and rerun; Ray.

Three real CIFAR-10 Linf zoo entries of different architectures get random weights saved in
RobustBench's layout at test time; a fourth entry has no weights. The first run is
interrupted (KeyboardInterrupt, as Ctrl-C) while the second model is being scored; the rerun
must skip the finished model without touching its file, retry the rest, and record the
model without weights as failed while the others complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from leaderboard_cases import E2E_MODELS, require_robustbench, save_random_checkpoint, without_timing

require_robustbench()

import leaderboard.run as lb_run  # noqa: E402
from leaderboard.__main__ import main  # noqa: E402
from leaderboard.registry import select_entries  # noqa: E402
from leaderboard.scoring import ScoreConfig  # noqa: E402

MISSING = "Standard"  # in the zoo, but no weights are saved for it
N_EXAMPLES = 4
CLI_ARGS = ["--dataset", "cifar10", "--threat-model", "Linf", "--n-examples", str(N_EXAMPLES),
            "--batch-size", "4", "--method", "exact", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run 1 is interrupted during the second model; run 2 (the CLI) resumes. Records both."""
    root = tmp_path_factory.mktemp("leaderboard")
    model_dir, results = root / "models", root / "results"
    for seed, name in enumerate(E2E_MODELS):
        save_random_checkpoint(name, "cifar10", "Linf", model_dir, seed=seed)
    order = [E2E_MODELS[0], MISSING, *E2E_MODELS[1:]]
    real = lb_run.score_and_write
    calls: list[str] = []

    def interrupt_second_model(entry: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(entry.name)
        if entry.name == E2E_MODELS[1]:
            raise KeyboardInterrupt  # killed halfway through the run
        return real(entry, *args, **kwargs)

    def count(entry: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(entry.name)
        return real(entry, *args, **kwargs)

    config = ScoreConfig(model_dir=str(model_dir), n_examples=N_EXAMPLES, batch_size=4, method="exact",
                         device="cpu", progress=False)
    # One thread, as in each Ray task: several times faster than two on a busy two-core runner.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield from _run_twice(model_dir, results, config, order, calls, interrupt_second_model, count)
    finally:
        torch.set_num_threads(threads)


def _run_twice(model_dir: Path, results: Path, config: ScoreConfig, order: list[str], calls: list[str],
               interrupt: Any, count: Any) -> Iterator[dict[str, Any]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lb_run, "score_and_write", interrupt)
        with pytest.raises(KeyboardInterrupt):
            lb_run.run_models(select_entries("cifar10", "Linf", order), config, results, progress=False)
    first_calls, calls[:] = list(calls), []
    first = results / "cifar10" / "Linf" / f"{E2E_MODELS[0]}.json"
    before = (first.read_bytes(), first.stat().st_mtime_ns)
    files_after_kill = sorted(p.name for p in (results / "cifar10" / "Linf").iterdir())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lb_run, "score_and_write", count)
        status = main(["run", *CLI_ARGS, "--models", ",".join(order), "--model-dir", str(model_dir),
                       "--results", str(results)])
    yield {
        "model_dir": model_dir, "results": results, "config": config, "first_calls": first_calls,
        "files_after_kill": files_after_kill, "rerun_calls": list(calls), "status": status,
        "before": before, "after": (first.read_bytes(), first.stat().st_mtime_ns),
    }


def _records(results: Path, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {n: json.loads((results / "cifar10" / "Linf" / f"{n}.json").read_text()) for n in names}


def test_kill_halfway_then_rerun_loses_and_recomputes_nothing(interrupted_run: dict[str, Any]) -> None:
    """The killed run kept the finished model; the rerun did not recompute or rewrite it."""
    assert interrupted_run["first_calls"] == [E2E_MODELS[0], MISSING, E2E_MODELS[1]]
    # Only complete files: the finished model and the failure record, no temporary file.
    assert interrupted_run["files_after_kill"] == sorted([f"{E2E_MODELS[0]}.json", f"{MISSING}.json"])
    assert interrupted_run["rerun_calls"] == [MISSING, *E2E_MODELS[1:]]
    assert interrupted_run["after"] == interrupted_run["before"]  # same bytes, same mtime
    assert all(r["status"] == "ok" for r in _records(interrupted_run["results"], E2E_MODELS).values())


def test_failed_model_is_recorded_and_the_run_goes_on(interrupted_run: dict[str, Any]) -> None:
    """The model without weights has a failed record saying where its file was expected."""
    record = _records(interrupted_run["results"], (MISSING,))[MISSING]
    assert record["status"] == "failed" and record["fisher"] is None
    assert "MissingWeightsError" in record["error"] and "cifar10/Linf/Standard.pt" in record["error"]
    assert interrupted_run["status"] == 1  # the CLI reports the failure in its exit status


def test_result_schema(interrupted_run: dict[str, Any]) -> None:
    """Each result follows the contract with `render`: keys, reported figures, Fisher summaries."""
    for name, record in _records(interrupted_run["results"], E2E_MODELS).items():
        assert list(record) == [
            "model", "dataset", "threat_model", "status", "error", "reported", "n_examples", "clean_acc",
            "fisher", "predicted_robust_acc", "seconds", "images_per_second", "method", "batch_size", "device",
            "seed", "versions",
        ]
        assert (record["model"], record["dataset"], record["threat_model"]) == (name, "cifar10", "Linf")
        assert record["reported"]["aa_source"] == "autoattack_acc"
        assert isinstance(record["reported"]["autoattack_acc"], float)
        assert record["n_examples"] == N_EXAMPLES and 0.0 <= record["clean_acc"] <= 100.0
        for quantity in ("spectral_norm", "trace"):
            summary = record["fisher"][quantity]
            assert summary["n"] == N_EXAMPLES and 0.0 <= summary["min"] <= summary["median"] <= summary["max"]
        # Attack-free robust accuracy at RobustBench's CIFAR-10 budgets, at most the clean accuracy.
        assert record["predicted_robust_acc"].keys() == {"Linf", "L2"}
        assert record["predicted_robust_acc"]["Linf"]["eps"] == pytest.approx(8 / 255)
        assert record["predicted_robust_acc"]["L2"]["eps"] == 0.5
        for prediction in record["predicted_robust_acc"].values():
            assert 0.0 <= prediction["first_order"] <= record["clean_acc"]
        # λ_max ≤ trace per input, so also for the means.
        assert record["fisher"]["spectral_norm"]["mean"] <= record["fisher"]["trace"]["mean"] * (1 + 1e-9)
        assert (record["method"], record["device"], record["seed"]) == ("exact", "cpu", 0)
        assert set(record["seconds"]) == {"load", "fisher", "total"} and record["images_per_second"] > 0
        assert set(record["versions"]) == {"art_fim", "torch", "robustbench"}
    reported = _records(interrupted_run["results"], ("Ding2020MMA",))["Ding2020MMA"]["reported"]
    assert (reported["architecture"], reported["clean_acc"], reported["autoattack_acc"]) == ("WideResNet-28-4", 84.36, 41.44)


def test_ray_backend_matches_local_run(interrupted_run: dict[str, Any], tmp_path: Path) -> None:
    """One Ray task per model on a local CPU cluster writes the same JSON as the local run."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        entries = select_entries("cifar10", "Linf", list(E2E_MODELS))
        summary = lb_run.run_models(entries, interrupted_run["config"], tmp_path, backend="ray",
                                    num_cpus_per_task=1, progress=False)
    finally:
        ray.shutdown()
    assert sorted(summary.done) == sorted(e.key for e in entries) and not summary.failed
    local = _records(interrupted_run["results"], E2E_MODELS)
    remote = _records(tmp_path, E2E_MODELS)
    for name in E2E_MODELS:
        assert without_timing(remote[name]) == without_timing(local[name]), name


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    """A write that fails midway leaves the previous result intact and no temporary file."""
    path = tmp_path / "cifar10" / "Linf" / "M.json"
    lb_run.write_atomic(path, {"status": "ok"})
    with pytest.raises(TypeError):
        lb_run.write_atomic(path, {"status": object()})
    assert json.loads(path.read_text()) == {"status": "ok"}
    assert [p.name for p in path.parent.iterdir()] == ["M.json"]


def test_render_after_run_prints_correlations(interrupted_run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """`render` on the resumed run's results: every output, and correlations over the scored models.

    With three scored models the Spearman coefficient is one of ±1, ±0.5; its value is whatever
    the random weights give, so only its definition over exactly these models is asserted.
    """
    out = interrupted_run["results"].parent / "rendered"
    assert main(["render", "--results", str(interrupted_run["results"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cifar10/Linf: correlations with reported AutoAttack accuracy (3 models)" in printed
    correlations = json.loads((out / "correlations.json").read_text())["cifar10/Linf"]["lambda_max_median"]
    assert correlations["spearman_vs_autoattack"]["n"] == 3
    assert correlations["spearman_vs_autoattack"]["value"] in (-1.0, -0.5, 0.5, 1.0)
    table = (out / "leaderboard.md").read_text()
    assert all(name in table for name in (*E2E_MODELS, MISSING))
    assert (out / "fisher_vs_autoattack.png").exists() and (out / "clean_vs_autoattack.png").exists()
