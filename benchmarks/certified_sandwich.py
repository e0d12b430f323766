"""The sandwich: certified robust accuracy ≤ AutoAttack robust accuracy, per zoo model.

    python benchmarks/certified_sandwich.py [--zoo-dir leaderboard/zoo] [--out results/sandwich.json]

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
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from art_fim import predicted_robust_accuracy  # noqa: E402
from art_fim.lipschitz import certified_accuracy, certified_radius, lipschitz_bound  # noqa: E402
from leaderboard.data import bundled_cifar10  # noqa: E402

THREATS = {"Linf": (np.inf, 8 / 255), "L2": (2, 0.5)}


def measured_models(zoo_dir: Path) -> list[tuple[str, str, dict]]:
    """``(name, threat, model_info)`` for every AutoAttack measurement in ``zoo_dir``."""
    found = []
    for threat in THREATS:
        for path in sorted((zoo_dir / "model_info" / "cifar10" / threat).glob("*.json")):
            found.append((path.stem, threat, json.loads(path.read_text())))
    return found


def sandwich_row(model: Any, bound: float, x: np.ndarray, y: np.ndarray, threat: str, eps: float) -> dict:
    """Certified and predicted robust accuracy of one model at one threat, percent."""
    norm, _ = THREATS[threat]
    row = {"threat": threat, "eps": eps, "n": len(x),
           "certified": 100.0 * certified_accuracy(model, x, y, eps, norm=norm, bound=bound),
           "median_radius": float(np.median(certified_radius(model, x, bound)))}
    row["predicted"] = 100.0 * float(predicted_robust_accuracy(model, x, y, eps, norm=norm, verbose=False))
    return row


def zoo_rows(zoo_dir: Path) -> list[dict]:
    """One row per AutoAttack-measured zoo model and threat."""
    from leaderboard.zoo import load_model

    rows, bounds = [], {}
    for name, threat, info in measured_models(zoo_dir):
        model = load_model(name, zoo_dir)
        if name not in bounds:
            start = time.perf_counter()
            bounds[name] = (lipschitz_bound(model, (3, 32, 32), input_box=(0.0, 1.0)), time.perf_counter() - start)
        bound, seconds = bounds[name]
        x, y = bundled_cifar10(int(info["n_examples"]))
        row = sandwich_row(model, bound.value, x, y, threat, float(info["eps"]))
        clean = float(np.mean(_predict(model, x).argmax(1) == y)) * 100
        row.update(name=name, lipschitz=bound.value, bound_seconds=seconds, clean=clean,
                   autoattack=float(info["autoattack_acc"]))
        rows.append(row)
    return rows


def _predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def bundled_rows(n: int) -> list[dict]:
    """The bundled CNNs through ART (standardisation in ``preprocessing``): no AutoAttack column."""
    from score_bundled_models import MODELS, load_classifier

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


def violations(rows: list[dict]) -> list[dict]:
    """Rows whose certified accuracy exceeds AutoAttack's (a bug in the bound or the attack)."""
    return [r for r in rows if not math.isnan(r["autoattack"]) and r["certified"] > r["autoattack"]]


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo-dir", type=Path, default=ROOT / "leaderboard" / "zoo")
    parser.add_argument("--n-bundled", type=int, default=500, help="test images for the bundled CNNs")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.perf_counter()
    rows = zoo_rows(args.zoo_dir)
    if not rows:
        print(f"no AutoAttack-measured zoo model under {args.zoo_dir}/model_info/cifar10/{{Linf,L2}}")
    rows += bundled_rows(args.n_bundled)
    print("Certified (Lipschitz bound) ≤ AutoAttack robust accuracy, percent, bundled CIFAR-10 test images")
    print(render(rows))
    print("median r₂: median certified ℓ2 radius margin/(√2 L); an ℓ∞ ball of radius ε needs r₂ > √d ε = "
          f"{math.sqrt(3 * 32 * 32):.1f} ε")
    print(f"{time.perf_counter() - start:.0f} s")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    bad = violations(rows)
    for r in bad:
        print(f"VIOLATION: {r['name']} {r['threat']}: certified {r['certified']:.1f}% > AutoAttack {r['autoattack']:.1f}%")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
