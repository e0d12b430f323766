"""Tsipras et al.'s (2019) robustness–accuracy trade-off, reproduced with ART, measured by art_fim.

    python examples/tradeoff_tsipras.py [--d 100] [--p 0.95] [--n-train 10000] [--n-test 10000]

On the distribution of "Robustness May Be at Odds with Accuracy" (https://arxiv.org/abs/1805.12152):
a robust but only p-accurate feature x₁ and d weak features N(ηy, 1), η = 3/√d, it

1. trains a linear model normally (ART ``PyTorchClassifier.fit``) and one adversarially (ART
   ``AdversarialTrainer`` with ℓ∞ ``ProjectedGradientDescent`` at ε = 2η);
2. reports each model's standard and ℓ∞ robust accuracy at ε = 2η, both in closed form
   (exact for linear models) and measured with ART's PGD on fresh samples, beside the bound of
   Theorem 2.1 — the trade-off, numerically;
3. reports, side by side, the input-Fisher metric λ_max(F) (ℓ2), its ℓ∞ variant
   max_{‖u‖∞≤1} uᵀFu, and the average-case robustness p_σ (Gaussian noise, σ = ε), and explains
   why the ℓ2 Fisher ranks the two models the other way round from the ℓ∞ attack.

Runs on a CPU in about a minute.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from art.attacks.evasion import ProjectedGradientDescent

from art_fim import average_case_robustness, fisher_linf_bounds, fisher_spectral_norm
from art_fim.tradeoff import (
    TsiprasDistribution,
    class_indices,
    effective_weights,
    train_linear_classifier,
)


def pgd_accuracy(classifier, x: np.ndarray, y: np.ndarray, eps: float) -> float:
    """Accuracy under ART's ℓ∞ PGD (ε/4 steps, 10 iterations)."""
    attack = ProjectedGradientDescent(
        classifier, norm=np.inf, eps=eps, eps_step=eps / 4, max_iter=10, num_random_init=0,
        batch_size=4096, verbose=False,
    )
    x_adv = attack.generate(x, class_indices(y))
    return float((classifier.predict(x_adv).argmax(1) == class_indices(y)).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=100, help="number of weak features")
    parser.add_argument("--p", type=float, default=0.95, help="accuracy of the robust feature x₁")
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--n-metric", type=int, default=1_000,
                        help="test points for the Fisher and p_σ columns")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    dist = TsiprasDistribution(p=args.p, d=args.d)
    eps = dist.critical_eps
    sigma = eps
    x_train, y_train = dist.sample(args.n_train, seed=args.seed)
    x_test, y_test = dist.sample(args.n_test, seed=args.seed + 1)
    x_metric = x_test[: args.n_metric]
    print(f"Tsipras et al. distribution: p = {dist.p}, d = {dist.d}, η = 3/√d = {dist.eta:.3f}; "
          f"ℓ∞ threat ε = 2η = {eps:.3f}; {args.n_train} training and {args.n_test} test samples")

    print("\nReference classifiers (closed form)")
    print(f"{'classifier':<26}{'standard acc':>14}{'robust acc':>12}{'Thm 2.1 bound':>15}")
    for name, (w, b) in (
        ("Bayes (logistic w*)", dist.bayes_classifier()),
        ("f_avg = sign(mean x₂…)", dist.averaging_classifier()),
        ("f_rob = sign(x₁)", dist.robust_feature_classifier()),
    ):
        clean = dist.accuracy(w, b)
        print(
            f"{name:<26}{clean:>14.4f}{dist.accuracy(w, b, eps):>12.4f}"
            f"{dist.theorem_2_1_bound(clean):>15.4f}"
        )

    models = {}
    for name, train_eps in (("standard", None), ("adversarial", eps)):
        start = time.perf_counter()
        models[name] = train_linear_classifier(
            x_train, y_train, adversarial_eps=train_eps, epochs=args.epochs, batch_size=200,
            pgd_steps=5, seed=args.seed
        )
        print(f"trained the {name} model in {time.perf_counter() - start:.1f} s")

    rows = {}
    for name, classifier in models.items():
        w, b = effective_weights(classifier.model)
        clean, robust = dist.accuracy(w, b), dist.accuracy(w, b, eps)
        taylor = average_case_robustness(classifier, x_metric, sigma, method="taylor",
                                         verbose=False)
        mc = average_case_robustness(classifier, x_metric, sigma, method="mc", num_samples=1000,
                                     verbose=False)
        logits = x_metric.astype(np.float64) @ w + b
        q = 1 / (1 + np.exp(-np.abs(logits)))
        rows[name] = {
            "w": w,
            "clean": clean,
            "clean_sampled": float((classifier.predict(x_test).argmax(1)
                                    == class_indices(y_test)).mean()),
            "robust": robust,
            "robust_pgd": pgd_accuracy(classifier, x_test, y_test, eps),
            "bound": dist.theorem_2_1_bound(clean),
            "fisher": float(np.mean(fisher_spectral_norm(classifier, x_metric, method="exact",
                                                         verbose=False))),
            "fisher_linf": float(np.mean(fisher_linf_bounds(classifier, x_metric)[1])),
            "p_sigma": float(taylor.mean()),
            "p_sigma_mc": float(mc.mean()),
            "confidence": float(np.mean(q * (1 - q))),
        }

    print("\nTrained models: accuracy (closed form | sampled with ART) and Theorem 2.1")
    print(
        f"{'model':<13}{'standard acc':>20}{'ℓ∞ robust acc @2η':>22}{'Thm 2.1 bound':>15}"
        f"{'holds':>7}"
    )
    for name, r in rows.items():
        holds = "yes" if r["robust"] <= r["bound"] + 1e-12 else "NO"
        print(f"{name:<13}{r['clean']:>10.4f} | {r['clean_sampled']:.4f}{r['robust']:>12.4f} | "
              f"{r['robust_pgd']:.4f}{r['bound']:>15.4f}{holds:>7}")

    print(f"\nSensitivity, mean over {len(x_metric)} test points (p_σ at σ = ε = {sigma:.3f}: "
          "Taylor, exact for "
          "linear models | Monte Carlo, 1,000 draws)")
    print(
        f"{'model':<13}{'λ_max F (ℓ2)':>14}{'ℓ∞ Fisher':>12}{'p_σ':>18}{'E q(1−q)':>11}"
        f"{'‖w‖₂²':>9}{'‖w‖₁²':>10}"
    )
    for name, r in rows.items():
        w = r["w"]
        print(f"{name:<13}{r['fisher']:>14.4g}{r['fisher_linf']:>12.4g}{r['p_sigma']:>9.4f} | "
              f"{r['p_sigma_mc']:.4f}"
              f"{r['confidence']:>11.4g}{np.dot(w, w):>9.3g}{np.abs(w).sum() ** 2:>10.3g}")

    std, adv = rows["standard"], rows["adversarial"]
    l2 = {name: float(np.dot(r["w"], r["w"])) for name, r in rows.items()}
    l1 = {name: float(np.abs(r["w"]).sum() ** 2) for name, r in rows.items()}
    calm = adv["confidence"] / std["confidence"]
    print(f"""
Reading the tables (notes on the Fisher metric, §3.4):
- The trade-off: the standard model is {std['clean']:.1%} accurate but {std['robust']:.1%} robust at
  ℓ∞ ε = 2η; the adversarial one is {adv['clean']:.1%} accurate and still {adv['robust']:.1%}
  robust. Theorem 2.1 caps any model's robust accuracy at p/(1−p)·(1 − accuracy); both trained
  models sit under that cap.
- The ℓ2 Fisher ranks them opposite to the attack: λ_max F is {adv['fisher'] / std['fisher']:.1f}×
  larger for the adversarial model. For a logistic model F(x) = q(1−q)·wwᵀ, so λ_max = q(1−q)·‖w‖₂².
  The standard model's ‖w‖₂² is {l2['standard'] / l2['adversarial']:.1f}× larger, but it is far more
  confident (mean q(1−q) {std['confidence']:.2g} against {adv['confidence']:.2g}, {calm:.1f}×
  smaller): confident points have a small Fisher even when the model is steep, so confidence hides
  the sensitivity.
- An ℓ∞ adversary moves every coordinate by ε and gains ε‖w‖₁, not ε‖w‖₂. The ℓ∞ variant
  max_{{‖u‖∞≤1}} uᵀFu = q(1−q)·‖w‖₁² counts that: the standard model spreads its weight over d
  features, so its ‖w‖₁² is {l1['standard'] / l1['adversarial']:.0f}× the adversarial model's
  (‖w‖₁²/‖w‖₂² = {l1['standard'] / l2['standard']:.0f} against {l1['adversarial'] /
  l2['adversarial']:.1f}; at most d + 1 = {dist.input_dim}), far more than its {calm:.1f}× smaller
  q(1−q) can offset, and the ranking flips to the attack's: the standard model is
  {std['fisher_linf'] / adv['fisher_linf']:.1f}× more sensitive.
- Gaussian noise has no preferred direction: it moves the logit wᵀx + b by N(0, σ²‖w‖₂²), so
  p_σ = Φ(|wᵀx + b| / (σ‖w‖₂)) depends on the ℓ2 distance to the boundary. Average-case
  robustness sides with the ℓ2 view, not with the attack: the standard model survives noise
  at σ = ε (p_σ {std['p_sigma']:.3f}) better than the adversarial one ({adv['p_sigma']:.3f}).
  Robustness to random noise and to a worst-case ℓ∞ perturbation are different properties.
So neither λ_max(F) nor p_σ should be expected to reproduce an ℓ∞ ordering: compare models with the
metric that matches the threat, or report both.""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
