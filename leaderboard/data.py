"""Test images for the leaderboard: the bundled CIFAR-10 subset or a ``--data-dir``.

CIFAR-10/100 under ``--data-dir`` use torchvision's layout (``cifar-10-batches-py/test_batch``,
``cifar-100-python/test``, the pickled batches of the official archives), read directly so
the train batches need not be present; the first ``n`` test images are used, as RobustBench
does. Without ``--data-dir``, CIFAR-10 comes from the bundled 1,000-image subset (100 per
class), taken class by class in turn so any ``n`` is balanced. ImageNet goes through
RobustBench's loader (``data_dir/val/<wnid>/...``), with each model's own preprocessing.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

BUNDLED_CIFAR10 = Path(__file__).resolve().parent / "data" / "cifar10_test_1000.npz"
_TORCHVISION_FILES = {
    "cifar10": ("cifar-10-batches-py", "test_batch", b"labels"),
    "cifar100": ("cifar-100-python", "test", b"fine_labels"),
}


def bundled_cifar10(n_examples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_examples`` of the bundled subset in class-interleaved order.

    Returns:
        ``x`` float32 ``[n, 3, 32, 32]`` in ``[0, 1]`` and ``y`` int64 ``[n]``.
    """
    with np.load(BUNDLED_CIFAR10) as data:
        x, y = data["x"], data["y"]
    if not 0 < n_examples <= len(x):
        raise ValueError(f"the bundled CIFAR-10 subset has {len(x)} images; got n_examples={n_examples}")
    # Stable sort by (rank within class, class): airplane 0, automobile 0, ..., airplane 1, ...
    rank = np.zeros(len(y), dtype=np.int64)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rank[members] = np.arange(len(members))
    order = np.lexsort((y, rank))[:n_examples]
    return x[order].astype(np.float32) / 255.0, y[order].astype(np.int64)


def torchvision_cifar(dataset: str, data_dir: str | Path, n_examples: int) -> tuple[np.ndarray, np.ndarray]:
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
            + ("Leave out --data-dir to use the bundled 1,000-image CIFAR-10 subset." if dataset == "cifar10" else "")
        )
    with path.open("rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    y = np.asarray(batch[label_key], dtype=np.int64)
    if not 0 < n_examples <= len(x):
        raise ValueError(f"{path} has {len(x)} images; got n_examples={n_examples}")
    return x[:n_examples].astype(np.float32) / 255.0, y[:n_examples]


def imagenet(data_dir: str | Path, n_examples: int, name: str, threat_model: str) -> tuple[np.ndarray, np.ndarray]:
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


def load_test_set(dataset: str, n_examples: int, data_dir: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
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
