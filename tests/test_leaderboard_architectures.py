"""Every architecture in RobustBench's zoo: its genuine state dict loads under weights_only=True.

Each zoo entry is built from RobustBench's own constructor (on the meta device, so that even
the 500M-parameter ones cost no memory; on the CPU where a constructor computes with its
weights), and its state dict is saved with ``torch.save`` and read back by the loader's
weights-only reader. A state dict holding anything but tensors (an ``_extra_state``, a tensor
subclass) would be refused, and a genuine checkpoint of that architecture with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from leaderboard_cases import require_robustbench

require_robustbench()

from leaderboard.registry import list_entries  # noqa: E402
from leaderboard.robustbench_compat import (  # noqa: E402
    NUM_CLASSES,
    read_checkpoint,
    robustbench_entry,
    timm_name,
)

ENTRIES = list_entries()


def _build(name: str, dataset: str, threat_model: str) -> torch.nn.Module:
    timm_id = timm_name(name, dataset, threat_model)
    if timm_id is not None:
        import timm

        return timm.create_model(timm_id, pretrained=False, num_classes=NUM_CLASSES[dataset])
    # RobustBench's constructor downloads; ours does not.
    if dataset == "imagenet" and name == "Standard_R50":
        from torchvision.models import resnet50

        return resnet50(weights=None)
    return robustbench_entry(name, dataset, threat_model)["model"]()


def _state_dict_on_meta(name: str, dataset: str, threat_model: str) -> dict[str, torch.Tensor]:
    try:
        with torch.device("meta"):
            return _build(name, dataset, threat_model).state_dict()
    except (RuntimeError, NotImplementedError):  # the constructor reads values (.item(), copies)
        if name.startswith("Bai2023Improving") and not torch.cuda.is_available():
            pytest.skip("RobustBench builds this composite model on CUDA only")
        return {k: v.to("meta") for k, v in _build(name, dataset,
                                                   threat_model).state_dict().items()}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("architectures")


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.key for e in ENTRIES])
def test_state_dict_loads_weights_only(entry, folder: Path) -> None:
    """The entry's state dict is tensors only and reads back weights-only with the same keys,
    shapes, dtypes.
    """
    state = _state_dict_on_meta(entry.name, entry.dataset, entry.threat_model)
    assert state and all(type(v) is torch.Tensor for v in state.values()), entry.key
    path = folder / f"{entry.dataset}-{entry.threat_model}-{entry.name}.pt"
    torch.save(state, path)
    loaded, record = read_checkpoint(path)
    assert list(loaded) == list(state)
    assert all((loaded[k].shape, loaded[k].dtype) == (v.shape, v.dtype) for k, v in state.items())
    assert record.size == path.stat().st_size
