"""End to end, offline: RobustBench-layout checkpoints -> `run`, killed halfway and rerun; Ray.

Three real CIFAR-10 Linf zoo entries of different architectures get random weights saved in
RobustBench's layout at test time; a fourth entry has no weights. The first run is
interrupted (KeyboardInterrupt, as Ctrl-C) while the second model is being scored; the rerun
must skip the finished model without touching its file, retry the rest, and record the
model without weights as failed while the others complete. The results then carry their
provenance and per-image values, and a rerun with other settings is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from leaderboard_cases import (
    E2E_MODELS,
    require_robustbench,
    save_random_checkpoint,
    without_timing,
)

require_robustbench()

import leaderboard.run as lb_run  # noqa: E402
from leaderboard import store  # noqa: E402
from leaderboard.__main__ import main  # noqa: E402
from leaderboard.data import BUNDLED_CIFAR10, bundled_order  # noqa: E402
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

    config = ScoreConfig(model_dir=str(model_dir), n_examples=N_EXAMPLES, batch_size=4,
                         method="exact",
                         device="cpu", progress=False)
    # One thread, as in each Ray task: several times faster than two on a busy two-core runner.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield from _run_twice(model_dir, results, config, order, calls, interrupt_second_model,
                              count)
    finally:
        torch.set_num_threads(threads)


def _run_twice(model_dir: Path, results: Path, config: ScoreConfig, order: list[str],
               calls: list[str],
               interrupt: Any, count: Any) -> Iterator[dict[str, Any]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lb_run, "score_and_write", interrupt)
        with pytest.raises(KeyboardInterrupt):
            lb_run.run_models(select_entries("cifar10", "Linf", order), config, results,
                              progress=False)
    first_calls, calls[:] = list(calls), []
    first = results / "cifar10" / "Linf" / f"{E2E_MODELS[0]}.json"
    before = (first.read_bytes(), first.stat().st_mtime_ns)
    files_after_kill = sorted(p.name for p in (results / "cifar10" / "Linf").iterdir())
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.setattr(lb_run, "score_and_write", count)
        status = main(["run", *CLI_ARGS, "--models", ",".join(order), "--model-dir", str(model_dir),
                       "--results", str(results)])
    yield {
        "model_dir": model_dir, "results": results, "config": config, "first_calls": first_calls,
        "files_after_kill": files_after_kill, "rerun_calls": list(calls), "status": status,
        "before": before, "after": (first.read_bytes(), first.stat().st_mtime_ns),
        "printed": printed.getvalue(),
    }


def _records(results: Path, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {n: json.loads((results / "cifar10" / "Linf" / f"{n}.json").read_text()) for n in names}


def test_kill_halfway_then_rerun_loses_and_recomputes_nothing(
    interrupted_run: dict[str, Any],
) -> None:
    """The killed run kept the finished model; the rerun did not recompute or rewrite it."""
    assert interrupted_run["first_calls"] == [E2E_MODELS[0], MISSING, E2E_MODELS[1]]
    # Only complete files: the finished model (JSON and .npz) and the failure record, no temporary
    # file.
    assert interrupted_run["files_after_kill"] == sorted(
        [f"{E2E_MODELS[0]}.json", f"{E2E_MODELS[0]}.npz", f"{MISSING}.json"])
    assert interrupted_run["rerun_calls"] == [MISSING, *E2E_MODELS[1:]]
    assert interrupted_run["after"] == interrupted_run["before"]  # same bytes, same mtime
    assert all(r["status"] == "ok" for r in _records(interrupted_run["results"],
                                                     E2E_MODELS).values())


def test_failed_model_is_recorded_and_the_run_goes_on(interrupted_run: dict[str, Any]) -> None:
    """The model without weights has a failed record saying where its file was expected.

    The CLI says so once, with the count, the expected layout and --skip-missing, not per model.
    """
    record = _records(interrupted_run["results"], (MISSING,))[MISSING]
    assert record["status"] == "failed" and record["fisher"] is None and record["per_image"] is None
    assert (
        "MissingWeightsError" in record["error"] and "cifar10/Linf/Standard.pt" in record["error"]
    )
    assert interrupted_run["status"] == 1  # the CLI reports the failure in its exit status
    printed = interrupted_run["printed"]
    assert printed.count("no weights") == 1 and "MissingWeightsError" not in printed
    assert (
        "1 of 4 models have no weights under" in printed
        and "--skip-missing leaves them out" in printed
    )
    assert "failed  1  (1 without weights)" in printed


def test_result_schema(interrupted_run: dict[str, Any]) -> None:
    """Each result follows the contract with `render` and says how its numbers were made."""
    for name, record in _records(interrupted_run["results"], E2E_MODELS).items():
        assert list(record) == [
            "schema_version", "model", "dataset", "threat_model", "status", "error", "reported",
            "n_examples", "clean_acc",
            "fisher", "predicted_robust_acc", "seconds", "images_per_second", "method",
            "batch_size", "device",
            "precision", "competitors", "proof_failure", "seed", "versions", "settings", "route",
            "images",
            "checkpoints",
            "checkpoint_load", "per_image",
        ]
        assert (record["model"], record["dataset"],
                record["threat_model"]) == (name, "cifar10", "Linf")
        assert record["reported"]["aa_source"] == "autoattack_acc"
        assert isinstance(record["reported"]["autoattack_acc"], float)
        assert record["n_examples"] == N_EXAMPLES and 0.0 <= record["clean_acc"] <= 100.0
        for quantity in ("spectral_norm", "trace"):
            summary = record["fisher"][quantity]
            assert (
                summary["n"] == N_EXAMPLES and 0.0 <= summary["min"] <= summary["median"]
                <= summary["max"]
            )
        # Attack-free robust accuracy at RobustBench's CIFAR-10 budgets, at most the clean accuracy.
        assert record["predicted_robust_acc"].keys() == {"Linf", "L2"}
        assert record["predicted_robust_acc"]["Linf"]["eps"] == pytest.approx(8 / 255)
        assert record["predicted_robust_acc"]["L2"]["eps"] == 0.5
        for prediction in record["predicted_robust_acc"].values():
            # The refined radius is never above the first-order one, so neither is its accuracy.
            assert 0.0 <= prediction["refined"] <= prediction["first_order"] <= record["clean_acc"]
            # Ten classes: the exact route sees every class, so every radius is proven.
            assert prediction["proven_first_order"] == prediction["proven_refined"] == 100.0
        assert record["proof_failure"] is None
        # λ_max ≤ trace per input, so also for the means.
        assert record["fisher"]["spectral_norm"]["mean"] <= record["fisher"]["trace"]["mean"] * (
            1 + 1e-9
        )
        assert (record["method"], record["seed"]) == ("exact",
                                                      0) and record["device"].startswith("cpu")
        assert (
            set(record["seconds"]) == {"load", "warmup", "fisher", "total"}
            and record["images_per_second"] > 0
        )
        assert (record["precision"], record["competitors"]) == ("float32", 9)
        assert {"python", "art_fim", "torch", "numpy", "robustbench",
                "timm"} <= set(record["versions"])
        # Provenance: settings, route actually taken, images, checkpoint hash, load mode.
        assert record["settings"] == {"n_examples": N_EXAMPLES, "seed": 0, "method": "exact",
                                      "images": "bundled",
                                      "precision": "float32", "refine": True}
        assert (
            record["route"] == {q: {"method": "exact", "batch_size": 4}
                                for q in ("spectral_norm", "trace")}
        )
        index = bundled_order(N_EXAMPLES)
        assert record["images"]["source"] == "bundled" and record["images"]["n"] == N_EXAMPLES
        assert record["images"]["index_sha256"] == hashlib.sha256(index.tobytes()).hexdigest()
        assert (
            record["images"]["file_sha256"]
            == hashlib.sha256(BUNDLED_CIFAR10.read_bytes()).hexdigest()
        )
        checkpoint = interrupted_run["model_dir"] / "cifar10" / "Linf" / f"{name}.pt"
        assert record["checkpoints"] == [
            {
                "file": f"cifar10/Linf/{name}.pt",
                "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
                "bytes": checkpoint.stat().st_size,
            }
        ]
        assert record["checkpoint_load"] == "weights_only"
    reported = _records(interrupted_run["results"], ("Ding2020MMA",))["Ding2020MMA"]["reported"]
    assert (reported["architecture"], reported["clean_acc"],
            reported["autoattack_acc"]) == ("WideResNet-28-4", 84.36, 41.44)


def test_npz_reaggregates_to_the_json_exactly(interrupted_run: dict[str, Any]) -> None:
    """The per-image .npz beside each JSON gives back its n, clean accuracy and Fisher summaries
    exactly.
    """
    with np.load(BUNDLED_CIFAR10) as bundled:
        labels = bundled["y"][bundled_order(N_EXAMPLES)]
    for name, record in _records(interrupted_run["results"], E2E_MODELS).items():
        npz = interrupted_run["results"] / "cifar10" / "Linf" / record["per_image"]["file"]
        arrays = store.read_per_image(npz, record["per_image"]["sha256"])
        assert sorted(arrays) == sorted([
            *store.PER_IMAGE_ARRAYS, "radius_linf", "radius_l2", "radius_linf_refined",
            "radius_l2_refined", "proven_linf", "proven_l2", "proven_linf_refined",
            "proven_l2_refined"])
        assert all(len(a) == N_EXAMPLES for a in arrays.values())
        np.testing.assert_array_equal(arrays["index"], bundled_order(N_EXAMPLES))
        np.testing.assert_array_equal(arrays["label"], labels)
        budgets = {threat: p["eps"] for threat, p in record["predicted_robust_acc"].items()}
        again = store.summarize_per_image(arrays, budgets)
        assert again == {key: record[key] for key in ("n_examples", "clean_acc", "fisher",
                                                      "predicted_robust_acc")}, name
        # A re-aggregation of one's own: the per-image λ_max never exceeds the trace.
        assert (arrays["spectral_norm"] <= arrays["trace"] * (1 + 1e-9)).all()


def test_rerun_with_other_settings_is_refused_not_mixed(
    interrupted_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rerun with another --n-examples leaves every stored file alone and says which flag to use;
    rescoring only part of a folder with --overwrite makes `render` leave the odd one out of the
    table, naming the setting that differs, and exit 1.
    """
    results = tmp_path / "results"
    shutil.copytree(interrupted_run["results"], results)
    before = {p.name: p.read_bytes() for p in (results / "cifar10" / "Linf").iterdir()}
    args = ["run", *CLI_ARGS, "--n-examples", "3", "--models", ",".join(E2E_MODELS),
            "--model-dir", str(interrupted_run["model_dir"]), "--results", str(results)]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert (
        "3 result(s) under" in error and "n_examples 4 (this run: 3)" in error
        and "--overwrite" in error
    )
    assert {p.name: p.read_bytes() for p in (results / "cifar10" / "Linf").iterdir()} == before

    args[args.index("--models") + 1] = E2E_MODELS[0]
    assert main([*args, "--overwrite"]) == 0
    assert _records(results, E2E_MODELS[:1])[E2E_MODELS[0]]["n_examples"] == 3
    assert main(["render", "--results", str(results), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert (
        f"cifar10/Linf/{E2E_MODELS[0]}.json: scored with other settings" in error
        and "n_examples 3 (theirs: 4)" in error
    )
    rendered = (tmp_path / "out" / "leaderboard.csv").read_text()
    assert E2E_MODELS[0] not in rendered and all(name in rendered for name in E2E_MODELS[1:])


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
    store.write_atomic(path, {"status": "ok"})
    with pytest.raises(TypeError):
        store.write_atomic(path, {"status": object()})
    assert json.loads(path.read_text()) == {"status": "ok"}
    assert [p.name for p in path.parent.iterdir()] == ["M.json"]


def test_render_after_run_prints_correlations(interrupted_run: dict[str, Any],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`render` on the resumed run's results: every output, and correlations over the scored models.

    With three scored models the Spearman coefficient is one of ±1, ±0.5; its value is whatever
    the random weights give, so only its definition over exactly these models is asserted.
    """
    out = interrupted_run["results"].parent / "rendered"
    assert main(["render", "--results", str(interrupted_run["results"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "median λ_max vs AutoAttack (3 models): Spearman" in printed
    correlations = json.loads((out / "correlations.json").read_text())["cifar10/Linf"][
        "spectral_norm_median"
    ]
    assert correlations["spearman_vs_autoattack"]["n"] == 3
    assert correlations["spearman_vs_autoattack"]["value"] in (-1.0, -0.5, 0.5, 1.0)
    table = (out / "leaderboard.md").read_text()
    assert all(name in table for name in (*E2E_MODELS, MISSING))
    assert (out / "fisher_vs_autoattack.png").exists() and (
        out / "clean_vs_autoattack.png"
    ).exists()


def test_planted_payload_fails_its_model_and_the_next_is_scored(tmp_path: Path) -> None:
    """A pickle payload placed as models/cifar10/Linf/Standard.pt does not run during `run`:
    Standard is recorded as failed, naming the global and --trust-checkpoints; the next model is
    scored.
    """
    model_dir, results, marker = tmp_path / "models", tmp_path / "results", tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    (model_dir / "cifar10" / "Linf").mkdir(parents=True)
    (model_dir / "cifar10" / "Linf" / "Standard.pt").write_bytes(
        pickle.dumps(Payload(), protocol=2)
    )
    save_random_checkpoint(E2E_MODELS[0], "cifar10", "Linf", model_dir, seed=0)
    status = main(["run", *CLI_ARGS, "--models", f"Standard,{E2E_MODELS[0]}", "--model-dir",
                   str(model_dir),
                   "--results", str(results)])
    assert status == 1 and not marker.exists()
    records = _records(results, ("Standard", E2E_MODELS[0]))
    failed = records["Standard"]
    assert failed["status"] == "failed" and failed["checkpoints"] is None
    assert failed["error"].startswith("UnsafeCheckpointError: "
                                      f"{model_dir}/cifar10/Linf/Standard.pt was not loaded: "
                                      f"it needs {os.system.__module__}.system")
    assert "--trust-checkpoints" in failed["error"].splitlines()[0]
    assert records[E2E_MODELS[0]]["status"] == "ok"


def test_first_run_without_weights_says_what_to_do(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """No weights at all: one message (count, layout, how to see what is present), exit 2, no
    results folder.

    With some weights, --skip-missing leaves the others out without recording them.
    """
    results = tmp_path / "results"
    assert (
        main(["run", *CLI_ARGS, "--model-dir", str(tmp_path / "none"), "--results", str(results)])
        == 2
    )
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 2
    assert "none of the 76 selected models has its weights under" in captured.err
    assert (
        "<dataset>/<threat_model>/<name>.pt" in captured.err and "leaderboard list" in captured.err
    )
    assert not results.exists()

    model_dir = tmp_path / "models"
    save_random_checkpoint(E2E_MODELS[0], "cifar10", "Linf", model_dir, seed=0)
    assert main(["run", *CLI_ARGS, "--models", f"Standard,{E2E_MODELS[0]}", "--skip-missing",
                 "--model-dir", str(model_dir), "--results", str(results)]) == 0
    assert "leaving out 1 of 2 models without weights" in capsys.readouterr().out
    assert sorted(p.name for p in (results / "cifar10" / "Linf").iterdir()) == [
        f"{E2E_MODELS[0]}.json",
        f"{E2E_MODELS[0]}.npz",
    ]


def test_render_with_nothing_scored_says_how_to_score(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`render` over no results, or over failures only, writes nothing and says how to score (exit
    2).
    """
    out = tmp_path / "out"
    assert main(["render", "--results", str(tmp_path / "absent"), "--out", str(out)]) == 2
    assert f"the results folder {tmp_path / 'absent'} does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["render", "--results", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "nothing is scored under" in capsys.readouterr().err
    failed = {"model": "Standard", "dataset": "cifar10", "threat_model": "Linf", "status": "failed",
              "error": "MissingWeightsError: No weights for cifar10/Linf/Standard"}
    store.write_atomic(tmp_path / "results" / "cifar10" / "Linf" / "Standard.json", failed)
    assert main(["render", "--results", str(tmp_path / "results"), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert (
        "nothing is scored under" in error and "all record failures" in error
        and "MissingWeightsError" in error
    )
    assert "python -m leaderboard run --model-dir" in error and not out.exists()
