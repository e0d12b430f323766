"""ART's ``SecurityCurve`` against AutoAttack and the attack-free predicted accuracy-vs-ε curve.

    python benchmarks/security_curve.py [--models NAME ...] [--norms Linf L2] [--max-iter 20]
        [--results benchmarks/results/security_curve] [--report-only]

On the zoo models with standard-AutoAttack accuracy at several budgets
(``leaderboard/zoo/autoattack_curve/cifar10/<threat>/<name>_eps*.json`` plus the leaderboard's
budget in ``leaderboard/zoo/model_info/``: ℓ∞ 4, 8 and 16/255, ℓ2 0.25, 0.5 and 1.0), it runs
ART's ``art.evaluations.security_curve.SecurityCurve`` (PGD accuracy at each ε; Madry et al.,
Figure 6, https://arxiv.org/abs/1706.06083) on the same 500 bundled test images AutoAttack ran
on, at the same budgets, and prints per model and ε: SecurityCurve's accuracy, AutoAttack's, and the
attack-free prediction from the committed Fisher pass (the per-image radii of
``leaderboard/results/zoo/cifar10/<threat>/<name>.npz``, first-order and refined,
``art_fim.curve.robust_accuracy_curve``), the mean absolute error of each against AutoAttack,
and what each cost: SecurityCurve's wall time, the Fisher pass's (``seconds.fisher`` of the
committed result) and AutoAttack's recorded ``attack_seconds`` summed over the budgets.

Attack settings (one ``SecurityCurve.evaluate`` per model and norm, all budgets in one call, so
ART's one step size serves every ε): ``ProjectedGradientDescent`` with ``max_iter`` steps
(default 20), one random start (``num_random_init=1``), step ``eps_step = ε_max / 8`` (``ε/4``
at the leaderboard's budget, as in Madry et al.; ``max_iter · eps_step = 2.5 ε_max``, so every
ball can be crossed), untargeted, cross-entropy on the model's logits, batch 250, float32 on
the CPU. ``evaluate`` then runs ART's own gradient-obfuscation check (PGD, 100 steps, ε equal
to the upper clip value 1.0, step 0.02, in the same norm): its time is part of SecurityCurve's
cost, and its flag is recorded.

Resumable: one JSON per model and norm under ``--results`` (``cifar10/<threat>/<name>.json``);
a pair whose file exists is not run again. ``--report-only`` prints the table from the files
present. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from art_fim.curve import robust_accuracy_curve
from art_fim.norms import norm_name
from leaderboard.data import image_set
from leaderboard.store import write_bytes_atomic
from leaderboard.zoo.plan import BUILD_ORDER
from leaderboard.zoo.weights import ZOO_DIR, load_model

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "security_curve"
ZOO_RESULTS = ROOT / "leaderboard" / "results" / "zoo"
DATASET = "cifar10"
THREATS = {"Linf": np.inf, "L2": 2}
STEPS_PER_BALL = 8  # eps_step = ε_max / 8
BATCH_SIZE = 250


def autoattack_records(zoo_dir: Path, name: str, threat: str) -> list[dict[str, Any]]:
    """The AutoAttack records of a model at one threat model, by increasing budget.

    The leaderboard's budget (``model_info/``) and the curve's (``autoattack_curve/``).
    """
    paths = [zoo_dir / "model_info" / DATASET / threat / f"{name}.json",
             *(zoo_dir / "autoattack_curve" / DATASET / threat).glob(f"{name}_eps*.json")]
    records = [json.loads(p.read_text()) for p in paths if p.is_file()]
    return sorted(records, key=lambda r: float(r["eps"]))


def curve_models(zoo_dir: Path) -> list[str]:
    """Zoo models with AutoAttack at further budgets (``autoattack_curve/``), in build order."""
    folder = zoo_dir / "autoattack_curve" / DATASET
    present = {p.name.split("_eps")[0] for p in folder.glob("*/*_eps*.json")}
    return [name for name in BUILD_ORDER if name in present]


def pgd_settings(eps: list[float], norm: float, max_iter: int) -> dict[str, Any]:
    """Keyword arguments of ART's PGD inside ``SecurityCurve`` (one step size for all ε)."""
    return {"norm": norm, "eps_step": max(eps) / STEPS_PER_BALL, "max_iter": max_iter,
            "num_random_init": 1, "targeted": False, "batch_size": BATCH_SIZE, "verbose": False}


def run_security_curve(
    name: str, threat: str, eps: list[float], x: np.ndarray, y: np.ndarray, *, max_iter: int,
    zoo_dir: Path, seed: int = 0,
) -> dict[str, Any]:
    """One ``SecurityCurve.evaluate`` of a zoo model at one norm; the result's record.

    Args:
        name: zoo model.
        threat: ``"Linf"`` or ``"L2"``.
        eps: budgets, in [0, 1] pixel units.
        x: float32 ``[N, 3, 32, 32]`` images in [0, 1].
        y: int64 labels ``[N]``.
        max_iter: PGD steps per budget.
        zoo_dir: folder of the zoo's weights.
        seed: seed of PGD's random starts (NumPy's and torch's global generators).

    Returns:
        A JSON-ready dict with the accuracies (percent), the seconds and the settings.
    """
    from art.estimators.classification import PyTorchClassifier
    from art.evaluations.security_curve import SecurityCurve

    model = load_model(name, zoo_dir)
    classifier = PyTorchClassifier(
        model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
        nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu",
    )
    settings = pgd_settings(eps, THREATS[threat], max_iter)
    one_hot = np.eye(10, dtype=np.float32)[y]  # SecurityCurve's accuracy takes argmax of y
    np.random.seed(seed)  # ART's PGD draws its random starts from NumPy's global generator
    torch.manual_seed(seed)
    curve = SecurityCurve(eps=list(eps))
    start = time.perf_counter()
    eps_list, accuracy, clean = curve.evaluate(classifier, x, one_hot, **settings)
    seconds = time.perf_counter() - start
    return {
        "model": name, "dataset": DATASET, "threat_model": threat, "n_examples": len(y),
        "eps": eps_list, "securitycurve_acc": [100.0 * a for a in accuracy],
        "clean_acc": 100.0 * clean,
        "detected_obfuscating_gradients": bool(curve.detected_obfuscating_gradients),
        "seconds": seconds,
        "attack": {
            "evaluation": "art.evaluations.security_curve.SecurityCurve",
            "pgd": {k: ("inf" if v == np.inf else v) for k, v in settings.items()},
            "gradient_check": "ART's own: PGD, 100 steps, eps = 1.0 (upper clip value), "
                              "eps_step 0.02, same norm",
            "seed": seed,
        },
        "device": f"cpu ({platform.machine()}, torch threads: {torch.get_num_threads()})",
        "versions": _versions(),
        "checkpoint_sha256": hashlib.sha256(
            (zoo_dir / "models" / f"{name}.pt").read_bytes()).hexdigest(),
        "command": "python benchmarks/security_curve.py",
    }


def _versions() -> dict[str, str]:
    import art

    return {"art": art.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def result_path(results: Path, name: str, threat: str) -> Path:
    """Where the SecurityCurve record of a model and norm lives."""
    return results / DATASET / threat / f"{name}.json"


def comparison_rows(results: Path, zoo_dir: Path, zoo_results: Path) -> list[dict[str, Any]]:
    """One row per model, norm and budget with every accuracy (percent) side by side."""
    rows = []
    for name in curve_models(zoo_dir):
        for threat in THREATS:
            path = result_path(results, name, threat)
            if not path.is_file():
                continue
            record = json.loads(path.read_text())
            fisher = json.loads((zoo_results / DATASET / threat / f"{name}.json").read_text())
            with np.load(zoo_results / DATASET / threat / f"{name}.npz") as arrays:
                key = norm_name(threat)
                first, refined = arrays[f"radius_{key}"], arrays[f"radius_{key}_refined"]
            attacks = {round(float(r["eps"]), 9): r for r in autoattack_records(zoo_dir, name,
                                                                                 threat)}
            for eps, security in zip(record["eps"], record["securitycurve_acc"]):
                autoattack = attacks[round(eps, 9)]
                rows.append({
                    "model": name, "threat": threat, "eps": eps, "securitycurve": security,
                    "autoattack": float(autoattack["autoattack_acc"]),
                    "first_order": 100.0 * robust_accuracy_curve(first, [eps])[0],
                    "refined": 100.0 * robust_accuracy_curve(refined, [eps])[0],
                    "securitycurve_seconds": record["seconds"],
                    "fisher_seconds": fisher["seconds"]["fisher"],
                    "autoattack_seconds": float(autoattack["attack_seconds"]),
                    "autoattack_device": autoattack.get("attack_device", "unknown"),
                    "obfuscation_flag": record["detected_obfuscating_gradients"],
                })
    return rows


def print_report(rows: list[dict[str, Any]]) -> None:
    """The comparison table, the mean absolute errors and the costs, as Markdown."""
    print("Robust accuracy (%) on 500 bundled CIFAR-10 test images: ART SecurityCurve (PGD), "
          "standard AutoAttack, attack-free predictions")
    print("| model | threat | ε | AutoAttack | SecurityCurve | predicted first-order | "
          "predicted refined |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        eps = f"{row['eps'] * 255:.0f}/255" if row["threat"] == "Linf" else f"{row['eps']:g}"
        print(f"| {row['model']} | {row['threat']} | {eps} | {row['autoattack']:.1f} | "
              f"{row['securitycurve']:.1f} | {row['first_order']:.1f} | {row['refined']:.1f} |")
    print("\nMean absolute error against AutoAttack (points; mean signed error in brackets):")
    print("| points | SecurityCurve | predicted first-order | predicted refined |")
    print("|---|---:|---:|---:|")
    for label, group in (*((t, [r for r in rows if r["threat"] == t]) for t in THREATS),
                         ("all", rows)):
        if group:
            cells = [f"{np.mean([abs(r[k] - r['autoattack']) for r in group]):.2f} "
                     f"({np.mean([r[k] - r['autoattack'] for r in group]):+.2f})"
                     for k in ("securitycurve", "first_order", "refined")]
            print(f"| {label} ({len(group)}) | " + " | ".join(cells) + " |")
    print("\nCost per model and norm (seconds). SecurityCurve: all three budgets in one call, "
          "CPU, one thread. Fisher pass: the committed result's `seconds.fisher` (CPU, one "
          "thread; both norms' radii, first-order and refined). AutoAttack: `attack_seconds` "
          "summed over the budgets it ran on the CPU (one thread) and, apart, on an H200:")
    print("| model | threat | SecurityCurve | Fisher pass | AutoAttack CPU (budgets) | "
          "AutoAttack H200 (budgets) | obfuscation flag |")
    print("|---|---|---:|---:|---:|---:|---|")
    costs: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        cost = costs.setdefault((row["model"], row["threat"]), {
            **row, "cpu": [0.0, 0], "gpu": [0.0, 0]})
        bucket = cost["cpu" if row["autoattack_device"].startswith("cpu") else "gpu"]
        bucket[0] += row["autoattack_seconds"]
        bucket[1] += 1
    for (name, threat), cost in costs.items():
        cpu, gpu = (f"{s:.0f} ({n})" if n else "—" for s, n in (cost["cpu"], cost["gpu"]))
        print(f"| {name} | {threat} | {cost['securitycurve_seconds']:.0f} | "
              f"{cost['fisher_seconds']:.1f} | {cpu} | {gpu} | "
              f"{'yes' if cost['obfuscation_flag'] else 'no'} |")
    if costs:
        total = {k: sum(c[k] for c in costs.values())
                 for k in ("securitycurve_seconds", "fisher_seconds")}
        cpu = sum(c["cpu"][0] for c in costs.values())
        print(f"| total | | {total['securitycurve_seconds']:.0f} | "
              f"{total['fisher_seconds']:.1f} | {cpu:.0f} | | |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="zoo models (default: all with a curve)")
    parser.add_argument("--norms", nargs="*", default=list(THREATS), choices=list(THREATS))
    parser.add_argument("--max-iter", type=int, default=20, help="PGD steps per budget")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--zoo-dir", type=Path, default=ZOO_DIR)
    parser.add_argument("--zoo-results", type=Path, default=ZOO_RESULTS)
    parser.add_argument("--report-only", action="store_true", help="run nothing, print the table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    models = args.models or curve_models(args.zoo_dir)
    jobs = [(name, threat) for name in models for threat in args.norms
            if not result_path(args.results, name, threat).is_file()]
    if jobs and not args.report_only:
        for name, threat in tqdm(jobs, desc="SecurityCurve", unit="model-norm"):
            records = autoattack_records(args.zoo_dir, name, threat)
            n = {int(r["n_examples"]) for r in records}
            if len(n) != 1:
                raise SystemExit(f"{name} {threat}: AutoAttack ran on differing image counts {n}")
            images = image_set(DATASET, n.pop(), None)
            eps = [float(r["eps"]) for r in records]
            record = run_security_curve(name, threat, eps, images.x, images.y,
                                        max_iter=args.max_iter, zoo_dir=args.zoo_dir)
            record["images"] = images.provenance()
            write_bytes_atomic(result_path(args.results, name, threat),
                               (json.dumps(record, indent=2) + "\n").encode())
            logger.info("%s %s: %s in %.0f s", name, threat,
                        ", ".join(f"{a:.1f}" for a in record["securitycurve_acc"]),
                        record["seconds"])
    print_report(comparison_rows(args.results, args.zoo_dir, args.zoo_results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
