"""Score the bundled CIFAR-10 models with the input-Fisher metric, as an ART audit would.

    python examples/score_bundled_models.py [--n 1000] [--out results/bundled]

Wraps each bundled model in an ART ``PyTorchClassifier`` (normalisation in ART's
``preprocessing``), computes the exact ``λ_max(F(x))``, ``tr F(x)`` and the first-order
robust radii (ℓ∞ and ℓ2) on the bundled 1,000-image CIFAR-10 test subset in one Jacobian pass
(``art_fim.fisher_statistics``), and prints clean accuracy, the Fisher summaries and the
predicted (attack-free) robust accuracy at ℓ∞ 8/255 and ℓ2 0.5 side by side. A histogram of
``log10 λ_max`` per model is written to ``<out>/fisher_histogram.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from art_fim import fisher_statistics
from leaderboard.data import bundled_cifar10
from leaderboard.small_cnn import load_classifier

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "examples" / "models"
BUDGETS = {"Linf": 8 / 255, "L2": 0.5}  # RobustBench's CIFAR-10 threat models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="test images to score (at most 1000)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bundled")
    args = parser.parse_args(argv)

    x, y = bundled_cifar10(args.n)  # class by class in turn, so any n is balanced
    rows = {}
    for weights in sorted(MODELS.glob("*.pt")):
        classifier = load_classifier(weights)
        start = time.perf_counter()
        # One Jacobian per batch: λ_max, the trace and the robust radii (the predictions too).
        stats = fisher_statistics(classifier, x, y, norms=(np.inf, 2), method="exact",
                                  batch_size=250)
        seconds = time.perf_counter() - start
        rows[weights.stem] = {
            "clean_accuracy": stats.accuracy,
            "seconds": seconds,
            "spectral_norm": stats.spectral_norm.summary(),
            "trace": stats.trace.summary(),
            "predicted_robust_accuracy": {
                threat: stats.predicted_robust_accuracy(eps, threat)
                for threat, eps in BUDGETS.items()
            },
            "values": stats.spectral_norm.values,
        }

    header = (
        f"{'model':<22}{'clean acc':>10}{'median λmax':>13}{'mean λmax':>11}{'mean log10':>12}"
        f"{'median tr':>11}{'pred. ℓ∞ 8/255':>16}{'pred. ℓ2 0.5':>14}{'s':>7}"
    )
    print(
        f"\nInput-Fisher spectral norm and predicted robust accuracy on {len(x)} CIFAR-10 "
        f"test images (exact, CPU)\n{header}"
    )
    for name, row in rows.items():
        lam, tr, robust = row["spectral_norm"], row["trace"], row["predicted_robust_accuracy"]
        print(f"{name:<22}{row['clean_accuracy']:>10.3f}{lam['median']:>13.4g}{lam['mean']:>11.4g}"
              f"{lam['mean_log10']:>12.3f}{tr['median']:>11.4g}{robust['Linf']:>16.3f}{robust['L2']:>14.3f}"
              f"{row['seconds']:>7.1f}")
    print(
        "predicted: attack-free robust accuracy, the fraction of images whose first-order robust "
        "radius reaches the budget (an estimate, optimistic for curved or gradient-masked models)."
    )

    args.out.mkdir(parents=True, exist_ok=True)
    summary = {name: {k: v for k, v in row.items() if k != "values"} for name, row in rows.items()}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in rows.items():
        ax.hist(np.log10(np.maximum(row["values"], 1e-12)), bins=40, alpha=0.6, label=name)
    ax.set_xlabel(r"$\log_{10}\,\lambda_{\max}(F(x))$")
    ax.set_ylabel("test images")
    ax.set_title("Input-Fisher spectral norm per image")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "fisher_histogram.png", dpi=120)
    print(f"\nwrote {args.out / 'summary.json'} and {args.out / 'fisher_histogram.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
