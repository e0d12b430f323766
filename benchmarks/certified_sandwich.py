"""The sandwich: certified robust accuracy ≤ AutoAttack robust accuracy, per zoo model.

    python benchmarks/certified_sandwich.py [--zoo-dir leaderboard/zoo] [--out
    results/sandwich.json]

For every zoo model with an AutoAttack measurement (``<zoo-dir>/model_info/cifar10/{Linf,L2}/
<name>.json``), on the same bundled test images AutoAttack ran on:

* ``L``: the ℓ2 Lipschitz bound of the logits on [0, 1] pixels (``art_fim.lipschitz_bound``);
* certified robust accuracy at the model-info ε: correct and ``margin > √2 L ε₂``
  (ε₂ = ε for ℓ2, √d ε for ℓ∞) — a lower bound on every attack's robust accuracy;
* AutoAttack's robust accuracy (an upper bound on the true robust accuracy);
* beside them, the attack-free predicted robust accuracy (``art_fim.predicted_robust_accuracy``,
  the first-order radius).

A certified value above AutoAttack's is impossible for a correct bound and a correct attack: the
script exits with status 1 if it sees one. The bundled small CNNs (no AutoAttack measurement) are
listed below the zoo, with the certified and predicted columns only.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from art_fim.lipschitz import lipschitz_bound
from leaderboard.data import bundled_cifar10
from leaderboard.small_cnn import load_classifier
from leaderboard.zoo.sandwich import THREATS, sandwich_row, violations, zoo_rows

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"  # the bundled small CNNs


def bundled_rows(n: int) -> list[dict]:
    """The bundled CNNs through ART (standardisation in ``preprocessing``): no AutoAttack column."""
    rows = []
    x, y = bundled_cifar10(n)
    for weights in sorted(MODELS.glob("*.pt")):
        classifier = load_classifier(weights)
        bound = lipschitz_bound(classifier)
        clean = float(np.mean(classifier.predict(x).argmax(1) == y)) * 100
        for threat, (_, eps) in THREATS.items():
            row = sandwich_row(classifier, bound.value, x, y, threat, eps)
            row.update(name=weights.stem, lipschitz=bound.value, clean=clean, autoattack=math.nan)
            rows.append(row)
    return rows


def render(rows: list[dict]) -> str:
    """The sandwich as a fixed-width table."""
    header = (f"{'model':<24}{'threat':<7}{'ε':>8}{'n':>5}{'L':>11}{'median r₂':>11}{'clean':>7}"
              f"{'certified':>10}{'AutoAttack':>11}{'predicted':>10}")
    lines = [header]
    for r in rows:
        aa = "—" if math.isnan(r["autoattack"]) else f"{r['autoattack']:.1f}"
        line = (f"{r['name']:<24}{r['threat']:<7}{r['eps']:>8.4f}{r['n']:>5}{r['lipschitz']:>11.4g}"
                f"{r['median_radius']:>11.3g}{r['clean']:>7.1f}{r['certified']:>10.1f}{aa:>11}"
                f"{r['predicted']:>10.1f}")
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo-dir", type=Path, default=ROOT / "leaderboard" / "zoo")
    parser.add_argument("--n-bundled", type=int, default=500,
                        help="test images for the bundled CNNs")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.perf_counter()
    rows = zoo_rows(args.zoo_dir)
    if not rows:
        print("no AutoAttack-measured zoo model under "
              f"{args.zoo_dir}/model_info/cifar10/{{Linf,L2}}")
    rows += bundled_rows(args.n_bundled)
    print("Certified (Lipschitz bound) ≤ AutoAttack robust accuracy, percent, bundled CIFAR-10 "
          "test images")
    print(render(rows))
    print(
        "median r₂: median certified ℓ2 radius margin/(√2 L); an ℓ∞ ball of radius ε needs r₂ > √d "
        f"ε = {math.sqrt(3 * 32 * 32):.1f} ε"
    )
    print(f"{time.perf_counter() - start:.0f} s")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    bad = violations(rows)
    for r in bad:
        print(f"VIOLATION: {r['name']} {r['threat']}: certified {r['certified']:.1f}% > AutoAttack "
              f"{r['autoattack']:.1f}%")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
