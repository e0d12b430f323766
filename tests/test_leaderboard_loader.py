"""The offline RobustBench loader: the import shim, weights_only, ensembles, timm, missing files."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import torch
from leaderboard_cases import require_robustbench, save_random_checkpoint

require_robustbench()

from leaderboard.robustbench_compat import (  # noqa: E402
    MissingWeightsError,
    checkpoint_paths,
    load_zoo_model,
    timm_name,
    weights_present,
    zoo_entry,
)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_autoattack_alias_points_to_pyautoattack() -> None:
    """robustbench imports `autoattack`; the shim maps it to the PyPI package pyautoattack."""
    import pyautoattack

    assert sys.modules["autoattack"] is pyautoattack
    assert "robustbench.eval" in sys.modules


def test_wrapped_checkpoint_needs_weights_only_false(tmp_path: Path) -> None:
    """A {'state_dict': {'module.*'}, 'epoch': numpy scalar} checkpoint loads to the saved weights.

    torch's default `weights_only=True` refuses it, which is why the loader passes False.
    """
    saved = save_random_checkpoint("Wong2020Fast", "cifar10", "Linf", tmp_path, seed=3, wrap=True)
    path = tmp_path / "cifar10" / "Linf" / "Wong2020Fast.pt"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu")
    loaded = load_zoo_model("Wong2020Fast", "cifar10", "Linf", tmp_path)
    assert _same_weights(saved, loaded) and not loaded.training


def test_ensemble_members_from_pt_m_files(tmp_path: Path) -> None:
    """An ensemble reads <name>.pt_m{i}.pt per member; a missing member names its file."""
    name = "Chen2020Adversarial"  # three ResNet-50s
    paths = checkpoint_paths(name, "cifar10", "Linf", tmp_path)
    assert [p.name for p in paths] == [f"{name}.pt_m{i}.pt" for i in range(3)]
    torch.manual_seed(0)
    reference = zoo_entry(name, "cifar10", "Linf")["model"]()
    paths[0].parent.mkdir(parents=True)
    for member, path in zip(reference.models, paths):
        torch.save(member.state_dict(), path)
    assert weights_present(name, "cifar10", "Linf", tmp_path)
    assert _same_weights(reference, load_zoo_model(name, "cifar10", "Linf", tmp_path))
    paths[2].unlink()
    assert not weights_present(name, "cifar10", "Linf", tmp_path)
    with pytest.raises(MissingWeightsError, match=r"Chen2020Adversarial\.pt_m2\.pt"):
        load_zoo_model(name, "cifar10", "Linf", tmp_path)


def test_timm_registered_model_from_model_dir(tmp_path: Path) -> None:
    """XCiT entries (timm registry) load <name>.pt from --model-dir instead of downloading."""
    import timm

    name = "Debenedetti2022Light_XCiT-S12"
    timm_id = timm_name(name, "cifar10", "Linf")
    assert timm_id == "debenedetti2022light_xcit_s12_cifar10_linf"
    with pytest.raises(MissingWeightsError, match="releases/download"):
        load_zoo_model(name, "cifar10", "Linf", tmp_path)
    torch.manual_seed(0)
    reference = timm.create_model(timm_id, pretrained=False, num_classes=10)
    path = checkpoint_paths(name, "cifar10", "Linf", tmp_path)[0]
    path.parent.mkdir(parents=True)
    torch.save(reference.model.state_dict(), path)  # the release file holds the unnormalised net
    assert _same_weights(reference, load_zoo_model(name, "cifar10", "Linf", tmp_path))


def test_missing_weights_say_where_and_how(tmp_path: Path) -> None:
    """A model without its file is an error naming the expected path and how to get it."""
    with pytest.raises(MissingWeightsError, match=r"cifar10/Linf/Standard\.pt.*load_model"):
        load_zoo_model("Standard", "cifar10", "Linf", tmp_path)
