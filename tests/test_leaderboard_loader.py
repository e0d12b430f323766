"""The offline RobustBench loader: the import shim, weights-only loading, ensembles, timm, missing
files.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from leaderboard_cases import require_robustbench, save_random_checkpoint

require_robustbench()

from leaderboard.robustbench_compat import (  # noqa: E402
    MissingWeightsError,
    UnreadableCheckpointError,
    UnsafeCheckpointError,
    checkpoint_paths,
    load_robustbench_model,
    robustbench_entry,
    timm_name,
    weights_present,
)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_autoattack_alias_points_to_pyautoattack() -> None:
    """robustbench imports `autoattack`; the shim maps it to the PyPI package pyautoattack."""
    import pyautoattack

    assert sys.modules["autoattack"] is pyautoattack
    assert "robustbench.eval" in sys.modules


def test_training_checkpoint_loads_weights_only_with_its_hash(tmp_path: Path) -> None:
    """{'state_dict': {'module.*'}, 'epoch': np.int64, 'best_acc': np.float64, 'args': Namespace}
    loads to the saved weights under weights_only=True, and its SHA-256 is recorded.

    torch's own weights_only=True refuses that file: the loader admits exactly those types.
    """
    saved = save_random_checkpoint("Wong2020Fast", "cifar10", "Linf", tmp_path, seed=3, wrap=True)
    path = tmp_path / "cifar10" / "Linf" / "Wong2020Fast.pt"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu", weights_only=True)
    loaded = load_robustbench_model("Wong2020Fast", "cifar10", "Linf", tmp_path)
    assert _same_weights(saved, loaded.model) and not loaded.model.training and not loaded.trusted
    [checkpoint] = loaded.checkpoints
    assert (checkpoint.file, checkpoint.sha256, checkpoint.size) == (
        "cifar10/Linf/Wong2020Fast.pt", _sha256(path), path.stat().st_size)


# torch notes protocol 5 before refusing.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("container", ["pickle protocol 2", "pickle protocol 5", "torch.save zip"])
def test_planted_payload_does_not_run(tmp_path: Path, container: str) -> None:
    """A pickle payload as a checkpoint is refused, naming its global and the opt-in; never run."""
    marker = tmp_path / "payload-ran"
    path = checkpoint_paths("Standard", "cifar10", "Linf", tmp_path)[0]
    path.parent.mkdir(parents=True)
    if container == "torch.save zip":
        torch.save({"state_dict": {"w": torch.zeros(1)}, "note": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker), protocol=int(container[-1])))
    with pytest.raises(
        UnsafeCheckpointError, match=rf"needs {os.system.__module__}\.system.*--trust-checkpoints"
    ):
        load_robustbench_model("Standard", "cifar10", "Linf", tmp_path)
    assert not marker.exists()


def test_numpy_1_scalars_load_weights_only(tmp_path: Path) -> None:
    """Checkpoints pickled under numpy 1.x name `numpy.core.multiarray.scalar`: admitted too."""
    torch.manual_seed(0)
    model = robustbench_entry("Wong2020Fast", "cifar10", "Linf")["model"]().eval()
    path = checkpoint_paths("Wong2020Fast", "cifar10", "Linf", tmp_path)[0]
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": model.state_dict(), "epoch": np.int64(30)}, path,
               _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    # The GLOBAL opcode, as numpy 2 writes it.
    assert data.count(b"numpy._core.multiarray\nscalar") == 1
    path.write_bytes(data.replace(b"numpy._core.multiarray\nscalar",
                                  b"numpy.core.multiarray\nscalar"))
    assert _same_weights(model, load_robustbench_model("Wong2020Fast", "cifar10", "Linf",
                                                       tmp_path).model)


def test_other_objects_need_the_explicit_opt_in(tmp_path: Path) -> None:
    """A benign object outside the allowlist is refused by name; trust_checkpoints=True loads it."""
    torch.manual_seed(0)
    model = robustbench_entry("Wong2020Fast", "cifar10", "Linf")["model"]().eval()
    path = checkpoint_paths("Wong2020Fast", "cifar10", "Linf", tmp_path)[0]
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": model.state_dict(), "lr": Fraction(1, 10)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"needs fractions\.Fraction, which a "
                       r"weights-only load"):
        load_robustbench_model("Wong2020Fast", "cifar10", "Linf", tmp_path)
    trusted = load_robustbench_model("Wong2020Fast", "cifar10", "Linf", tmp_path,
                                     trust_checkpoints=True)
    assert _same_weights(model, trusted.model) and trusted.trusted
    assert trusted.checkpoints[0].sha256 == _sha256(path)


def test_html_page_is_named_as_a_failed_download(tmp_path: Path) -> None:
    """Google Drive's HTML page saved as the checkpoint (RobustBench #81, #158) gets its own
    message.
    """
    path = checkpoint_paths("Standard", "cifar10", "Linf", tmp_path)[0]
    path.parent.mkdir(parents=True)
    path.write_text("<!DOCTYPE html><html><head><title>Google Drive</title></head></html>")
    with pytest.raises(UnreadableCheckpointError, match="HTML page.*download the weights again"):
        load_robustbench_model("Standard", "cifar10", "Linf", tmp_path)


@pytest.mark.parametrize("kept", [0.05, 0.5, 0.99])
def test_truncated_checkpoint_is_named(tmp_path: Path, kept: float) -> None:
    """A checkpoint cut short (an interrupted download) raises an error naming the file and its
    size.
    """
    save_random_checkpoint("Wong2020Fast", "cifar10", "Linf", tmp_path)
    path = checkpoint_paths("Wong2020Fast", "cifar10", "Linf", tmp_path)[0]
    path.write_bytes(path.read_bytes()[: int(kept * path.stat().st_size)])
    with pytest.raises(UnreadableCheckpointError, match=rf"{path} \({path.stat().st_size} bytes\) "
                       r"could not be read.*truncated"):
        load_robustbench_model("Wong2020Fast", "cifar10", "Linf", tmp_path)


def test_last_checkpoint_of_kireev_and_andriushchenko(tmp_path: Path) -> None:
    """{'last': state dict, 'best': state dict} files load their 'last' model, weights only."""
    name = "Kireev2021Effectiveness_RLATAugMix"  # cifar10 corruptions, a PreAct ResNet-18
    torch.manual_seed(0)
    last, best = (robustbench_entry(name, "cifar10", "corruptions")["model"]() for _ in range(2))
    path = checkpoint_paths(name, "cifar10", "corruptions", tmp_path)[0]
    path.parent.mkdir(parents=True)
    torch.save({"last": last.state_dict(), "best": best.state_dict(), "epoch": np.int64(150)}, path)
    assert _same_weights(last, load_robustbench_model(name, "cifar10", "corruptions",
                                                      tmp_path).model)


def test_ensemble_members_from_pt_m_files(tmp_path: Path) -> None:
    """An ensemble reads <name>.pt_m{i}.pt per member, hashing each; a missing member names its
    file.
    """
    name = "Chen2020Adversarial"  # three ResNet-50s
    paths = checkpoint_paths(name, "cifar10", "Linf", tmp_path)
    assert [p.name for p in paths] == [f"{name}.pt_m{i}.pt" for i in range(3)]
    torch.manual_seed(0)
    reference = robustbench_entry(name, "cifar10", "Linf")["model"]()
    paths[0].parent.mkdir(parents=True)
    for member, path in zip(reference.models, paths):
        torch.save(member.state_dict(), path)
    assert weights_present(name, "cifar10", "Linf", tmp_path)
    loaded = load_robustbench_model(name, "cifar10", "Linf", tmp_path)
    assert _same_weights(reference, loaded.model)
    assert [c.sha256 for c in loaded.checkpoints] == [_sha256(p) for p in paths]
    paths[2].unlink()
    assert not weights_present(name, "cifar10", "Linf", tmp_path)
    with pytest.raises(MissingWeightsError, match=r"Chen2020Adversarial\.pt_m2\.pt"):
        load_robustbench_model(name, "cifar10", "Linf", tmp_path)


def test_timm_registered_model_from_a_training_checkpoint(tmp_path: Path) -> None:
    """XCiT entries (timm registry) load <name>.pt from --model-dir, weights only, never
    downloading.

    The release files are timm training checkpoints: the EMA weights are taken when present,
    as timm does, and the training arguments (an argparse.Namespace) are admitted.
    """
    import timm

    name = "Debenedetti2022Light_XCiT-S12"
    timm_id = timm_name(name, "cifar10", "Linf")
    assert timm_id == "debenedetti2022light_xcit_s12_cifar10_linf"
    with pytest.raises(MissingWeightsError, match="releases/download"):
        load_robustbench_model(name, "cifar10", "Linf", tmp_path)
    torch.manual_seed(0)
    ema, raw = (timm.create_model(timm_id, pretrained=False, num_classes=10) for _ in range(2))
    path = checkpoint_paths(name, "cifar10", "Linf", tmp_path)[0]
    path.parent.mkdir(parents=True)
    # The release file holds the unnormalised net (`.model`), as timm's checkpoint saver wrote it.
    torch.save({"state_dict": raw.model.state_dict(), "state_dict_ema": ema.model.state_dict(),
                "epoch": 110,
                "metric": np.float64(0.9), "args": argparse.Namespace(model="xcit_s12", lr=1e-3)},
                path)
    loaded = load_robustbench_model(name, "cifar10", "Linf", tmp_path)
    assert _same_weights(ema, loaded.model) and not loaded.model.training
    assert "state_dict" not in loaded.model.model.pretrained_cfg  # the config does not keep a copy


def test_imagenet_paths(tmp_path: Path) -> None:
    """ImageNet: a timm-built zoo model gets its 'model.' prefix; Standard_R50 reads torchvision's
    file.
    """
    torch.manual_seed(0)
    r18 = robustbench_entry("Salman2020Do_R18", "imagenet", "Linf")["model"]()
    path = checkpoint_paths("Salman2020Do_R18", "imagenet", "Linf", tmp_path)[0]
    path.parent.mkdir(parents=True)
    torch.save({k.removeprefix("model."): v for k, v in r18.state_dict().items()
                if k.startswith("model.")}, path)
    assert _same_weights(r18, load_robustbench_model("Salman2020Do_R18", "imagenet", "Linf",
                                                     tmp_path).model)

    from torchvision.models import resnet50

    torch.manual_seed(1)
    tv = resnet50(weights=None)
    torch.save(tv.state_dict(), path.parent / "Standard_R50.pt")
    loaded = load_robustbench_model("Standard_R50", "imagenet", "Linf", tmp_path)
    assert (
        _same_weights(tv, loaded.model.model) and loaded.checkpoints[0].file
        == "imagenet/Linf/Standard_R50.pt"
    )


def test_missing_weights_say_where_and_how(tmp_path: Path) -> None:
    """A model without its file is an error naming the expected path and how to get it."""
    with pytest.raises(MissingWeightsError, match=r"cifar10/Linf/Standard\.pt.*load_model"):
        load_robustbench_model("Standard", "cifar10", "Linf", tmp_path)
