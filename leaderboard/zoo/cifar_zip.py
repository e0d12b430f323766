"""CIFAR-10 images from torchvision's ImageFolder layout inside a zip, decoded to uint8 arrays."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_zip(path: Path, limit_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``<split>/<class>/<NNNN>.jpg`` images into ``x`` and ``y``.

    ``x`` is uint8 ``[N, 3, 32, 32]`` and ``y`` int64.
    Files are read in sorted order, so the first ``limit_per_class`` images of each class are
    the same on every machine.

    Raises:
        FileNotFoundError: the zip does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: pass the CIFAR-10 zip (train.zip or test.zip) "
                                "with --data")
    xs, ys = [], []
    counts = dict.fromkeys(CLASSES, 0)
    with zipfile.ZipFile(path) as archive:
        for name in sorted(n for n in archive.namelist() if n.endswith(".jpg")):
            label = name.split("/")[1]
            if limit_per_class is not None and counts[label] >= limit_per_class:
                continue
            counts[label] += 1
            xs.append(np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB")))
            ys.append(CLASSES.index(label))
    return np.stack(xs).transpose(0, 3, 1, 2).copy(), np.array(ys, dtype=np.int64)
