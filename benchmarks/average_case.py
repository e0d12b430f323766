"""Average-case robustness estimators against Monte Carlo with 10,000 samples: error and speed.

    python benchmarks/average_case.py [--n 6] [--sigmas 0.02 0.05] [--models NAME ...] [--n-classes
    100]

For each CIFAR-10 model (the bundled ``examples/models/*.pt``, as ART ``PyTorchClassifier``s
with ``preprocessing=(mean, std)``, and every trained zoo model under
``leaderboard/zoo/models/``) and each noise level σ (in [0, 1] pixel units), on the first ``n``
bundled test images (class by class in turn), it times in one run:

* ``mc``: Monte Carlo with 10,000 noisy copies per image (the reference, with its Wilson interval);
* ``taylor``, ``mmse`` (10 copies), ``taylor_mvs``, ``mmse_mvs``: the linearised estimators.

It prints each estimator's mean and largest absolute error against the Monte Carlo value, the
Spearman correlation of its per-image values with Monte Carlo (the vulnerability ranking), its
CPU and wall time and its speed-up over Monte Carlo (by CPU time of this process, which other
jobs on a shared machine do not stretch; the fast estimators' time is the median of 3 runs,
Monte Carlo's a single run), then pooled figures per σ. Monte Carlo costs 10,000
forward passes per image, so ``n`` is small by default (about 5 minutes on two CPU cores for
the two bundled models). A last section ranks ``--n-classes`` images by the cheapest estimator
that tracked Monte Carlo best and prints per-class averages (robustness bias across classes).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from art_fim import AverageCaseRobustness, class_averages, rank_agreement, vulnerability_ranking
from leaderboard.data import bundled_cifar10
from leaderboard.small_cnn import load_classifier
from leaderboard.zoo.cifar_zip import CLASSES

ROOT = Path(__file__).resolve().parent.parent

ESTIMATORS = ("taylor", "mmse", "taylor_mvs", "mmse_mvs")


def zoo_classifiers() -> dict[str, object]:
    """Every zoo model whose weights are present, as an ART classifier on [0, 1] inputs."""
    from art.estimators.classification import PyTorchClassifier

    from leaderboard.zoo import ZOO, load_model
    from leaderboard.zoo.weights import weights_path

    out = {}
    for name in ZOO:
        if weights_path(name).exists():
            out[f"zoo/{name}"] = PyTorchClassifier(
                load_model(name), loss=nn.CrossEntropyLoss(), input_shape=(3, 32, 32),
                nb_classes=10,
                clip_values=(0.0, 1.0), device_type="cpu",
            )
    return out


def timed(classifier, x: np.ndarray, sigma: float, method: str, repeats: int = 1, **kwargs):
    """Run one estimator; return its CPU seconds, wall seconds and estimate.

    CPU seconds are this process's, over all threads.
    CPU time is what the speed-ups use: on a shared machine other jobs stretch wall time
    unevenly between the two sides, much less the work this process does. With ``repeats > 1``
    the median of the repeats is returned (the estimate is the same each time: same seeds).
    """
    metric = AverageCaseRobustness(classifier, sigma, method=method, verbose=False, **kwargs)
    cpu_times, wall_times = [], []
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        result = metric.estimate(x)
        cpu_times.append(time.process_time() - cpu)
        wall_times.append(time.perf_counter() - wall)
    return float(np.median(cpu_times)), float(np.median(wall_times)), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=6,
                        help="test images per model (Monte Carlo: 10,000 passes each)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.02, 0.05])
    parser.add_argument("--mc-samples", type=int, default=10_000)
    parser.add_argument(
        "--models", nargs="*", help="restrict to these model names (default: all found)"
    )
    parser.add_argument("--n-classes", type=int, default=100,
                        help="images for the per-class section (0: skip)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each fast estimator (median)")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    classifiers = {
        p.stem: load_classifier(p) for p in sorted((ROOT / "examples" / "models").glob("*.pt"))
    }
    classifiers.update(zoo_classifiers())
    if args.models:
        classifiers = {k: v for k, v in classifiers.items() if k in args.models}
    x, _ = bundled_cifar10(args.n)
    print(f"Average-case robustness on {len(classifiers)} CIFAR-10 models, n = {len(x)} test "
          f"images each; reference: Monte Carlo with {args.mc_samples} samples")
    print(f"cpu: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    # Warm-up: first-call allocations and kernel choices stay out of every timed call.
    warm = next(iter(classifiers.values()))
    for method in ("mc", *ESTIMATORS):
        AverageCaseRobustness(warm, 0.05, method=method, num_samples=20 if method == "mc" else None,
                              verbose=False).estimate(x[:1])

    header = (f"{'model':<24}{'σ':>6}{'estimator':>12}{'MAE':>9}{'max err':>9}{'spearman':>10}"
              f"{'cpu s':>9}{'wall s':>9}{'speed-up':>10}")
    print("\n" + header)
    pooled: dict[tuple[float, str], list[np.ndarray]] = {}
    for name, classifier in classifiers.items():
        for sigma in args.sigmas:
            t_mc, wall_mc, mc = timed(classifier, x, sigma, "mc", num_samples=args.mc_samples)
            half_width = float(np.mean(mc.upper - mc.lower) / 2)
            print(
                f"{name:<24}{sigma:>6.3g}{'mc':>12}{'±' + format(half_width, '.4f'):>9}"
                f"{'':>9}{'':>10}"
                f"{t_mc:>9.1f}{wall_mc:>9.1f}{1.0:>10.1f}"
            )
            pooled.setdefault((sigma, "mc"), []).append(mc.values)
            for method in ESTIMATORS:
                seconds, wall, est = timed(classifier, x, sigma, method, repeats=args.repeats)
                agreement = rank_agreement(est.values, mc.values)
                err = np.abs(est.values - mc.values)
                print(
                    f"{'':<24}{'':>6}{method:>12}{agreement.mean_absolute_error:>9.4f}{err.max():>9.4f}"
                    f"{agreement.spearman:>10.3f}{seconds:>9.2f}{wall:>9.2f}{t_mc / seconds:>10.0f}"
                )
                pooled.setdefault((sigma, method), []).append(est.values)
                pooled.setdefault((sigma, method + "_seconds"), []).append(np.array([seconds]))
            pooled.setdefault((sigma, "mc_seconds"), []).append(np.array([t_mc]))

    print(f"\nPooled over models ({len(classifiers)} × {len(x)} images):")
    print(f"{'σ':>6}{'estimator':>12}{'MAE':>9}{'spearman':>10}{'speed-up':>10}")
    best: dict[float, str] = {}
    for sigma in args.sigmas:
        reference = np.concatenate(pooled[(sigma, "mc")])
        t_mc = float(np.sum(pooled[(sigma, "mc_seconds")]))
        scores = {}
        for method in ESTIMATORS:
            agreement = rank_agreement(np.concatenate(pooled[(sigma, method)]), reference)
            speedup = t_mc / float(np.sum(pooled[(sigma, method + "_seconds")]))
            scores[method] = agreement.mean_absolute_error
            print(f"{sigma:>6.3g}{method:>12}{agreement.mean_absolute_error:>9.4f}{agreement.spearman:>10.3f}"
                  f"{speedup:>10.0f}")
        best[sigma] = min(scores, key=scores.get)
    print(
        "'speed-up': Monte Carlo's CPU time over the estimator's, both measured in this run on the "
        "same images;\n'mc' MAE column: mean half-width of its 95% Wilson interval."
    )

    if args.n_classes > 0:
        sigma = max(args.sigmas)
        method = best[sigma]
        xc, yc = bundled_cifar10(args.n_classes)
        print(f"\nRobustness bias across classes: mean p_σ per true class, σ = {sigma:g}, {method} "
              f"(lowest pooled MAE at this σ), {len(xc)} images")
        print(f"{'model':<24}" + "".join(f"{c[:6]:>8}" for c in CLASSES)
              + f"{'cpu s':>7}  most vulnerable (index, class, p_σ)")
        for name, classifier in classifiers.items():
            seconds, _, est = timed(classifier, xc, sigma, method)
            means, _ = class_averages(est.values, yc, num_classes=10)
            worst = vulnerability_ranking(est.values)[:3]
            listing = ", ".join(f"{i} {CLASSES[yc[i]]} {est.values[i]:.2f}" for i in worst)
            print(f"{name:<24}" + "".join(f"{m:>8.3f}" for m in means)
                  + f"{seconds:>7.1f}  {listing}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
