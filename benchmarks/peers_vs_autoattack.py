"""Which attack-free score tracks AutoAttack? The Fisher scores beside their peers on the zoo.

    python benchmarks/peers_vs_autoattack.py [--results benchmarks/results/peers]
        [--zoo-results leaderboard/results/zoo] [--report-only]

For every zoo model and threat model with a committed leaderboard result
(``leaderboard/results/zoo/cifar10/<threat>/<name>.json``), it computes the three peer scores of
:mod:`leaderboard.peers` (GREAT Score through ART's ``GreatScorePyTorch`` on the softmax view,
the median signed logit margin, the median dual-norm loss-gradient norm) on the same 500 bundled
test images the committed Fisher pass used (their pixel hash is checked), one JSON per model and
threat model under ``--results`` (skipped when present). Then, per threat model, over the
models, it prints for ``λ_max`` (``spectral_norm_median`` of the committed results) and each
peer: Spearman, Kendall and Pearson correlations with the standard-AutoAttack accuracy and the
partial Spearman given clean accuracy (:func:`leaderboard.stats.correlation_table`, paired
bootstrap 95% intervals over models), the leave-one-model-out isotonic mean absolute error
(:func:`leaderboard.calibration.leave_one_out_isotonic`), once in the direction the score's
meaning declares and once in the direction each fit learns from its training models (the sign
of their Spearman correlation, scikit-learn's ``increasing="auto"``), and the cost per image;
beside them, the mean absolute error of the uncalibrated predicted robust accuracy (first-order
and refined) and, for reference, that prediction put through the same leave-one-out isotonic
fit.

Costs are wall seconds per image on the machine that ran each pass: the peers' from this run,
the Fisher pass's (λ_max, trace, both norms' first-order and refined radii in one call) and
AutoAttack's ``attack_seconds`` from the committed records (CPU). The peers' timings are those of
a shared 2-core machine and are indicative only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from leaderboard.calibration import leave_one_out_isotonic
from leaderboard.data import image_set
from leaderboard.peers import PEERS, peer_scores
from leaderboard.stats import correlation_table
from leaderboard.store import write_bytes_atomic
from leaderboard.zoo.plan import BUILD_ORDER
from leaderboard.zoo.weights import ZOO_DIR, load_model

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "peers"
ZOO_RESULTS = ROOT / "leaderboard" / "results" / "zoo"
DATASET = "cifar10"
THREATS = ("Linf", "L2")
# Scores compared, with whether a larger value means a more robust model.
SCORES = {"spectral_norm_median": False, "great_score": True, "logit_margin": True,
          "gradient_norm": False}


def score_peers(name: str, threat: str, fisher: dict[str, Any], zoo_dir: Path) -> dict[str, Any]:
    """The peer scores of one zoo model at one threat model, on the Fisher pass's images."""
    images = image_set(DATASET, int(fisher["n_examples"]), None)
    if images.provenance()["pixels_sha256"] != fisher["images"]["pixels_sha256"]:
        raise SystemExit(f"{name} {threat}: the bundled images differ from those the committed "
                         "Fisher result was computed on")
    peers = peer_scores(load_model(name, zoo_dir), images.x, images.y, threat_model=threat)
    return {"model": name, "dataset": DATASET, "threat_model": threat,
            "images": images.provenance(),
            "peers": {key: peer.to_json() for key, peer in peers.items()},
            "command": "python benchmarks/peers_vs_autoattack.py"}


def table_rows(results: Path, zoo_results: Path) -> dict[str, list[dict[str, Any]]]:
    """Per threat model, one row per model: accuracies, scores and costs per image."""
    rows: dict[str, list[dict[str, Any]]] = {threat: [] for threat in THREATS}
    for threat in THREATS:
        for name in BUILD_ORDER:
            path = results / DATASET / threat / f"{name}.json"
            if not path.is_file():
                continue
            peers = json.loads(path.read_text())["peers"]
            fisher = json.loads((zoo_results / DATASET / threat / f"{name}.json").read_text())
            n = int(fisher["n_examples"])
            predicted = fisher["predicted_robust_acc"][threat]
            rows[threat].append({
                "model": name, "autoattack": float(fisher["reported"]["autoattack_acc"]),
                "clean": float(fisher["clean_acc"]),
                "first_order": float(predicted["first_order"]),
                "refined": float(predicted["refined"]),
                "spectral_norm_median": float(fisher["fisher"]["spectral_norm"]["median"]),
                **{key: float(peers[key]["score"]) for key in PEERS},
                "cost": {"spectral_norm_median": fisher["seconds"]["fisher"] / n,
                         **{key: float(peers[key]["seconds_per_image"]) for key in PEERS},
                         "autoattack": float(fisher["reported"]["attack_seconds"])
                         / int(fisher["reported"]["attack_n_examples"])},
            })
    return rows


def print_report(rows: dict[str, list[dict[str, Any]]]) -> None:
    """Correlations, calibrated and uncalibrated errors and costs, one table per threat."""
    for threat, group in rows.items():
        if len(group) < 3:
            continue
        autoattack = np.array([r["autoattack"] for r in group])
        clean = np.array([r["clean"] for r in group])
        print(f"\n{DATASET} {threat}: {len(group)} zoo models, 500 images each; correlations "
              "with standard-AutoAttack accuracy [paired bootstrap 95%]")
        print("| score | larger = | Spearman | Kendall | Pearson | partial Spearman given "
              "clean | isotonic LOO MAE, declared direction | isotonic LOO MAE, learned "
              "direction | s / image | × AutoAttack's cost |")
        print("|---|---|---|---|---|---|---:|---:|---:|---:|")
        attack_cost = np.array([r["cost"]["autoattack"] for r in group])
        for key, increasing in SCORES.items():
            score = np.array([r[key] for r in group])
            table = correlation_table(score, autoattack, clean)
            loo = leave_one_out_isotonic(score, autoattack, increasing=increasing)
            with warnings.catch_warnings():
                # scikit-learn warns whenever a fold's Spearman interval spans zero.
                warnings.simplefilter("ignore", UserWarning)
                learned = leave_one_out_isotonic(score, autoattack, increasing="auto")
            cost = np.array([r["cost"][key] for r in group])
            print(f"| {key} | {'more' if increasing else 'less'} robust | "
                  f"{table['spearman_vs_autoattack']} | {table['kendall_vs_autoattack']} | "
                  f"{table['pearson_vs_autoattack']} | "
                  f"{table['partial_spearman_vs_autoattack_given_clean']} | {loo.mae:.2f} | "
                  f"{learned.mae:.2f} | "
                  f"{np.median(cost):.2g} | {np.median(cost / attack_cost):.1e} |")
        print("\nPredicted robust accuracy against AutoAttack, mean absolute error (points):")
        for key in ("first_order", "refined"):
            predicted = np.array([r[key] for r in group])
            loo = leave_one_out_isotonic(predicted, autoattack, increasing=True)
            print(f"  {key}: uncalibrated {np.mean(np.abs(predicted - autoattack)):.2f}, "
                  f"isotonic LOO {loo.mae:.2f}")
        print(f"  AutoAttack: median {np.median(attack_cost):.2g} s / image (CPU, committed "
              "attack_seconds)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--zoo-results", type=Path, default=ZOO_RESULTS)
    parser.add_argument("--zoo-dir", type=Path, default=ZOO_DIR)
    parser.add_argument("--report-only", action="store_true", help="run nothing, print the table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    jobs = [(name, threat) for threat in THREATS for name in BUILD_ORDER
            if (args.zoo_results / DATASET / threat / f"{name}.json").is_file()
            and not (args.results / DATASET / threat / f"{name}.json").is_file()]
    for name, threat in tqdm([] if args.report_only else jobs, desc="peer scores",
                             unit="model"):
        fisher = json.loads((args.zoo_results / DATASET / threat / f"{name}.json").read_text())
        if fisher.get("status") != "ok":
            continue
        record = score_peers(name, threat, fisher, args.zoo_dir)
        write_bytes_atomic(args.results / DATASET / threat / f"{name}.json",
                           (json.dumps(record, indent=2) + "\n").encode())
    print_report(table_rows(args.results, args.zoo_results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
