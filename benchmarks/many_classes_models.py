"""Trained many-class models (``K = 100`` and ``K = 1000``) on labels derived from CIFAR-10.

    python benchmarks/many_classes_models.py [--classes 100 1000] [--epochs 6]

No many-class data set ships here, so the labels are derived from CIFAR-10: each of its ten
classes is split into ``K / 10`` sub-classes by k-means on the pixels (the training images of
that class, downsampled to ``8 × 8 × 3`` by averaging ``4 × 4`` blocks; scikit-learn's
``KMeans``, seed 0). A sub-class is then a CIFAR-10 class *and* a colour/layout prototype, a
label a convolutional network can learn from the pixels; test images get the sub-class of
their own class's nearest centroid. ``K = 1000`` leaves about 50 training images per class,
so its accuracy is low, which is what a model trained for a few CPU minutes on a hard label
space looks like.

The model is a small CNN (three 3×3 convolutions with 16, 32, 64 channels, each followed by
ReLU and 2×2 max pooling, then a linear layer to ``K`` logits; inputs in ``[0, 1]``), trained
with Adam (learning rate 1e-3, batch 256, ``--epochs`` epochs, seed 0) with cross-entropy.
Weights go to ``results/many_classes/k<K>.pt`` (not part of the project; rerun to rebuild
them), with the derived test labels beside them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn

from leaderboard.zoo.cifar_zip import load_zip

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "cifar10"
OUT = ROOT / "results" / "many_classes"

logger = logging.getLogger("many_classes_models")


class ManyClassCNN(nn.Module):
    """Three conv-ReLU-pool blocks (16, 32, 64 channels) and a linear layer to ``K`` logits."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = 3
        for channels in (16, 32, 64):
            blocks += [nn.Conv2d(width, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            width = channels
        self.net = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(64 * 4 * 4, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]`` of images ``[B, 3, 32, 32]`` in ``[0, 1]``."""
        return self.net(x)


def thumbnails(x: np.ndarray) -> np.ndarray:
    """``[N, 3, 32, 32]`` uint8 -> ``[N, 192]`` float: the mean of each ``4 × 4`` block."""
    return x.reshape(len(x), 3, 8, 4, 8, 4).mean(axis=(3, 5)).reshape(len(x), -1) / 255.0


def sub_class_labels(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split each CIFAR-10 class into ``classes / 10`` sub-classes by k-means on thumbnails.

    Returns:
        The training and test labels in ``0 … classes − 1`` (class ``c``'s sub-classes are
        ``c · classes/10 … (c + 1) · classes/10 − 1``).
    """
    per_class = classes // 10
    train_labels = np.empty_like(y_train)
    test_labels = np.empty_like(y_test)
    small_train, small_test = thumbnails(x_train), thumbnails(x_test)
    for c in range(10):
        kmeans = KMeans(per_class, n_init=1, random_state=0).fit(small_train[y_train == c])
        train_labels[y_train == c] = c * per_class + kmeans.labels_
        test_labels[y_test == c] = c * per_class + kmeans.predict(small_test[y_test == c])
    return train_labels, test_labels


def train(x: np.ndarray, y: np.ndarray, classes: int, epochs: int) -> ManyClassCNN:
    """Train :class:`ManyClassCNN` with Adam and cross-entropy (seed 0); returns it in eval mode."""
    torch.manual_seed(0)
    model = ManyClassCNN(classes)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.from_numpy(x).float() / 255.0
    labels = torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        start, total = time.perf_counter(), 0.0
        for batch in torch.randperm(len(x), generator=generator).split(256):
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss) * len(batch)
        logger.info("K = %d epoch %d: loss %.3f (%.0f s)", classes, epoch + 1, total / len(x),
                    time.perf_counter() - start)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    x_train, y_train = load_zip(args.data_dir / "train.zip")
    x_test, y_test = load_zip(args.data_dir / "test.zip")
    OUT.mkdir(parents=True, exist_ok=True)
    for classes in args.classes:
        train_labels, test_labels = sub_class_labels(x_train, y_train, x_test, y_test, classes)
        model = train(x_train, train_labels, classes, args.epochs)
        with torch.no_grad():
            logits = torch.cat([model(torch.from_numpy(part).float() / 255.0)
                                for part in np.array_split(x_test, 20)])
        accuracy = float((logits.argmax(1).numpy() == test_labels).mean())
        torch.save({"state_dict": model.state_dict(), "classes": classes,
                    "test_labels": test_labels, "epochs": args.epochs, "accuracy": accuracy},
                   OUT / f"k{classes}.pt")
        print(f"K = {classes}: test accuracy {accuracy:.3f} after {args.epochs} epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
