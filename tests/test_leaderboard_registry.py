"""The zoo listing: RobustBench's 206 entries joined with the shipped model_info snapshot."""

from __future__ import annotations

import json

import pytest

from leaderboard_cases import require_robustbench

require_robustbench()

from leaderboard.__main__ import main  # noqa: E402
from leaderboard.registry import MODEL_INFO_DIR, list_entries, reported_for, select_entries  # noqa: E402
from leaderboard.robustbench_compat import UnknownModelError  # noqa: E402


def test_list_prints_all_206_entries_165_with_autoattack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`list` (offline) prints one row per zoo entry and the count line 206 / 165."""
    assert main(["list", "--model-dir", "no-such-dir"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith(
        "206 RobustBench zoo entries, 165 with AutoAttack accuracy, 0 with weights")
    assert lines[-1].startswith("To score models, put RobustBench's checkpoints under no-such-dir/")
    assert len(lines) == 1 + 206 + 2  # header, rows, count, where weights go


@pytest.mark.parametrize(
    ("dataset", "threat_model", "count", "with_aa"),
    [("cifar10", "Linf", 76, 76), ("cifar10", "L2", 21, 21), ("cifar10", "corruptions", 17, 0),
     ("cifar100", "all", 50, 38), ("imagenet", "Linf", 30, 30), ("imagenet", "L2", 0, 0)],
    ids=lambda v: str(v),
)
def test_list_filters(dataset: str, threat_model: str, count: int, with_aa: int) -> None:
    """Per-dataset and per-threat counts match RobustBench 1.1.1's zoo dictionaries."""
    entries = list_entries(dataset, threat_model)
    assert len(entries) == count
    assert sum(e.reported.autoattack_acc is not None for e in entries) == with_aa


def test_external_evaluation_replaces_autoattack() -> None:
    """Where the snapshot has an `external` evaluation, it is the robust accuracy."""
    name = "Amini2024MeanSparse_S-WRN-94-16"
    info = json.loads((MODEL_INFO_DIR / "cifar10" / "Linf" / f"{name}.json").read_text())
    reported = reported_for(name, "cifar10", "Linf")
    assert reported.autoattack_acc == float(info["external"]) != float(info["autoattack_acc"])
    assert reported.aa_source == "external"
    standard = reported_for("Standard", "cifar10", "Linf")
    assert (standard.clean_acc, standard.autoattack_acc,
            standard.aa_source) == (94.78, 0.0, "autoattack_acc")


def test_snapshot_has_provenance_and_every_robustbench_entry() -> None:
    """The snapshot ships its provenance, and every RobustBench zoo entry has a model_info file."""
    assert (MODEL_INFO_DIR / "PROVENANCE.md").read_text().count("78fcc9e") == 1
    missing = [
        e.key
        for e in list_entries()
        if not (MODEL_INFO_DIR / e.dataset / e.threat_model / f"{e.name}.json").is_file()
    ]
    assert missing == []


def test_unknown_model_suggests_close_names(capsys: pytest.CaptureFixture[str]) -> None:
    """A misspelt model name is an error naming the closest zoo entries (exit status 2)."""
    with pytest.raises(UnknownModelError, match="Did you mean Standard"):
        select_entries("cifar10", "Linf", ["Standrd"])
    assert main(["run", "--models", "Wong2020Fst", "--results", "unused"]) == 2
    assert "Did you mean Wong2020Fast" in capsys.readouterr().err


def test_list_marks_present_weights(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint in RobustBench's layout shows as present in its row and in the count."""
    (tmp_path / "cifar10" / "Linf").mkdir(parents=True)
    (tmp_path / "cifar10" / "Linf" / "Standard.pt").touch()
    assert (
        main(["list", "--dataset", "cifar10", "--threat-model", "Linf", "--model-dir",
              str(tmp_path)]) == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    rows = {line.split()[2]: line.split()[-1] for line in lines[1:-1]}
    assert rows["Standard"] == "yes" and list(rows.values()).count("yes") == 1
    assert lines[-1].startswith(
        "76 RobustBench zoo entries, 76 with AutoAttack accuracy, 1 with weights")
