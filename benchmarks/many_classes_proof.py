"""Proven fraction and cost of subset radii on trained many-class models (``K = 100``, ``1000``).

    python benchmarks/many_classes_models.py      # trains the models first (a few CPU minutes)
    python benchmarks/many_classes_proof.py [--n 64] [--repeats 1]

For each model of ``many_classes_models.py`` (CIFAR-10 classes split into k-means sub-classes),
on ``--n`` CIFAR-10 test images (a fixed random draw) with the model's own predictions as
labels (so that every radius is a distance to a decision boundary, none is a trivial 0), it
runs ``art_fim.fisher_statistics`` on the matrix-free route (Lanczos, Hutchinson, radii from
the label and its 20 nearest competitors, proven or flagged per input) beside the exact route
(all ``K`` rows), both on an ART ``PyTorchClassifier`` with ``clip_values = (0, 1)`` (so the
radii are box distances, as on the leaderboard), ℓ∞ and ℓ2, refined. It prints per norm the
fraction of inputs proven (first-order and refined), whether every proven radius equals the
exact one, how far the unproven ones are above it, the predicted robust accuracy of both
routes (unproven inputs count as not robust), and the time of each route (fastest of
``--repeats``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

from art_fim import fisher_statistics
from leaderboard.zoo.cifar_zip import load_zip

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script that trains them
from many_classes_models import DATA, OUT, ManyClassCNN

EPS = {"linf": 8 / 255, "l2": 0.5}


def classifier_for(classes: int) -> PyTorchClassifier:
    """The trained ``K = classes`` model as an ART classifier on ``[0, 1]`` images."""
    checkpoint = torch.load(OUT / f"k{classes}.pt", weights_only=False)
    model = ManyClassCNN(classes)
    model.load_state_dict(checkpoint["state_dict"])
    return PyTorchClassifier(model=model.eval(), loss=torch.nn.CrossEntropyLoss(),
                             input_shape=(3, 32, 32), nb_classes=classes, clip_values=(0.0, 1.0),
                             device_type="cpu")


def fastest(repeats: int, fn):
    """``(seconds, result)`` of the fastest of ``repeats`` calls."""
    best = None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        best = (seconds, out) if best is None or seconds < best[0] else best
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    args = parser.parse_args(argv)
    images, _ = load_zip(args.data_dir / "test.zip")
    pick = np.random.default_rng(0).permutation(len(images))[: args.n]
    x = images[pick].astype(np.float32) / 255.0
    for classes in args.classes:
        classifier = classifier_for(classes)
        y = classifier.predict(x).argmax(1)

        def run(method: str):
            return lambda: fisher_statistics(classifier, x, y, method=method, batch_size=args.n,
                                             verbose=False)

        t_exact, exact = fastest(args.repeats, run("exact"))
        t_subset, subset = fastest(args.repeats, run("lanczos"))
        print(f"\nK = {classes}, {args.n} test images, labels = predictions; exact "
              f"{t_exact:.1f} s, subset {t_subset:.1f} s ({t_subset / t_exact:.3f} × exact)")
        print("| radius | proven | proven equal to exact | unproven / exact (max) | predicted "
              "robust acc. subset / exact |")
        print("|---|---:|---:|---:|---:|")
        for refined in (False, True):
            for name, eps in EPS.items():
                table = subset.refined_radius if refined else subset.radius
                truth = (exact.refined_radius if refined else exact.radius)[name].values
                values, proven = table[name].values, table[name].proven
                equal = np.isclose(values[proven], truth[proven], rtol=1e-9, atol=0)
                above = (values[~proven] / truth[~proven]).max() if (~proven).any() else np.nan
                label = f"{name} {'refined' if refined else 'first-order'}"
                print(f"| {label} | {proven.mean():.1%} | {equal.mean() if equal.size else 1:.0%} "
                      f"| {above:.3f} | {subset.predicted_robust_accuracy(eps, name, refined):.3f} "
                      f"/ {exact.predicted_robust_accuracy(eps, name, refined):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
