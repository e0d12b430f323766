"""The command line's friction points, one test each.

``--help`` and argument errors must not load torch, RobustBench, art_fim or matplotlib (they took
4-14 s); the help's examples must parse when pasted; ``list --source zoo`` works; ``render --help``
documents render's options only; a missing results folder is named with the source's advice;
zoo names are matched without regard to case and typos get suggestions; ``--device cuda`` without
a GPU is refused before anything is scored; warnings are written above progress bars, not into
them; and baselines show progress.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from leaderboard.__main__ import EXAMPLES, _logging_beside_progress_bars, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "robustbench", "art_fim", "matplotlib", "scipy", "art")


def _modules_loaded_by(argv: list[str]) -> tuple[int, list[str], str]:
    """Exit status, heavy modules loaded and output of ``main(argv)`` in a fresh interpreter."""
    code = (
        "import sys\n"
        "from leaderboard.__main__ import main\n"
        "try:\n"
        f"    status = main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    status = exc.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', ','.join(heavy), file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    heavy_line = [line for line in done.stderr.splitlines() if line.startswith("HEAVY")][-1]
    loaded = [m for m in heavy_line.removeprefix("HEAVY").strip().split(",") if m]
    return done.returncode, loaded, done.stdout + done.stderr


@pytest.mark.parametrize("argv", [
    ["--help"], ["run", "--help"], ["list", "--help"], ["render", "--help"],
    ["run", "--n-examples", "0"], ["run", "--source", "nope"], ["frobnicate"],
], ids=" ".join)
def test_help_and_argument_errors_load_no_heavy_module(argv: list[str]) -> None:
    status, loaded, output = _modules_loaded_by(argv)
    assert status in (0, 2) and loaded == [], output
    assert "usage: python -m leaderboard" in output


def test_every_help_example_parses_when_pasted() -> None:
    """Each example, its continuation lines joined as a shell joins them, is a valid command."""
    commands = EXAMPLES.replace("\\\n", " ").strip().splitlines()
    assert len(commands) == 6 and not any(line.strip().startswith("\\") for line in commands)
    parser = build_parser()
    for line in commands:
        for command in line.split("&&"):
            words = shlex.split(command)
            assert words[:3] == ["python", "-m", "leaderboard"], command
            parser.parse_args(words[3:])  # exits on an error


def test_render_help_documents_render_options_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["render", "--help"])
    text = capsys.readouterr().out
    assert "--allow-partial" in text and "--autoattack-curves" in text
    assert all(option not in text for option in ("--model-dir", "--dataset", "--threat-model"))


def test_list_knows_the_zoo(capsys: pytest.CaptureFixture[str]) -> None:
    """`list --source zoo` lists the committed zoo: 18 models, each at both threat models."""
    assert main(["list", "--source", "zoo"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("36 project zoo entries, 36 with AutoAttack accuracy, 36 with "
                                "weights")
    rows = [line.split() for line in lines[1:-1]]
    assert len(rows) == 36 and {r[1] for r in rows} == {"Linf", "L2"}
    assert all(r[-1] == "yes" for r in rows)


def test_a_missing_results_folder_is_named_with_the_sources_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-results"
    assert main(["render", "--source", "zoo", "--results", str(missing)]) == 2
    error = capsys.readouterr().err
    assert f"the results folder {missing} does not exist" in error
    assert "run --source zoo" in error and "RobustBench" not in error and "--model-dir" not in error
    assert main(["render", "--results", str(missing)]) == 2
    assert "run --model-dir DIR" in capsys.readouterr().err


def test_zoo_names_match_in_any_case_and_typos_get_suggestions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from leaderboard.errors import UnknownModelError
    from leaderboard.sources import SOURCES

    zoo = SOURCES["zoo"]
    entries = zoo.entries(zoo.default_model_dir, models=["VGG_PGD8", "ResNet9_Standard"])
    # In the zoo's build order, whatever the order asked.
    assert sorted((e.name, e.threat_model) for e in entries) == [
        ("resnet9_standard", "L2"), ("resnet9_standard", "Linf"), ("vgg_pgd8", "L2"),
        ("vgg_pgd8", "Linf")]
    with pytest.raises(UnknownModelError, match="Did you mean vgg_pgd8"):
        zoo.entries(zoo.default_model_dir, models=["vgg_pgd9"])
    assert main(["run", "--source", "zoo", "--models", "VGG-PGD8", "--results", "unused"]) == 2
    error = capsys.readouterr().err
    assert "'VGG-PGD8' is not in the project's zoo. Did you mean vgg_pgd8" in error
    assert "list --source zoo" in error


def test_names_that_differ_only_in_case_keep_their_exact_match() -> None:
    from leaderboard.errors import UnknownModelError
    from leaderboard.registry import resolve_names

    assert resolve_names(["Ab", "ab"], ["ab", "Ab"], "here") == ["Ab", "ab"]
    with pytest.raises(UnknownModelError, match="Did you mean ab, Ab"):
        resolve_names(["AB"], ["ab", "Ab"], "here")


def test_cuda_without_a_gpu_is_refused_before_scoring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import leaderboard.run as lb_run

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(lb_run, "run_models", lambda *a, **k: pytest.fail("scoring started"))
    results = tmp_path / "results"
    for device in ("cuda", "cuda:1"):
        assert main(["run", "--source", "zoo", "--models", "vgg_pgd8", "--device", device,
                     "--results", str(results)]) == 2
        assert "torch sees no GPU" in capsys.readouterr().err
    assert main(["run", "--source", "zoo", "--device", "gpu", "--results", str(results)]) == 2
    assert "'gpu' is not a device" in capsys.readouterr().err
    assert not results.exists()


def test_warnings_and_log_records_go_above_progress_bars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside the command, a warning becomes a log record written through tqdm.write."""
    from tqdm import tqdm

    written: list[str] = []
    monkeypatch.setattr(tqdm, "write", classmethod(lambda cls, s, *a, **k: written.append(s)))
    logging.basicConfig()
    with _logging_beside_progress_bars(), tqdm(total=2, disable=False, file=sys.stderr) as bar:
        warnings.warn("a model said something", UserWarning, stacklevel=1)
        logging.getLogger("leaderboard.scoring").warning("vgg_pgd8 failed: OSError: truncated")
        bar.update(1)
    assert any("a model said something" in line for line in written)
    assert any("vgg_pgd8 failed" in line for line in written)


def test_baselines_show_progress(capsys: pytest.CaptureFixture[str]) -> None:
    """score_baselines draws one bar over every image of every baseline."""
    from leaderboard.baselines import Baselines, score_baselines
    from leaderboard.zoo.architectures import build

    torch.manual_seed(0)
    model = build("vgg").eval()
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    counts = Baselines(blackbox_n=1, blackbox_queries=20, reference_n=2, clever_n=1,
                       clever_nb_batches=2, clever_batch_size=2)
    out = score_baselines(model, x, np.zeros(len(x), int), {"Linf": 8 / 255, "L2": 0.5}, counts,
                          np.ones(2), progress=True)
    assert set(out) == {"blackbox", "reference_whitebox", "clever", "great_score", "logit_margin",
                        "gradient_norm"}
    assert set(out["gradient_norm"]) == {"linf", "l2"}
    err = capsys.readouterr().err
    # 1 black-box + 2 reference + 1 CLEVER × 2 norms + 2 GREAT + 2 margins + 2 gradients × 2 norms
    assert "baselines" in err and "13/13" in err
