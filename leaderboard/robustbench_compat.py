"""RobustBench 1.1.1 made importable, and a safe offline loader for its model zoo.

``robustbench==1.1.1`` does not import as published: it imports ``autoattack`` (the PyPI
package is ``pyautoattack``) and ``pkg_resources`` (gone from ``setuptools>=82``, hence the
``setuptools<82`` pin), and its ``torch.load`` calls unpickle whatever a checkpoint holds.
:func:`import_robustbench` installs the ``autoattack`` alias, and :func:`load_robustbench_model`
mirrors ``robustbench.utils.load_model`` without ever downloading: checkpoints are read from
``model_dir/<dataset>/<threat_model>/<name>.pt`` (ensembles: ``<name>.pt_m{i}.pt``),
RobustBench's own layout.

Checkpoints are files from third parties, so they are loaded with ``weights_only=True``:
tensors and containers, plus only the non-tensor types RobustBench's checkpoints hold
(:data:`CHECKPOINT_GLOBALS`). A file that needs anything else is refused with
:class:`UnsafeCheckpointError` naming what it needs, before any of it runs;
``trust_checkpoints=True`` (``--trust-checkpoints``) unpickles it in full, running any code
it contains. Each file's SHA-256 is computed from the bytes that are loaded.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import importlib
import logging
import pickle
import pickletools
import re
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from leaderboard.errors import UnknownModelError

logger = logging.getLogger(__name__)

NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}
# torchvision's ImageNet ResNet-50 (IMAGENET1K_V1), used by imagenet ``Standard_R50``.
_TORCHVISION_R50 = "https://download.pytorch.org/models/resnet50-0676ba61.pth"


class MissingWeightsError(FileNotFoundError):
    """A zoo model's checkpoint is not where the offline loader looks for it."""


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs Python objects that a weights-only load does not build."""


class UnreadableCheckpointError(pickle.UnpicklingError):
    """A checkpoint file that is not a checkpoint.

    For example an HTML page from a failed download, or a truncated file.
    """


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
            import robustbench.model_zoo  # registers the timm models
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


def robustbench_entries(dataset: str, threat_model: str) -> dict[str, dict[str, Any]]:
    """RobustBench's zoo dictionary ``name -> {'model', 'gdrive_id', ...}`` for one pair."""
    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    by_threat = model_dicts[BenchmarkDataset(dataset)]
    key = ThreatModel(threat_model)
    return dict(by_threat[key]) if key in by_threat else {}


def robustbench_entry(name: str, dataset: str, threat_model: str) -> dict[str, Any]:
    """One RobustBench zoo entry, or :class:`UnknownModelError` with the closest names."""
    entries = robustbench_entries(dataset, threat_model)
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


def checkpoint_paths(name: str, dataset: str, threat_model: str,
                     model_dir: str | Path) -> list[Path]:
    """Files the offline loader reads for a zoo model, in RobustBench's layout.

    ``model_dir/<dataset>/<threat_model>/<name>.pt``, or ``<name>.pt_m{i}.pt`` for each member
    of an ensemble (RobustBench's own naming). ImageNet ``Standard`` models built from
    torchvision read ``<name>.pt`` if present, else torch hub's cache.
    """
    folder = Path(model_dir) / dataset / threat_model
    gdrive_id = robustbench_entry(name, dataset, threat_model)["gdrive_id"]
    if isinstance(gdrive_id, list):
        return [folder / f"{name}.pt_m{i}.pt" for i in range(len(gdrive_id))]
    return [folder / f"{name}.pt"]


def weights_present(name: str, dataset: str, threat_model: str, model_dir: str | Path) -> bool:
    """Whether every checkpoint file of the model is under ``model_dir``."""
    paths = checkpoint_paths(name, dataset, threat_model, model_dir)
    if all(p.is_file() for p in paths):
        return True
    return (
        dataset == "imagenet" and name == "Standard_R50" and _hub_file(_TORCHVISION_R50).is_file()
    )


def _hub_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _missing(name: str, dataset: str, threat_model: str, paths: list[Path],
             source: str) -> MissingWeightsError:
    absent = ", ".join(str(p) for p in paths if not p.is_file())
    return MissingWeightsError(
        f"No weights for {dataset}/{threat_model}/{name}: expected {absent}. "
        f"Download them once where the internet is reachable ({source}) and copy them there; "
        "RobustBench's own `load_model(name, model_dir=...)` writes this layout."
    )


try:  # numpy 2 names its core ``numpy._core``; pickles made with numpy 1.x say ``numpy.core``
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:  # pragma: no cover  (numpy 1.x without the ``numpy._core`` alias)
    from numpy.core.multiarray import scalar as _numpy_scalar

#: The non-tensor types RobustBench's checkpoints hold, by the name a pickle refers to them.
#: The loader paths (``robustbench.utils.load_model``) read plain state dicts and training
#: checkpoints: ``{'state_dict': ...}`` (Carmon2019Unlabeled and others), ``{'last': ...,
#: 'best': ...}`` (Kireev2021Effectiveness_*, Andriushchenko2020Understanding), ``{'model': ...,
#: 'bn': ...}`` (the Bai2023Improving policy network), and, for the timm-registered entries,
#: timm's training checkpoints (the XCiT ``.pth.tar`` releases: ``state_dict``,
#: ``state_dict_ema``, ``optimizer``, ``epoch``, ``metric``, ``args``). Besides tensors and
#: containers these carry numpy scalars (epochs and accuracies logged as ``np.int64`` or
#: ``np.float64``: the scalar constructor, ``np.dtype`` and the numeric dtype classes) and the
#: training script's ``argparse.Namespace``. The zoo's model definitions add nothing: their
#: state dicts hold tensors only (none defines ``get_extra_state``).
_SCALAR_DTYPES = tuple(
    type(np.dtype(t))  # numpy >= 1.25 gives each dtype its own class, which the unpickler builds
    for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
              np.uint64,
              np.float16, np.float32, np.float64)
)
CHECKPOINT_GLOBALS: tuple[tuple[Any, str], ...] = (
    (_numpy_scalar, "numpy.core.multiarray.scalar"),  # numpy 1.x pickles
    (_numpy_scalar, "numpy._core.multiarray.scalar"),  # numpy 2.x pickles
    (np.dtype, "numpy.dtype"),
    *((cls, f"{cls.__module__}.{cls.__qualname__}") for cls in _SCALAR_DTYPES),
    (argparse.Namespace, "argparse.Namespace"),
)
_TORCH_MESSAGE = re.compile(r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)",
                            re.S)


@dataclass(frozen=True)
class CheckpointFile:
    """One checkpoint file as it was loaded.

    Attributes:
        file: its path, relative to ``model_dir`` where it lies below it.
        sha256: SHA-256 of the bytes loaded.
        size: its size in bytes.
    """

    file: str
    sha256: str
    size: int


@dataclass(frozen=True)
class LoadedModel:
    """A zoo model with the checkpoint files it was built from.

    Attributes:
        model: the model in eval mode, on the CPU, taking ``[0, 1]`` inputs.
        checkpoints: the files read, in order (empty for models built without weights files).
        trusted: whether the files were unpickled in full (``trust_checkpoints=True``).
    """

    model: nn.Module
    checkpoints: tuple[CheckpointFile, ...]
    trusted: bool


def read_checkpoint(
    path: Path, *, trust_checkpoints: bool = False, model_dir: Path | None = None
) -> tuple[Any, CheckpointFile]:
    """``torch.load`` of one checkpoint on the CPU, weights-only unless trusted, with its SHA-256.

    Args:
        path: the file.
        trust_checkpoints: unpickle it in full (``weights_only=False``), running any code it holds.
        model_dir: name the file relative to this folder in the returned record.

    Returns:
        The loaded object and the :class:`CheckpointFile` of the bytes loaded.

    Raises:
        UnsafeCheckpointError: the file needs objects outside :data:`CHECKPOINT_GLOBALS`.
        UnreadableCheckpointError: the file is not a checkpoint, or is truncated or corrupt (naming
            it).
    """
    with path.open("rb") as fh:
        # Hash and load the same open file, so the hash is of the bytes that were loaded.
        digest = hashlib.sha256()
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
        record = CheckpointFile(_relative_name(path, model_dir), digest.hexdigest(), fh.tell())
        fh.seek(0)
        try:
            if trust_checkpoints:
                return torch.load(fh, map_location="cpu", weights_only=False), record
            with torch.serialization.safe_globals(list(CHECKPOINT_GLOBALS)):
                try:
                    return torch.load(fh, map_location="cpu", weights_only=True), record
                except pickle.UnpicklingError as exc:
                    raise _refusal(path, fh, exc) from None
        except (UnsafeCheckpointError, UnreadableCheckpointError):
            raise
        except (RuntimeError, OSError, EOFError, ValueError) as exc:
            raise UnreadableCheckpointError(corrupt_checkpoint_message(path, record.size,
                                                                       exc)) from exc


def corrupt_checkpoint_message(path: Path, size: int, exc: BaseException) -> str:
    """What to say about a checkpoint that could not be read: which file, how large, what failed."""
    reason = " ".join(str(exc).split())[:200] or "the file ends early"
    return (f"{path} ({size} bytes) could not be read: {type(exc).__name__}: {reason}. The file is "
            "probably truncated or corrupt (an interrupted download or copy): download it again.")


def _relative_name(path: Path, model_dir: Path | None) -> str:
    if model_dir is not None:
        try:
            return path.resolve().relative_to(model_dir.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


@dataclass
class _CheckpointReader:
    """Reads a model's checkpoint files (:func:`read_checkpoint`) and keeps their records."""

    model_dir: Path
    trusted: bool = False
    files: list[CheckpointFile] = field(default_factory=list)

    def load(self, path: Path) -> Any:
        """The loaded object of ``path`` (see :func:`read_checkpoint`)."""
        checkpoint, record = read_checkpoint(path, trust_checkpoints=self.trusted,
                                             model_dir=self.model_dir)
        self.files.append(record)
        return checkpoint


def _refusal(path: Path, fh: IO[bytes], exc: pickle.UnpicklingError) -> pickle.UnpicklingError:
    """The error for a checkpoint that a weights-only load refused, naming what it needs."""
    fh.seek(0)
    needed = disallowed_globals(fh)
    if needed:
        return UnsafeCheckpointError(
            f"{path} was not loaded: it needs {', '.join(needed)}, which a weights-only load does "
            "not allow (RobustBench checkpoints need only tensors, numpy scalars and "
            "argparse.Namespace); nothing in the file was run. If you trust this file, "
            "--trust-checkpoints (trust_checkpoints=True) loads it with weights_only=False, which "
            "runs any code the file contains."
        )
    fh.seek(0)
    html = fh.read(64).lstrip().startswith(b"<")
    match = _TORCH_MESSAGE.search(str(exc))
    reason = " ".join((match.group(1) if match else str(exc)).split())
    hint = (
        " It is an HTML page, which a failed Google Drive download leaves under the checkpoint's "
        "name: delete it and download the weights again."
        if html
        else " If you trust this file, --trust-checkpoints (trust_checkpoints=True) loads it with "
        "weights_only=False, which runs any code the file contains."
    )
    return UnreadableCheckpointError(f"{path} is not a checkpoint a weights-only load can read "
                                     f"({reason}).{hint}")


def disallowed_globals(fh: IO[bytes]) -> list[str]:
    """Python objects a checkpoint's pickle refers to that a weights-only load would refuse.

    The pickle is disassembled (:mod:`pickletools`), never run: torch's zip format is read
    through its ``data.pkl``; anything else (torch's legacy format, a plain pickle) as a
    sequence of pickles from the start of the file.

    Args:
        fh: the checkpoint file, opened in binary mode at its start.

    Returns:
        Sorted ``module.name`` strings outside torch's own allowlist and :data:`CHECKPOINT_GLOBALS`.
    """
    if zipfile.is_zipfile(fh):
        fh.seek(0)
        with zipfile.ZipFile(fh) as archive:
            records = sorted((n for n in archive.namelist() if n.endswith("data.pkl")), key=len)
            found = _pickle_globals(archive.open(records[0])) if records else set()
    else:
        fh.seek(0)
        found = _pickle_globals(fh)
    # torch has no public list of what weights_only builds by itself; its private one only
    # keeps torch's own tensor machinery out of the message (an empty set would list it too).
    from torch import _weights_only_unpickler

    allowed = set(getattr(_weights_only_unpickler, "_get_allowed_globals", dict)())
    allowed |= {name for _, name in CHECKPOINT_GLOBALS}
    return sorted(found - allowed)


def _pickle_globals(stream: IO[bytes], max_pickles: int = 8) -> set[str]:
    """``module.name`` of every GLOBAL / STACK_GLOBAL / INST.

    Read from the consecutive pickles of ``stream``.
    """
    found: set[str] = set()
    for _ in range(max_pickles):
        strings: list[str] = []  # strings pushed so far: STACK_GLOBAL takes the last two
        memo: dict[int, str | None] = {}
        top: str | None = None  # the string the previous opcode pushed, if it pushed one
        try:
            for opcode, arg, _pos in pickletools.genops(stream):
                name, pushed = opcode.name, None
                if name in ("GLOBAL", "INST"):
                    found.add(arg.replace(" ", "."))
                elif name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.add(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str) and ("UNICODE" in name or "STRING" in name):
                    pushed = arg
                elif name == "MEMOIZE":
                    memo[len(memo)] = pushed = top
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(arg)] = pushed = top
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    pushed = memo.get(int(arg))
                if pushed is not None and name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                    strings.append(pushed)
                top = pushed
        except Exception:  # the end of the pickles, or bytes that are not one
            break
    return found


def load_robustbench_model(
    name: str, dataset: str, threat_model: str, model_dir: str | Path, *,
    trust_checkpoints: bool = False
) -> LoadedModel:
    """Build a RobustBench zoo model and load its weights from ``model_dir``, offline and safely.

    Mirrors ``robustbench.utils.load_model`` (1.1.1): the same key clean-up, the same
    per-model special cases, the same tolerant ``load_state_dict``; but it never downloads,
    and it loads with ``weights_only=True`` (see :data:`CHECKPOINT_GLOBALS`).

    Args:
        name: zoo name, e.g. ``"Standard"``.
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        threat_model: ``"Linf"``, ``"L2"`` or ``"corruptions"``.
        model_dir: root of RobustBench's layout.
        trust_checkpoints: unpickle the files in full (``weights_only=False``), which runs any
            code they contain. Only for files you trust.

    Returns:
        The :class:`LoadedModel`: the model and the SHA-256 of every file read.

    Raises:
        UnknownModelError: the name is not in the zoo.
        MissingWeightsError: a checkpoint file is missing.
        UnsafeCheckpointError: a file needs objects a weights-only load refuses.
        UnreadableCheckpointError: a file is not a checkpoint.
    """
    reader = _CheckpointReader(Path(model_dir), trusted=trust_checkpoints)
    model = _build(name, dataset, threat_model, Path(model_dir), reader)
    return LoadedModel(model, tuple(reader.files), trust_checkpoints)


def _build(name: str, dataset: str, threat_model: str, model_dir: Path,
           reader: _CheckpointReader) -> nn.Module:
    entry = robustbench_entry(name, dataset, threat_model)
    paths = checkpoint_paths(name, dataset, threat_model, model_dir)
    timm_id = timm_name(name, dataset, threat_model)
    if timm_id is not None:
        return _load_timm(timm_id, name, dataset, threat_model, paths, reader)
    if dataset == "imagenet" and "Standard" in name:
        return _load_imagenet_standard(entry, name, threat_model, paths, reader)
    if entry["gdrive_id"] is None:
        raise ValueError(f"{dataset}/{threat_model}/{name} has neither weights nor a timm entry.")
    if not all(p.is_file() for p in paths):
        raise _missing(name, dataset, threat_model, paths, "Google Drive ids in RobustBench's zoo")
    from robustbench.model_zoo.enums import BenchmarkDataset

    ds = BenchmarkDataset(dataset)
    model = entry["model"]()
    if isinstance(entry["gdrive_id"], list):
        return _load_ensemble(model, name, ds, paths, reader).eval()
    return _load_single(model, name, ds, paths[0], reader).eval()


def _load_single(model: nn.Module, name: str, ds: Any, path: Path,
                 reader: _CheckpointReader) -> nn.Module:
    from robustbench.utils import (
        _safe_load_state_dict,
        add_substr_to_state_dict,
        rm_substr_from_state_dict,
    )

    checkpoint = reader.load(path)
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
            except Exception:  # RobustBench ignores a failed filter too
                logger.debug("Swin checkpoint filter did not apply to %s", name)
        if name not in _IMAGENET_NO_PREFIX:
            state_dict = add_substr_to_state_dict(state_dict, "model.")
    return _safe_load_state_dict(model, name, state_dict, ds)


def _load_ensemble(model: nn.Module, name: str, ds: Any, paths: list[Path],
                   reader: _CheckpointReader) -> nn.Module:
    from robustbench.utils import (
        _safe_load_state_dict,
        add_substr_to_state_dict,
        rm_substr_from_state_dict,
    )

    for i, path in enumerate(paths):
        checkpoint = reader.load(path)
        if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
            checkpoint = checkpoint["state_dict"]
        state_dict = rm_substr_from_state_dict(checkpoint, "module.")
        if name.startswith("Bai2023Improving"):
            comp = model.comp_model
            if i < 2:
                comp.models[i] = _safe_load_state_dict(comp.models[i], name, state_dict, ds).eval()
            else:
                comp.policy_net = _safe_load_state_dict(comp.policy_net, name, state_dict["model"],
                                                        ds)
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


def _load_timm(
    timm_id: str, name: str, dataset: str, threat_model: str, paths: list[Path],
    reader: _CheckpointReader
) -> nn.Module:
    """timm-registered zoo models (XCiT, DeiT, AlexNet): weights from ``<name>.pt``.

    The file is read by the reader (so weights-only) and handed to timm as a state dict;
    timm then applies the model's own checkpoint filter and classifier handling, as it
    would for a file. The checkpoint entry is chosen as timm's ``load_state_dict`` does.
    """
    import timm
    from timm.models import clean_state_dict

    if not paths[0].is_file():
        url = timm.models.get_pretrained_cfg(timm_id).url  # type: ignore[union-attr]
        raise _missing(name, dataset, threat_model, paths, url or f"timm model {timm_id}")
    checkpoint = reader.load(paths[0])
    if isinstance(checkpoint, dict):
        for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
            if checkpoint.get(key) is not None:
                checkpoint = checkpoint[key]
                break
    model = timm.create_model(
        timm_id,
        num_classes=NUM_CLASSES[dataset],
        pretrained=True,
        pretrained_cfg_overlay={"state_dict": clean_state_dict(checkpoint)},
    )
    for module in model.modules():  # the config keeps the state dict: let it go
        cfg = getattr(module, "pretrained_cfg", None)
        if isinstance(cfg, dict):
            cfg.pop("state_dict", None)
    return model.eval()


def _load_imagenet_standard(
    entry: dict[str, Any], name: str, threat_model: str, paths: list[Path],
    reader: _CheckpointReader
) -> nn.Module:
    """ImageNet ``Standard_R50``: torchvision's ResNet-50 weights.

    Read from ``model_dir`` or from hub's cache.
    """
    if name != "Standard_R50":
        return entry["model"]().eval()
    from robustbench.model_zoo.architectures.utils_architectures import normalize_model
    from robustbench.model_zoo.imagenet import mu, sigma
    from torchvision.models import resnet50

    model = normalize_model(resnet50(weights=None), mu, sigma)
    source = paths[0] if paths[0].is_file() else _hub_file(_TORCHVISION_R50)
    if not source.is_file():
        raise _missing(name, "imagenet", threat_model, paths, _TORCHVISION_R50)
    state_dict = reader.load(source)
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
