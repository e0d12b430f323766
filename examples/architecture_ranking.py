"""Rank architectures by their certified bound, and check the ranking against measured λ_max.

    python examples/architecture_ranking.py [--n 100] [--seeds 1] [--zoo-dir leaderboard/zoo]
        [--out results/ranking]

The first paper (https://arxiv.org/abs/2606.04767) bounds ``λ_max(F(x)) ≤ min(½, 2(1 − p_max))·L²``
with ``L`` composed from the architecture — products for plain stacks (VGG), ``Π(1 + L_i)`` for
residual ones (ResNet), ``Π√(1 + L_i²)`` for dense ones (DenseNet), local bounds only for
attention (ViT) — and ranks architectures by it. This example computes ``L`` on real instances
(``art_fim.lipschitz_bound``) for each family at several depths and widths, at random
initialisation (``--seeds`` seeds each) and for the trained models at hand (the bundled CNNs,
and every zoo model under ``--zoo-dir``), measures the exact ``λ_max(F(x))`` and ``‖J(x)‖₂`` on
``--n`` bundled CIFAR-10 test images, and prints:

* per configuration: ``L``, the measured ``λ_max`` distribution (median, 5–95%), the largest
  ``‖J(x)‖₂``, and how loose each bound is (``L / max‖J‖``; certified Fisher bound / ``λ_max``);
* Spearman rank correlations between the bound and the measurements: does ranking architectures
  by ``L`` rank them by their measured sensitivity?
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from art_fim.lipschitz import certified_fisher_bound, lipschitz_bound, local_norms
from leaderboard.data import bundled_cifar10
from leaderboard.zoo import architectures as zoo

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "examples" / "models"  # the bundled small CNNs


def torchvision_resnet(blocks: list[int]) -> Callable[[], nn.Module]:
    """The torchvision ResNet with BasicBlocks, behind the zoo models' normalisation.

    ``blocks`` per stage: [1,1,1,1] is ResNet-10, [2,2,2,2] ResNet-18, [3,4,6,3] ResNet-34.
    """

    def build() -> nn.Module:
        from torchvision.models.resnet import BasicBlock, ResNet

        return nn.Sequential(zoo.Normalize(), ResNet(BasicBlock, blocks, num_classes=10))

    return build


# (family, configuration, what varies, builder)
CONFIGS: list[tuple[str, str, str, Callable[[], nn.Module]]] = [
    ("VGG", "2 stages (16,32)", "depth", lambda: zoo.vgg(widths=(16, 32))),
    ("VGG", "3 stages (16,32,64)", "depth", lambda: zoo.vgg(widths=(16, 32, 64))),
    ("VGG", "4 stages (16..128)", "depth/width", lambda: zoo.vgg()),
    ("VGG", "4 stages (8..64)", "width", lambda: zoo.vgg(widths=(8, 16, 32, 64))),
    ("VGG", "4 stages (32..256)", "width", lambda: zoo.vgg(widths=(32, 64, 128, 256))),
    ("ResNet", "ResNet-9 width 4", "width", lambda: zoo.resnet9(width=4)),
    ("ResNet", "ResNet-9 width 8", "width", lambda: zoo.resnet9(width=8)),
    ("ResNet", "ResNet-9 width 16", "width", lambda: zoo.resnet9(width=16)),
    ("ResNet", "ResNet-10 (tv)", "depth", torchvision_resnet([1, 1, 1, 1])),
    ("ResNet", "ResNet-18 (tv)", "depth", torchvision_resnet([2, 2, 2, 2])),
    ("ResNet", "ResNet-34 (tv)", "depth", torchvision_resnet([3, 4, 6, 3])),
    ("DenseNet", "3×2 layers, k=12", "depth", lambda: zoo.densenet(growth=12, layers_per_block=2)),
    ("DenseNet", "3×4 layers, k=12", "depth/width",
     lambda: zoo.densenet(growth=12, layers_per_block=4)),
    ("DenseNet", "3×6 layers, k=12", "depth", lambda: zoo.densenet(growth=12, layers_per_block=6)),
    ("DenseNet", "3×4 layers, k=6", "width", lambda: zoo.densenet(growth=6, layers_per_block=4)),
    ("DenseNet", "3×4 layers, k=24", "width", lambda: zoo.densenet(growth=24, layers_per_block=4)),
    ("ViT", "depth 1, dim 64", "depth", lambda: zoo.ViT(depth=1)),
    ("ViT", "depth 2, dim 64", "depth", lambda: zoo.ViT(depth=2)),
    ("ViT", "depth 4, dim 64", "depth/width", lambda: zoo.ViT(depth=4)),
    ("ViT", "depth 4, dim 32", "width", lambda: zoo.ViT(depth=4, dim=32, mlp_dim=64)),
    ("ViT", "depth 4, dim 128", "width", lambda: zoo.ViT(depth=4, dim=128, mlp_dim=256)),
]


def measure(model: nn.Module | object, x: np.ndarray, bound: float) -> dict[str, float]:
    """Exact λ_max and ‖J‖ on ``x`` against the bound: summaries and tightness ratios."""
    jacobian, fisher = local_norms(model, x)
    certified = certified_fisher_bound(model, x, bound)
    return {
        "bound": bound,
        "lambda_median": float(np.median(fisher)),
        "lambda_q05": float(np.quantile(fisher, 0.05)),
        "lambda_q95": float(np.quantile(fisher, 0.95)),
        "jacobian_max": float(jacobian.max()),
        "bound_over_jacobian": bound / float(jacobian.max()),
        "fisher_ratio_median": float(np.median(certified / np.maximum(fisher, 1e-300))),
    }


def random_init_rows(x: np.ndarray, seeds: int) -> list[dict]:
    rows = []
    for family, name, varies, build in CONFIGS:
        per_seed = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = build().eval()
            start = time.perf_counter()
            bound = lipschitz_bound(model, (3, 32, 32), input_box=(0.0, 1.0))
            seconds = time.perf_counter() - start
            per_seed.append({**measure(model, x, bound.value), "seconds": seconds,
                             "local": bound.local})
        row = {k: float(np.exp(np.mean(np.log([r[k] for r in per_seed])))) for k in per_seed[0]
               if k != "local"}
        row.update(family=family, name=name, varies=varies, local=per_seed[0]["local"],
                   params=sum(p.numel() for p in build().parameters()))
        rows.append(row)
        print(f"  {family:<9}{name:<22} L = {row['bound']:.3g}  ({row['seconds']:.1f} s per bound)",
              flush=True)
    return rows


def trained_rows(x: np.ndarray, zoo_dir: Path) -> list[dict]:
    """The bundled CNNs (ART classifiers) and every trained zoo model under ``zoo_dir``."""
    from leaderboard.small_cnn import load_classifier
    from leaderboard.zoo import ZOO, load_model
    from leaderboard.zoo.weights import weights_path

    rows = []
    for weights in sorted(MODELS.glob("*.pt")):
        classifier = load_classifier(weights)
        bound = lipschitz_bound(classifier)
        rows.append({**measure(classifier, x, bound.value), "family": "CNN (bundled)",
                     "name": weights.stem,
                     "local": bound.local, "autoattack_linf": float("nan")})
    for name, entry in ZOO.items():
        if not weights_path(name, zoo_dir).exists():
            continue
        model = load_model(name, zoo_dir)
        bound = lipschitz_bound(model, (3, 32, 32), input_box=(0.0, 1.0))
        info = zoo_dir / "model_info" / "cifar10" / "Linf" / f"{name}.json"
        autoattack = (
            json.loads(info.read_text())["autoattack_acc"] if info.exists() else float("nan")
        )
        rows.append({**measure(model, x, bound.value), "family": f"{entry.architecture} (zoo)",
                     "name": name,
                     "local": bound.local, "autoattack_linf": float(autoattack)})
    return rows


def _interval(low: float, high: float) -> str:
    return f"[{low:.2g}, {high:.2g}]"


def render(rows: list[dict], trained: bool = False) -> str:
    head = (f"{'family':<16}{'configuration':<22}{'L':>10}{'λmax median':>13}{'λmax 5–95%':>22}"
            f"{'max‖J‖':>10}{'L/max‖J‖':>10}{'Fisher bd/λ':>12}")
    head += f"{'AA ℓ∞ %':>9}" if trained else ""
    lines = [head]
    for r in rows:
        mark = "*" if r["local"] else " "
        line = (
            f"{r['family']:<16}{r['name']:<22}{r['bound']:>9.3g}{mark}{r['lambda_median']:>13.3g}"
            f"{_interval(r['lambda_q05'], r['lambda_q95']):>22}"
            f"{r['jacobian_max']:>10.3g}{r['bound_over_jacobian']:>10.3g}{r['fisher_ratio_median']:>12.3g}"
        )
        if trained:
            aa = r["autoattack_linf"]
            line += f"{'—' if np.isnan(aa) else format(aa, '.1f'):>9}"
        lines.append(line)
    return "\n".join(lines)


def rank_report(rows: list[dict], trained: list[dict]) -> str:
    """Spearman correlations: does the bound rank what is measured?"""
    out = []

    def rho(a: list[float], b: list[float]) -> str:
        if len(a) < 3:
            return "n/a (fewer than 3)"
        result = spearmanr(a, b)
        return f"ρ = {result.statistic:+.2f} (p = {result.pvalue:.2g}, n = {len(a)})"

    cnn = [r for r in rows if not r["local"]]
    out.append("bound vs median λ_max, all random-init CNN configurations:   "
               + rho([r["bound"] for r in cnn], [r["lambda_median"] for r in cnn]))
    out.append("bound vs max ‖J‖, all random-init CNN configurations:        "
               + rho([r["bound"] for r in cnn], [r["jacobian_max"] for r in cnn]))
    for family in dict.fromkeys(r["family"] for r in rows):
        fam = [r for r in rows if r["family"] == family]
        out.append(f"  within {family:<9} bound vs median λ_max: "
                   + rho([r["bound"] for r in fam], [r["lambda_median"] for r in fam]))
    order = sorted({r["family"] for r in cnn}, key=lambda f: np.median([r["bound"] for r in cnn
                                                                        if r["family"] == f]))
    measured = sorted({r["family"] for r in cnn},
                      key=lambda f: np.median([r["lambda_median"] for r in cnn
                                               if r["family"] == f]))
    out.append(f"families by median bound:    {' < '.join(order)}")
    out.append(f"families by median λ_max:    {' < '.join(measured)}")
    zoo_rows = [r for r in trained if not np.isnan(r["autoattack_linf"])]
    if zoo_rows:
        out.append("trained zoo: bound vs AutoAttack ℓ∞ accuracy:      "
                   + rho([r["bound"] for r in zoo_rows], [r["autoattack_linf"] for r in zoo_rows]))
        out.append("trained zoo: median λ_max vs AutoAttack ℓ∞ accuracy: "
                   + rho([r["lambda_median"] for r in zoo_rows],
                         [r["autoattack_linf"] for r in zoo_rows]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="bundled test images (at most 1000)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="random initialisations per configuration")
    parser.add_argument("--zoo-dir", type=Path, default=ROOT / "leaderboard" / "zoo")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "ranking")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    x, _ = bundled_cifar10(args.n)
    print(
        f"Random initialisation ({args.seeds} seeds each; values are geometric means over seeds):"
    )
    rows = random_init_rows(x, args.seeds)
    trained = trained_rows(x, args.zoo_dir)
    print(f"\nRandom initialisation, {args.n} bundled CIFAR-10 test images")
    print(render(rows))
    print(f"\nTrained models, {args.n} bundled CIFAR-10 test images")
    print(render(trained, trained=True))
    print(
        "\n* local bound: holds for inputs in the pixel box [0, 1] only (attention has no global "
        "constant)."
    )
    print(
        "L/max‖J‖: the bound over the largest exact local Lipschitz constant seen (≥ 1; 1 is "
        "tight)."
    )
    print("Fisher bd/λ: median over inputs of min(½, 2(1 − p_max))·L² / λ_max(F(x)) (≥ 1).\n")
    print(rank_report(rows, trained))
    print(f"\n{time.perf_counter() - start:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ranking.json").write_text(json.dumps({"random_init": rows, "trained": trained},
                                                      indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
