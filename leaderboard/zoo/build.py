"""Train the zoo and measure its AutoAttack accuracy, resumably.

    python -m leaderboard.zoo.build train  [--models NAME ...] [--device auto] [--time-budget 540]
    python -m leaderboard.zoo.build attack [--models NAME ...] [--n 500] [--norms Linf L2]
    python -m leaderboard.zoo.build all    [--models NAME ...]     # train, then attack, model by
    model python -m leaderboard.zoo.build curve  [--models NAME ...] [--n 500] [--norms Linf L2]

``train`` writes ``<out>/models/<name>.pt`` (float16 state dict) and ``<name>.json`` (how it was
trained, clean accuracy on the 10,000 test images, a 10-step PGD check for catastrophic
overfitting, training time). ``attack`` writes
RobustBench-style model-info files ``<out>/model_info/cifar10/<norm>/<name>.json`` with clean and
standard-AutoAttack accuracy on ``n`` images of the bundled test subset
(``leaderboard/data/cifar10_test_1000.npz``, 100 per class), taken class by class in turn. Finished
models are skipped, so the work can be spread over several runs; ``--time-budget`` stops before
starting a model once that many seconds have passed. Every file is written atomically; an
interrupted training resumes after its last finished epoch (its state is kept in
``<out>/training_state/``), an interrupted attack at AutoAttack's next sub-attack
(``<out>/attack_state/``). Models are taken in :data:`~leaderboard.zoo.plan.BUILD_ORDER` unless
``--models`` names them.
``curve`` measures AutoAttack at the further budgets of :data:`~leaderboard.zoo.plan.CURVE_BUDGETS`
(ℓ∞ 4/255 and 16/255, ℓ2 0.25 and 1.0) for :data:`~leaderboard.zoo.plan.CURVE_MODELS`, writing
``<out>/autoattack_curve/cifar10/<norm>/<name>_eps<budget>.json``: the points that check the
predicted accuracy-vs-ε curve away from the leaderboard's one budget per norm.

Training data: ``../shared/data/cifar10/train.zip`` relative to the project root (``--data-dir``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from leaderboard.data import BUNDLED_CIFAR10, bundled_cifar10
from leaderboard.scoring import device_name, resolve_device
from leaderboard.store import write_atomic
from leaderboard.zoo.architectures import build
from leaderboard.zoo.cifar_zip import load_zip
from leaderboard.zoo.plan import BUILD_ORDER, CURVE_BUDGETS, CURVE_MODELS, ZOO, ZooModel
from leaderboard.zoo.training import accuracy, pgd_accuracy, train
from leaderboard.zoo.weights import ZOO_DIR, load_model, save_weights, weights_path

ROOT = Path(__file__).resolve().parents[2]
# Images of the catastrophic-overfitting check: every k-th test image, so every class is in it.
_PGD_CHECK_IMAGES = 1000


def _test_set(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    test_zip = data_dir / "test.zip"
    if test_zip.exists():
        x, y = load_zip(test_zip)
    else:  # the bundled 1,000-image subset, when the full test set is not at hand
        data = np.load(BUNDLED_CIFAR10)
        x, y = data["x"], data["y"]
    return torch.from_numpy(x), torch.from_numpy(y)


def train_models(entries: list[ZooModel], args: argparse.Namespace) -> None:
    """Train every entry that has no weights yet."""
    device = resolve_device(args.device)
    todo = [e for e in entries if not weights_path(e.name, args.out).exists()]
    print(f"{len(entries) - len(todo)} of {len(entries)} models already trained; {len(todo)} to "
          f"train on {device}")
    if not todo:
        return
    x_train, y_train = load_zip(args.data_dir / "train.zip", limit_per_class=args.limit_per_class)
    x_test, y_test = _test_set(args.data_dir)
    started = time.perf_counter()
    for entry in todo:
        if time.perf_counter() - started > args.time_budget:
            print(f"time budget of {args.time_budget:.0f} s reached; rerun to continue")
            return
        model = build(entry.architecture)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        checkpoint = args.out / "training_state" / f"{entry.name}.pt"
        stats = train(
            model, torch.from_numpy(x_train), torch.from_numpy(y_train), entry.regime,
            epochs=args.epochs or entry.epochs, batch_size=args.batch_size, lr=entry.lr,
            optimizer=entry.optimizer, seed=entry.seed, device=device, verbose=True,
            checkpoint=checkpoint,
        )
        clean = accuracy(model, x_test, y_test)
        check = _overfitting_check(model, entry, x_test, y_test)
        weights = weights_path(entry.name, args.out)
        save_weights(model, weights)
        record = {
            "name": entry.name, "architecture": entry.architecture, "regime": vars(entry.regime),
            "epochs": args.epochs or entry.epochs, "lr": entry.lr, "optimizer": entry.optimizer,
            "batch_size": args.batch_size, "seed": entry.seed,
            "train_images": len(x_train), "clean_acc": clean, "test_images": len(x_test), **check,
            "train_seconds": round(stats["train_seconds"], 1),
            "device": device_name(device),
            "torch": torch.__version__,
            "command": "python -m leaderboard.zoo.build " + " ".join(sys.argv[1:]),
        }
        write_atomic(weights.with_suffix(".json"), record)
        checkpoint.unlink()  # only now: until the weights are stored, a rerun resumes from it
        print(f"{entry.name}: clean {clean:.2f}% on {len(x_test)} test images, "
              f"{stats['train_seconds']:.0f} s, {check}", flush=True)


def _overfitting_check(model: torch.nn.Module, entry: ZooModel, x: torch.Tensor,
                       y: torch.Tensor) -> dict:
    """PGD-10 accuracy at the training radius, for adversarially trained models.

    Short-step adversarial training can overfit catastrophically: near-zero accuracy here next
    to a reasonable clean accuracy flags it before AutoAttack is spent on the model.
    """
    regime = entry.regime
    if regime.kind not in ("pgd", "trades"):
        return {}
    stride = max(1, len(x) // _PGD_CHECK_IMAGES)
    x, y = x[::stride][:_PGD_CHECK_IMAGES], y[::stride][:_PGD_CHECK_IMAGES]
    acc = pgd_accuracy(model, x, y, eps=regime.eps, norm=regime.norm)
    return {"pgd10_acc_at_train_eps": acc, "pgd10_check_images": len(x)}


def attack_models(entries: list[ZooModel], args: argparse.Namespace) -> None:
    """Measure clean and AutoAttack accuracy for every trained entry and norm not yet done."""
    jobs = [(entry, norm, None) for entry in entries for norm in args.norms]
    _run_attacks(jobs, args)


def attack_curve(entries: list[ZooModel], args: argparse.Namespace) -> None:
    """AutoAttack at the curve budgets for every entry and norm not yet done.

    The budgets are :data:`CURVE_BUDGETS`.
    """
    jobs = [(entry, norm, eps) for entry in entries for norm in args.norms
            for eps in CURVE_BUDGETS[norm]]
    _run_attacks(jobs, args)


def budget_label(norm: str, eps: float) -> str:
    """``"4-255"`` for ℓ∞ 4/255 (budgets in 255ths), ``"0.25"`` for ℓ2 0.25."""
    if norm == "Linf":
        return f"{round(eps * 255):d}-255"
    return f"{eps:g}"


def curve_path(directory: Path, name: str, norm: str, eps: float) -> Path:
    """Where the AutoAttack result of zoo model ``name`` at ``(norm, eps)`` lives.

    For a budget other than the main one.
    """
    return (
        directory
        / "autoattack_curve"
        / "cifar10"
        / norm
        / f"{name}_eps{budget_label(norm, eps)}.json"
    )


def _run_attacks(jobs: list[tuple[ZooModel, str, float | None]], args: argparse.Namespace) -> None:
    """Run AutoAttack for each ``(entry, norm, eps)`` whose result file is missing.

    ``eps=None`` stands for the main budget.
    """
    from leaderboard.zoo.autoattack_eval import THREATS, autoattack_accuracy

    device = resolve_device(args.device)
    x_np, y_np = bundled_cifar10(args.n)  # class by class in turn, so any n is balanced
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    started = time.perf_counter()
    for entry, norm, eps in jobs:
        if not weights_path(entry.name, args.out).exists():
            print(f"{entry.name}: not trained yet, skipped")
            continue
        if eps is None:
            path = args.out / "model_info" / "cifar10" / norm / f"{entry.name}.json"
            tag, stage = "", "attack"
        else:
            path = curve_path(args.out, entry.name, norm, eps)
            tag, stage = f"_eps{budget_label(norm, eps)}", "curve"
        if path.exists():
            continue
        if time.perf_counter() - started > args.time_budget:
            print(f"time budget of {args.time_budget:.0f} s reached; rerun to continue")
            return
        model = load_model(entry.name, args.out).to(device)
        state_path = (
            args.out / "attack_state" / norm / f"{entry.name}{tag}_n{args.n}_seed{args.seed}.json"
        )
        result = autoattack_accuracy(model, x, y, norm=norm, eps=eps, device=device, seed=args.seed,
                                     state_path=state_path)
        seconds, clean = result["seconds"], result["clean_acc"]
        training = json.loads(weights_path(entry.name, args.out).with_suffix(".json").read_text())
        write_atomic(path, {
            "name": entry.name, "architecture": entry.architecture, "dataset": "cifar10",
            "threat_model": norm, "eps": result["eps"], "clean_acc": clean,
            "autoattack_acc": result["autoattack_acc"], "n_examples": result["n"],
            "attack_seconds": round(seconds, 1), "attack": "pyautoattack standard",
            "attack_device": device_name(device), "attack_precision": result["precision"],
            "training": {k: training[k] for k in ("regime", "epochs", "train_seconds", "device")},
            "command": f"python -m leaderboard.zoo.build {stage} --models {entry.name} --n "
            f"{args.n} --norms {norm}",
        })
        budget = f"{eps if eps is not None else THREATS[norm]:.4g}"
        print(f"{entry.name} {norm} {budget}: clean {clean:.1f}%, AutoAttack "
              f"{result['autoattack_acc']:.1f}% ({seconds:.0f} s)", flush=True)


def build_models(entries: list[ZooModel], args: argparse.Namespace) -> None:
    """Train, then attack, one model at a time: each model is finished before the next starts."""
    for entry in entries:
        train_models([entry], args)
        attack_models([entry], args)


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m leaderboard.zoo.build`` (see the module docstring); return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["train", "attack", "all", "curve"])
    parser.add_argument("--models", nargs="*", default=None, help=f"subset of: {' '.join(ZOO)}")
    parser.add_argument("--out", type=Path, default=ZOO_DIR,
                        help="zoo directory (default: leaderboard/zoo)")
    parser.add_argument(
        "--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--time-budget", type=float, default=float("inf"),
                        help="seconds before stopping")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override every entry's epochs (smoke runs)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit-per-class", type=int, default=None,
                        help="training images per class (smoke runs)")
    parser.add_argument("--n", type=int, default=500,
                        help="test images to attack (at most 1000, class-balanced)")
    parser.add_argument("--norms", nargs="+", default=["Linf", "L2"], choices=["Linf", "L2"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = set(args.models or []) - set(ZOO)
    if unknown:
        parser.error(f"unknown zoo models {sorted(unknown)}; choose from {' '.join(ZOO)}")
    default = CURVE_MODELS if args.stage == "curve" else BUILD_ORDER
    entries = [ZOO[name] for name in (args.models or default)]
    stages = {"train": train_models, "attack": attack_models, "all": build_models,
              "curve": attack_curve}
    stages[args.stage](entries, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
