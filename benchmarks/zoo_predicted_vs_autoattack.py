"""Attack-free predicted robust accuracy against measured AutoAttack accuracy on the CIFAR-10 zoo.

    python benchmarks/zoo_predicted_vs_autoattack.py [--results leaderboard/results/zoo] [--zoo-dir
    leaderboard/zoo]

Reads, for every zoo model, the per-image robust radii the leaderboard stored (``<results>/cifar10/
<threat>/<name>.npz``: first-order ``radius_<norm>`` and refined ``radius_<norm>_refined``, from
``python -m leaderboard run --source zoo``, whose default is the refined radius) and the standard
AutoAttack accuracies measured on the same images: the leaderboard's budgets (ℓ∞ 8/255, ℓ2 0.5,
``<zoo-dir>/model_info/``) and the further budgets of the accuracy-vs-ε curve (ℓ∞ 4/255 and
16/255, ℓ2 0.25 and 1.0, ``<zoo-dir>/autoattack_curve/``, ``python -m leaderboard.zoo.build
curve``). It prints one row per model and budget (AutoAttack, the first-order prediction, the
refined one, i.e. the default call's) and the mean absolute error of each prediction: over the
models at the leaderboard's budgets, and over the curve points. No model is run: the numbers
are those of the committed results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from art_fim.curve import robust_accuracy_curve
from art_fim.norms import norm_name
from leaderboard.zoo.plan import BUILD_ORDER
from leaderboard.zoo.weights import ZOO_DIR

RESULTS = ZOO_DIR.parent / "results" / "zoo"
THREATS = ("Linf", "L2")


def autoattack_points(zoo_dir: Path, name: str, threat: str) -> list[tuple[float, float, bool]]:
    """``(eps, AutoAttack accuracy %, is a curve point)`` of a model at one threat model.

    Sorted by budget.
    """
    points = []
    main = zoo_dir / "model_info" / "cifar10" / threat / f"{name}.json"
    if main.is_file():
        record = json.loads(main.read_text())
        points.append((float(record["eps"]), float(record["autoattack_acc"]), False))
    for path in sorted(
        (zoo_dir / "autoattack_curve" / "cifar10" / threat).glob(f"{name}_eps*.json")
    ):
        record = json.loads(path.read_text())
        points.append((float(record["eps"]), float(record["autoattack_acc"]), True))
    return sorted(points)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="the zoo's leaderboard results")
    parser.add_argument("--zoo-dir", type=Path, default=ZOO_DIR,
                        help="holds model_info/ and autoattack_curve/")
    args = parser.parse_args(argv)

    rows = []
    for name in BUILD_ORDER:
        for threat in THREATS:
            npz = args.results / "cifar10" / threat / f"{name}.npz"
            if not npz.is_file():
                continue
            with np.load(npz) as arrays:
                key = norm_name(threat)
                first = arrays[f"radius_{key}"]
                refined = arrays.get(f"radius_{key}_refined")
                if refined is None:
                    raise SystemExit(f"{npz} has no refined radii: rescore with `python -m "
                                     "leaderboard run --source zoo --overwrite`")
                refined = np.array(refined)
            for eps, autoattack, curve in autoattack_points(args.zoo_dir, name, threat):
                rows.append({
                    "model": name, "threat": threat, "eps": eps, "curve": curve,
                    "autoattack": autoattack,
                    "first_order": 100.0 * robust_accuracy_curve(first, [eps])[0],
                    "refined": 100.0 * robust_accuracy_curve(refined, [eps])[0],
                })
    if not rows:
        print(f"no zoo results with AutoAttack accuracies under {args.results}")
        return 1

    print("Predicted vs standard-AutoAttack robust accuracy (%), CIFAR-10 zoo, 500 images each")
    print("| model | threat | ε | AutoAttack | first-order | refined (default) |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        eps = f"{row['eps'] * 255:.0f}/255" if row["threat"] == "Linf" else f"{row['eps']:g}"
        mark = "" if row["curve"] else " *"
        print(f"| {row['model']} | {row['threat']} | {eps}{mark} | {row['autoattack']:.1f} | "
              f"{row['first_order']:.1f} | {row['refined']:.1f} |")
    print("\n* the leaderboard's budget; the others are the accuracy-vs-ε curve's further points.")
    print("\nMean absolute error against AutoAttack (points):")
    groups = {f"{t} at the leaderboard's budget": [r for r in rows if r["threat"] == t
                                                   and not r["curve"]]
              for t in THREATS}
    groups["curve points (other budgets, both norms)"] = [r for r in rows if r["curve"]]
    for label, group in groups.items():
        if not group:
            continue
        errors = {k: np.mean([abs(r[k] - r["autoattack"]) for r in group])
                  for k in ("first_order", "refined")}
        signed = {k: np.mean([r[k] - r["autoattack"] for r in group])
                  for k in ("first_order", "refined")}
        print(
            f"  {label}: first-order {errors['first_order']:.2f} (signed "
            f"{signed['first_order']:+.2f}), refined {errors['refined']:.2f} (signed "
            f"{signed['refined']:+.2f}), {len(group)} points"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
