"""Attack-free predicted robust accuracy against measured AutoAttack accuracy on the CIFAR-10 zoo.

    python benchmarks/zoo_predicted_vs_autoattack.py [--zoo-dir leaderboard/zoo] [--models NAME ...]

For every zoo model that has a model-info file (``<zoo-dir>/model_info/cifar10/{Linf,L2}/<name>.json``:
standard AutoAttack on the first ``n`` class-balanced bundled test images, written by
``python -m leaderboard.zoo.build attack``), scores the same ``n`` images with
``art_fim.fisher_statistics`` (one Jacobian per batch, plus one per norm for the refinement)
and prints, per model and threat model (ℓ∞ 8/255, ℓ2 0.5), the AutoAttack accuracy, the
first-order prediction (the fraction of images whose first-order robust radius reaches the
budget) and the refined one, then the mean absolute error of each prediction over the models.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from art_fim import fisher_statistics
from leaderboard.data import bundled_cifar10
from leaderboard.scoring import ROBUSTBENCH_EPS
from leaderboard.zoo.plan import BUILD_ORDER
from leaderboard.zoo.weights import ZOO_DIR, load_model

THREATS = ROBUSTBENCH_EPS["cifar10"]


def measured(zoo_dir: Path, name: str) -> dict[str, dict]:
    """The model's AutoAttack model-info records, by threat model (only those that exist)."""
    out = {}
    for threat in THREATS:
        path = zoo_dir / "model_info" / "cifar10" / threat / f"{name}.json"
        if path.is_file():
            out[threat] = json.loads(path.read_text())
    return out


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo-dir", type=Path, default=ZOO_DIR, help="holds models/ and model_info/")
    parser.add_argument("--models", nargs="*", default=None, help="zoo models (default: all with model info)")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args(argv)

    names = [n for n in (args.models or BUILD_ORDER) if measured(args.zoo_dir, n)]
    if not names:
        print(f"no zoo model has AutoAttack model info under {args.zoo_dir / 'model_info'} yet")
        return 1
    rows = []
    for name in names:
        info = measured(args.zoo_dir, name)
        n = {int(record["n_examples"]) for record in info.values()}
        if len(n) != 1:
            raise ValueError(f"{name}: the threat models were attacked on different numbers of images {sorted(n)}")
        x, y = bundled_cifar10(n.pop())
        model = load_model(name, args.zoo_dir)
        start = time.perf_counter()
        stats = fisher_statistics(model, x, y, norms=tuple(THREATS), refine=True, batch_size=args.batch_size,
                                  verbose=False)
        row = {"model": name, "n": len(x), "clean": 100.0 * stats.accuracy, "seconds": time.perf_counter() - start}
        for threat, eps in THREATS.items():
            row[threat] = {
                "autoattack": info[threat]["autoattack_acc"] if threat in info else None,
                "first_order": 100.0 * stats.predicted_robust_accuracy(eps, threat, refined=False),
                "refined": 100.0 * stats.predicted_robust_accuracy(eps, threat, refined=True),
            }
        rows.append(row)
        print(f"scored {name} ({len(x)} images, {row['seconds']:.0f} s)", file=sys.stderr, flush=True)

    print(f"\nPredicted vs standard-AutoAttack robust accuracy (%), CIFAR-10 zoo, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    header = "| model | n | clean | " + " | ".join(
        f"{t} {label}" for t in THREATS for label in ("AutoAttack", "first-order", "refined")
    ) + " | s |"
    print(header)
    print("|---|---:|---:|" + "---:|" * (3 * len(THREATS)) + "---:|")
    for row in rows:
        cells = [_cell(row[t][key]) for t in THREATS for key in ("autoattack", "first_order", "refined")]
        print(f"| {row['model']} | {row['n']} | {row['clean']:.1f} | " + " | ".join(cells)
              + f" | {row['seconds']:.0f} |")
    print("\nMean absolute error against AutoAttack (points), over the models measured at that threat model:")
    for threat in THREATS:
        pairs = [row[threat] for row in rows if row[threat]["autoattack"] is not None]
        if not pairs:
            continue
        errors = {key: np.mean([abs(p[key] - p["autoattack"]) for p in pairs]) for key in ("first_order", "refined")}
        signed = {key: np.mean([p[key] - p["autoattack"] for p in pairs]) for key in ("first_order", "refined")}
        print(f"  {threat} {THREATS[threat]:.4g}: first-order {errors['first_order']:.2f} "
              f"(mean signed {signed['first_order']:+.2f}), refined {errors['refined']:.2f} "
              f"(mean signed {signed['refined']:+.2f}), {len(pairs)} models")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
