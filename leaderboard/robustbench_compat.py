"""RobustBench 1.1.1 made importable, and an offline loader for its model zoo.

``robustbench==1.1.1`` does not import as published: it imports ``autoattack`` (the PyPI
package is ``pyautoattack``) and ``pkg_resources`` (gone from ``setuptools>=82``, hence the
``setuptools<82`` pin), and its ``torch.load`` calls rely on the pre-2.6 default
``weights_only=False``. :func:`import_robustbench` installs the ``autoattack`` alias, and
:func:`load_zoo_model` mirrors ``robustbench.utils.load_model`` without ever downloading:
checkpoints are read from ``model_dir/<dataset>/<threat_model>/<name>.pt`` (ensembles:
``<name>.pt_m{i}.pt``), RobustBench's own layout, with ``weights_only=False``.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}
# torchvision's ImageNet ResNet-50 (IMAGENET1K_V1), used by imagenet ``Standard_R50``.
_TORCHVISION_R50 = "https://download.pytorch.org/models/resnet50-0676ba61.pth"


class MissingWeightsError(FileNotFoundError):
    """A zoo model's checkpoint is not where the offline loader looks for it."""


class UnknownModelError(KeyError):
    """A model name that is not in RobustBench's zoo for the dataset and threat model."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def import_robustbench() -> ModuleType:
    """Import ``robustbench`` with its packaging problems worked around.

    Returns:
        The ``robustbench`` module.

    Raises:
        ImportError: robustbench or pyautoattack is not installed (with the install command).
    """
    if "robustbench" in sys.modules:
        return sys.modules["robustbench"]
    try:
        pyautoattack = importlib.import_module("pyautoattack")
        state = importlib.import_module("pyautoattack.state")
    except ImportError as exc:
        raise ImportError(
            "The leaderboard needs robustbench==1.1.1 and pyautoattack==0.2.0: "
            'pip install -e ".[leaderboard]"'
        ) from exc
    # robustbench imports fra31's ``autoattack``; PyPI ships the same code as ``pyautoattack``.
    sys.modules.setdefault("autoattack", pyautoattack)
    sys.modules.setdefault("autoattack.state", state)
    with warnings.catch_warnings():
        # pkg_resources and torch.jit deprecation notices raised at import time.
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        try:
            import robustbench
            import robustbench.model_zoo  # noqa: F401  (registers the timm models)
        except ModuleNotFoundError as exc:
            if exc.name == "pkg_resources":
                raise ImportError(
                    "robustbench 1.1.1 needs pkg_resources, removed in setuptools 82: "
                    'pip install "setuptools<82"'
                ) from exc
            raise ImportError(
                f"robustbench could not be imported ({exc}); "
                'pip install -e ".[leaderboard]"'
            ) from exc
    return robustbench


def zoo_entries(dataset: str, threat_model: str) -> dict[str, dict[str, Any]]:
    """RobustBench's zoo dictionary ``name -> {'model', 'gdrive_id', ...}`` for one pair."""
    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    by_threat = model_dicts[BenchmarkDataset(dataset)]
    key = ThreatModel(threat_model)
    return dict(by_threat[key]) if key in by_threat else {}


def zoo_entry(name: str, dataset: str, threat_model: str) -> dict[str, Any]:
    """One zoo entry, or :class:`UnknownModelError` with the closest names."""
    entries = zoo_entries(dataset, threat_model)
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"{name!r} is not in RobustBench's zoo for {dataset}/{threat_model}.{hint} "
            "`python -m leaderboard list` shows the zoo."
        )
    return entries[name]


def timm_name(name: str, dataset: str, threat_model: str) -> str | None:
    """The timm registry name RobustBench loads ``name`` through, or ``None``."""
    import_robustbench()
    import timm

    candidate = f"{name.lower().replace('-', '_')}_{dataset}_{threat_model.lower()}"
    return candidate if timm.is_model(candidate) else None


def checkpoint_paths(name: str, dataset: str, threat_model: str, model_dir: str | Path) -> list[Path]:
    """Files the offline loader reads for a zoo model, in RobustBench's layout.

    ``model_dir/<dataset>/<threat_model>/<name>.pt``, or ``<name>.pt_m{i}.pt`` for each member
    of an ensemble (RobustBench's own naming). ImageNet ``Standard`` models built from
    torchvision read ``<name>.pt`` if present, else torch hub's cache.
    """
    folder = Path(model_dir) / dataset / threat_model
    gdrive_id = zoo_entry(name, dataset, threat_model)["gdrive_id"]
    if isinstance(gdrive_id, list):
        return [folder / f"{name}.pt_m{i}.pt" for i in range(len(gdrive_id))]
    return [folder / f"{name}.pt"]


def weights_present(name: str, dataset: str, threat_model: str, model_dir: str | Path) -> bool:
    """Whether every checkpoint file of the model is under ``model_dir``."""
    paths = checkpoint_paths(name, dataset, threat_model, model_dir)
    if all(p.is_file() for p in paths):
        return True
    return dataset == "imagenet" and name == "Standard_R50" and _hub_file(_TORCHVISION_R50).is_file()


def _hub_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _missing(name: str, dataset: str, threat_model: str, paths: list[Path], source: str) -> MissingWeightsError:
    absent = ", ".join(str(p) for p in paths if not p.is_file())
    return MissingWeightsError(
        f"No weights for {dataset}/{threat_model}/{name}: expected {absent}. "
        f"Download them once where the internet is reachable ({source}) and copy them there; "
        "RobustBench's own `load_model(name, model_dir=...)` writes this layout."
    )


def _torch_load(path: Path) -> Any:
    # Trusted RobustBench checkpoints; some hold numpy scalars or argparse Namespaces.
    return torch.load(path, map_location="cpu", weights_only=False)


def load_zoo_model(name: str, dataset: str, threat_model: str, model_dir: str | Path) -> nn.Module:
    """Build a RobustBench zoo model and load its weights from ``model_dir``, offline.

    Mirrors ``robustbench.utils.load_model`` (1.1.1): the same key clean-up, the same
    per-model special cases, the same tolerant ``load_state_dict``; but it never
    downloads, and it loads with ``weights_only=False``.

    Args:
        name: zoo name, e.g. ``"Standard"``.
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        threat_model: ``"Linf"``, ``"L2"`` or ``"corruptions"``.
        model_dir: root of RobustBench's layout.

    Returns:
        The model in eval mode, on the CPU, taking ``[0, 1]`` inputs.

    Raises:
        UnknownModelError: the name is not in the zoo.
        MissingWeightsError: a checkpoint file is missing.
    """
    entry = zoo_entry(name, dataset, threat_model)
    paths = checkpoint_paths(name, dataset, threat_model, model_dir)
    timm_id = timm_name(name, dataset, threat_model)
    if timm_id is not None:
        return _load_timm(timm_id, name, dataset, threat_model, paths)
    if dataset == "imagenet" and "Standard" in name:
        return _load_imagenet_standard(entry, name, threat_model, paths)
    if entry["gdrive_id"] is None:
        raise ValueError(f"{dataset}/{threat_model}/{name} has neither weights nor a timm entry.")
    if not all(p.is_file() for p in paths):
        raise _missing(name, dataset, threat_model, paths, "Google Drive ids in RobustBench's zoo")
    from robustbench.model_zoo.enums import BenchmarkDataset

    ds = BenchmarkDataset(dataset)
    model = entry["model"]()
    if isinstance(entry["gdrive_id"], list):
        return _load_ensemble(model, name, ds, paths).eval()
    return _load_single(model, name, ds, paths[0]).eval()


def _load_single(model: nn.Module, name: str, ds: Any, path: Path) -> nn.Module:
    from robustbench.utils import (
        _safe_load_state_dict,
        add_substr_to_state_dict,
        rm_substr_from_state_dict,
    )

    checkpoint = _torch_load(path)
    if "Kireev2021Effectiveness" in name or name == "Andriushchenko2020Understanding":
        checkpoint = checkpoint["last"]
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]  # e.g. Carmon2019Unlabeled
    state_dict = rm_substr_from_state_dict(checkpoint, "module.")
    state_dict = rm_substr_from_state_dict(state_dict, "model.")  # e.g. Chen2020Efficient
    if ds.value == "imagenet":
        if name in _SWIN_FILTERED:
            try:
                from timm.models.swin_transformer import checkpoint_filter_fn

                state_dict = checkpoint_filter_fn(state_dict, model.model)
            except Exception:  # noqa: BLE001  (RobustBench ignores a failed filter too)
                logger.debug("Swin checkpoint filter did not apply to %s", name)
        if name not in _IMAGENET_NO_PREFIX:
            state_dict = add_substr_to_state_dict(state_dict, "model.")
    return _safe_load_state_dict(model, name, state_dict, ds)


def _load_ensemble(model: nn.Module, name: str, ds: Any, paths: list[Path]) -> nn.Module:
    from robustbench.utils import _safe_load_state_dict, add_substr_to_state_dict, rm_substr_from_state_dict

    for i, path in enumerate(paths):
        checkpoint = _torch_load(path)
        if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
            checkpoint = checkpoint["state_dict"]
        state_dict = rm_substr_from_state_dict(checkpoint, "module.")
        if name.startswith("Bai2023Improving"):
            comp = model.comp_model
            if i < 2:
                comp.models[i] = _safe_load_state_dict(comp.models[i], name, state_dict, ds).eval()
            else:
                comp.policy_net = _safe_load_state_dict(comp.policy_net, name, state_dict["model"], ds)
                comp.bn = _safe_load_state_dict(comp.bn, name, state_dict["bn"], ds)
        elif name.startswith("Bai2024MixedNUTS"):
            if i == 0:
                model.std_model = _safe_load_state_dict(model.std_model, name, state_dict, ds)
            elif i == 1:
                if ds.value == "imagenet":
                    from timm.models.swin_transformer import checkpoint_filter_fn

                    state_dict = checkpoint_filter_fn(state_dict, model.rob_model.model)
                    state_dict = add_substr_to_state_dict(state_dict, "model.")
                model.rob_model = _safe_load_state_dict(model.rob_model, name, state_dict, ds)
            else:
                raise ValueError(f"{name} has two checkpoints, found a third: {path}")
        else:
            model.models[i] = _safe_load_state_dict(model.models[i], name, state_dict, ds).eval()
    return model


def _load_timm(timm_id: str, name: str, dataset: str, threat_model: str, paths: list[Path]) -> nn.Module:
    """timm-registered zoo models (XCiT, DeiT, AlexNet): weights from ``<name>.pt``."""
    import timm

    if not paths[0].is_file():
        url = timm.models.get_pretrained_cfg(timm_id).url  # type: ignore[union-attr]
        raise _missing(name, dataset, threat_model, paths, url or f"timm model {timm_id}")
    return timm.create_model(
        timm_id,
        num_classes=NUM_CLASSES[dataset],
        pretrained=True,
        pretrained_cfg_overlay={"file": str(paths[0])},
    ).eval()


def _load_imagenet_standard(entry: dict[str, Any], name: str, threat_model: str, paths: list[Path]) -> nn.Module:
    """ImageNet ``Standard_R50``: torchvision's ResNet-50 weights, from ``model_dir`` or hub's cache."""
    if name != "Standard_R50":
        return entry["model"]().eval()
    from robustbench.model_zoo.architectures.utils_architectures import normalize_model
    from robustbench.model_zoo.imagenet import mu, sigma
    from torchvision.models import resnet50

    model = normalize_model(resnet50(weights=None), mu, sigma)
    source = paths[0] if paths[0].is_file() else _hub_file(_TORCHVISION_R50)
    if not source.is_file():
        raise _missing(name, "imagenet", threat_model, paths, _TORCHVISION_R50)
    state_dict = _torch_load(source)
    if not any(k.startswith("model.") for k in state_dict):
        state_dict = {f"model.{k}": v for k, v in state_dict.items()}
    state_dict.setdefault("normalize.mean", model.normalize.mean)
    state_dict.setdefault("normalize.std", model.normalize.std)
    model.load_state_dict(state_dict)
    return model.eval()


_SWIN_FILTERED = frozenset(
    {
        "Liu2023Comprehensive_Swin-B",
        "Liu2023Comprehensive_Swin-L",
        "Mo2022When_Swin-B",
        "RodriguezMunoz2024Characterizing_Swin-B",
        "RodriguezMunoz2024Characterizing_Swin-L",
    }
)
_IMAGENET_NO_PREFIX = frozenset(
    {
        "Singh2023Revisiting_ConvNeXt-T-ConvStem",
        "Singh2023Revisiting_ViT-B-ConvStem",
        "Singh2023Revisiting_ConvNeXt-S-ConvStem",
        "Singh2023Revisiting_ConvNeXt-B-ConvStem",
        "Singh2023Revisiting_ConvNeXt-L-ConvStem",
        "Peng2023Robust",
        "Chen2024Data_WRN_50_2",
        "Xu2024MIMIR_Swin-B",
        "Xu2024MIMIR_Swin-L",
    }
)
