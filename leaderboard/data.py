"""Test images for the leaderboard: the bundled CIFAR-10 subset or a ``--data-dir``.

CIFAR-10/100 under ``--data-dir`` use torchvision's layout (``cifar-10-batches-py/test_batch``,
``cifar-100-python/test``, the pickled batches of the official archives), read directly so
the train batches need not be present; the first ``n`` test images are used, as RobustBench
does. Without ``--data-dir``, CIFAR-10 comes from the bundled 1,000-image subset (100 per
class), taken class by class in turn so any ``n`` is balanced. ImageNet goes through
RobustBench's loader (``data_dir/val/<wnid>/...``), with each model's own preprocessing.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

logger = logging.getLogger(__name__)

#: CIFAR-10's per-channel training-set mean and standard deviation of [0, 1] pixels.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
BUNDLED_CIFAR10 = Path(__file__).resolve().parent / "data" / "cifar10_test_1000.npz"
_TORCHVISION_FILES = {
    "cifar10": ("cifar-10-batches-py", "test_batch", b"labels"),
    "cifar100": ("cifar-100-python", "test", b"fine_labels"),
}


@dataclass(frozen=True)
class ImageSet:
    """Test images with where they came from.

    Attributes:
        x: float32 ``[n, C, H, W]`` in ``[0, 1]``.
        y: int64 labels ``[n]``.
        index: int64 ``[n]``: each image's position in its source (the bundled file, the test
            batch, RobustBench's ImageNet list).
        source: :func:`source_name` of the data.
        file: the file or folder read.
        file_sha256: SHA-256 of that file (``None`` for a folder).
    """

    x: np.ndarray
    y: np.ndarray
    index: np.ndarray
    source: str
    file: str
    file_sha256: str | None

    def provenance(self) -> dict[str, Any]:
        """The ``images`` block of a result.

        It names the source, file and count, and hashes the indices and the pixels.
        """
        return {
            "source": self.source,
            "file": self.file,
            "file_sha256": self.file_sha256,
            "n": int(len(self.y)),
            "index_sha256": _sha256(np.ascontiguousarray(self.index, dtype=np.int64).tobytes()),
            "pixels_sha256": _sha256(np.ascontiguousarray(self.x, dtype=np.float32).tobytes()
                                     + np.ascontiguousarray(self.y, dtype=np.int64).tobytes()),
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_name(dataset: str, data_dir: str | Path | None) -> str:
    """Which data a run reads, without reading it.

    One of ``bundled``, ``torchvision`` or ``robustbench-imagenet``.
    """
    if dataset == "imagenet":
        return "robustbench-imagenet"
    return "bundled" if data_dir is None else "torchvision"


def bundled_order(n_examples: int) -> np.ndarray:
    """Positions in the bundled file of its first ``n_examples`` in class-interleaved order."""
    with np.load(BUNDLED_CIFAR10) as data:
        y = data["y"]
    if not 0 < n_examples <= len(y):
        raise ValueError(f"the bundled CIFAR-10 subset has {len(y)} images; got "
                         f"n_examples={n_examples}")
    # Stable sort by (rank within class, class): airplane 0, automobile 0, ..., airplane 1, ...
    rank = np.zeros(len(y), dtype=np.int64)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rank[members] = np.arange(len(members))
    return np.lexsort((y, rank))[:n_examples].astype(np.int64)


def bundled_cifar10(n_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_examples`` of the bundled subset in class-interleaved order.

    Returns:
        ``x`` float32 ``[n, 3, 32, 32]`` in ``[0, 1]`` and ``y`` int64 ``[n]``.
    """
    order = bundled_order(n_examples)
    with np.load(BUNDLED_CIFAR10) as data:
        x, y = data["x"], data["y"]
    return x[order].astype(np.float32) / 255.0, y[order].astype(np.int64)


class _ArrayUnpickler(pickle.Unpickler):
    """Builds what CIFAR's pickled batches hold, nothing else.

    That is dicts, lists, bytes and numpy arrays.
    """

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        # Array reconstructors under numpy 1.x and 2.x names: pickle protocol 2 (the official
        # archives) and protocol 5 (a batch re-saved by a recent numpy).
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"{module}.{name} is not part of a CIFAR test batch; the file was not read any "
                "further"
            )
        return super().find_class(module, name)


def _load_batch(fh: IO[bytes]) -> dict[bytes, Any]:
    return _ArrayUnpickler(fh, encoding="bytes").load()


def torchvision_cifar(dataset: str, data_dir: str | Path,
                      n_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_examples`` CIFAR test images from torchvision's layout under ``data_dir``.

    Raises:
        FileNotFoundError: the test batch is not there (with the expected path).
    """
    folder, filename, label_key = _TORCHVISION_FILES[dataset]
    path = Path(data_dir) / folder / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"No {dataset} test set under --data-dir: expected {path} (torchvision's layout, "
            f"what torchvision.datasets.{dataset.upper()}(root=data_dir, download=True) writes). "
            + ("Leave out --data-dir to use the bundled 1,000-image CIFAR-10 subset."
               if dataset == "cifar10" else "")
        )
    with path.open("rb") as fh:
        batch = _load_batch(fh)
    x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    y = np.asarray(batch[label_key], dtype=np.int64)
    if not 0 < n_examples <= len(x):
        raise ValueError(f"{path} has {len(x)} images; got n_examples={n_examples}")
    return x[:n_examples].astype(np.float32) / 255.0, y[:n_examples]


def imagenet(data_dir: str | Path, n_examples: int, name: str,
             threat_model: str) -> tuple[np.ndarray, np.ndarray]:
    """RobustBench's ImageNet evaluation images (at most 5,000) with the model's preprocessing.

    Raises:
        FileNotFoundError: ``data_dir/val`` does not exist.
    """
    val = Path(data_dir) / "val"
    if not val.is_dir():
        raise FileNotFoundError(
            f"No ImageNet validation set: expected {val}/<wnid>/ILSVRC2012_val_*.JPEG "
            "with all 1,000 class folders (RobustBench's layout)."
        )
    from leaderboard.robustbench_compat import import_robustbench

    import_robustbench()
    from robustbench.data import get_preprocessing, load_imagenet
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    transform = get_preprocessing(BenchmarkDataset.imagenet, ThreatModel(threat_model), name, None)
    x, y = load_imagenet(n_examples, str(data_dir), transform)
    return x.numpy().astype(np.float32), y.numpy().astype(np.int64)


def image_set(
    dataset: str, n_examples: int, data_dir: str | Path | None, name: str = "",
    threat_model: str = ""
) -> ImageSet:
    """The ``n_examples`` test images a model is scored on, with their provenance.

    Args:
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        n_examples: how many images.
        data_dir: data root, or ``None`` for the bundled CIFAR-10 subset.
        name: the model (ImageNet only: its preprocessing).
        threat_model: the model's threat model (ImageNet only).
    """
    source = source_name(dataset, data_dir)
    if dataset == "imagenet":
        if data_dir is None:
            raise FileNotFoundError("ImageNet models need --data-dir with RobustBench's "
                                    "val/<wnid>/ layout")
        x, y = imagenet(data_dir, n_examples, name, threat_model)
        return ImageSet(x, y, np.arange(len(y), dtype=np.int64), source,
                        str(Path(data_dir) / "val"), None)
    x, y = load_test_set(dataset, n_examples, data_dir)
    if data_dir is None:
        index, path = bundled_order(n_examples), BUNDLED_CIFAR10
        shown = f"leaderboard/data/{path.name}"
    else:
        index, path = (
            np.arange(n_examples, dtype=np.int64),
            Path(data_dir).joinpath(*_TORCHVISION_FILES[dataset][:2]),
        )
        shown = str(path)
    return ImageSet(x, y, index, source, shown, _sha256(path.read_bytes()))


def load_test_set(dataset: str, n_examples: int, data_dir: str | Path
                  | None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR test images for ``dataset`` (ImageNet is loaded per model, see :func:`imagenet`).

    Args:
        dataset: ``"cifar10"`` or ``"cifar100"``.
        n_examples: how many images.
        data_dir: torchvision-layout root, or ``None`` for the bundled CIFAR-10 subset.

    Returns:
        ``x`` float32 ``[n, 3, 32, 32]`` in ``[0, 1]`` and ``y`` int64 ``[n]``.
    """
    if data_dir is None:
        if dataset != "cifar10":
            raise FileNotFoundError(
                f"{dataset} needs --data-dir (only a CIFAR-10 subset is bundled with the project)."
            )
        return bundled_cifar10(n_examples)
    if dataset not in _TORCHVISION_FILES:
        raise ValueError(f"load_test_set handles cifar10 and cifar100, not {dataset!r}")
    return torchvision_cifar(dataset, data_dir, n_examples)
