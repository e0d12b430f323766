r"""Predicted robust accuracy (first-order and refined) against a PGD attack on the bundled models.

    python benchmarks/radius_vs_pgd.py [--n 200] [--max-iter 50]

A check that runs anywhere in a minute, for when no AutoAttack-measured model is at hand: on
the bundled CIFAR-10 models (``examples/models/``, ART ``PyTorchClassifier``\ s) and ``n``
class-balanced bundled test images, it prints the attack-free predictions of
``art_fim.fisher_statistics`` at ℓ∞ 8/255 and ℓ2 0.5 beside the accuracy left by ART's PGD
(``max_iter`` steps, one random start). PGD finds fewer adversarial examples than AutoAttack,
so its accuracy is an upper bound of the robust accuracy; the table against AutoAttack itself
is ``zoo_predicted_vs_autoattack.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from art.attacks.evasion import ProjectedGradientDescent

from art_fim import fisher_statistics
from leaderboard.data import bundled_cifar10
from leaderboard.small_cnn import load_classifier

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "examples" / "models"  # the bundled small CNNs
THREATS = {"Linf": (np.inf, 8 / 255, 2 / 255), "L2": (2, 0.5, 0.1)}  # norm, eps, PGD step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="test images (class-balanced)")
    parser.add_argument("--max-iter", type=int, default=50, help="PGD steps")
    args = parser.parse_args(argv)

    x, y = bundled_cifar10(args.n)
    np.random.seed(0)  # ART's PGD draws its random start from NumPy's global generator
    print(
        f"Predicted vs PGD-{args.max_iter} robust accuracy (%), {args.n} bundled CIFAR-10 test "
        "images"
    )
    print("| model | clean | " + " | ".join(f"{t} PGD | {t} first-order | {t} refined"
                                            for t in THREATS) + " |")
    print("|---|---:|" + "---:|" * (3 * len(THREATS)))
    for weights in sorted(MODELS.glob("*.pt")):
        classifier = load_classifier(weights)
        stats = fisher_statistics(classifier, x, y, norms=(np.inf, 2), refine=True, verbose=False)
        cells = []
        for norm, eps, step in THREATS.values():
            attack = ProjectedGradientDescent(classifier, norm=norm, eps=eps, eps_step=step,
                                              max_iter=args.max_iter,
                                              num_random_init=1, batch_size=len(x), verbose=False)
            pgd = float((classifier.predict(attack.generate(x, y=y)).argmax(1) == y).mean())
            cells += [pgd, stats.predicted_robust_accuracy(eps, norm, refined=False),
                      stats.predicted_robust_accuracy(eps, norm, refined=True)]
        print(f"| {weights.stem} | {100 * stats.accuracy:.1f} | "
              + " | ".join(f"{100 * c:.1f}" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
