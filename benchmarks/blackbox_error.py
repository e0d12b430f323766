"""Error of the query-only (black-box) input-Fisher estimator against the exact white-box value.

    python benchmarks/blackbox_error.py [--n 10] [--budgets 100 400 1000 4000] [--sizes 784 3072
        12288] [--coordinate-n 3] [--trained-n 10] [--trained-budgets 400 4000] [--seed 0] [--device
        cpu]

Part 1, the input dimension: one CNN (seeded random initialisation, three stride-2 ReLU
convolutions, adaptive average pooling, logits sharpened ×60 so that predictions are confident; a
1-channel input is repeated to 3 channels) in float64 at d = 784 (1×28×28), 3072 (3×32×32) and 12288
(3×64×64). Inputs are the bundled CIFAR-10 test images: grey and area-resized to 28×28, as they are,
and bilinearly upsampled to 64×64; queries and scores are float64. Part 2: the bundled trained CNN
(``examples/models/small_cnn_standard.pt``) on the real 32×32 images, queried as a float32
model (float32 scores, so the default step is the float32 one); its exact value is computed in
float64.

For each query budget per input the table gives the median and 90th percentile over inputs of
``|λ̂ − λ|/λ`` against ``FisherInformationMetric(method="exact")``, the median trace error, and
seconds per input; "coordinate" is the ``2d + 3``-query mode that differences along every pixel.
Beside them, the first paper's reference black-box estimator (the largest ``vᵀFv`` over 100
random unit directions, ``v`` by the same central differences: 201 queries) and its median ratio
to the exact ``λ_max``. No query leaves [0, 1]. A budget at or above ``2d + 3`` runs in
coordinate mode ("auto"). Rows are printed as they are measured; progress bars (one per
estimate, over inputs) go to stderr.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from art_fim import BlackBoxFisher, FiniteDifferenceJacobian, FisherInformationMetric
from art_fim.hutchinson import fisher_quadratic_form
from leaderboard.data import BUNDLED_CIFAR10, CIFAR10_MEAN, CIFAR10_STD
from leaderboard.small_cnn import small_cnn

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "examples" / "models" / "small_cnn_standard.pt"
SHAPES = {784: (1, 28, 28), 3072: (3, 32, 32), 12288: (3, 64, 64)}


class NormalizedImageModel(nn.Module):
    """[0, 1] pixels -> CIFAR normalisation -> a CNN; 1-channel inputs are repeated to 3."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR10_STD).reshape(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.body((x.expand(-1, 3, -1, -1) - self.mean) / self.std)


def random_cnn(seed: int) -> nn.Module:
    """The seeded random CNN of part 1, float64, eval mode."""
    torch.manual_seed(seed)
    body = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(512, 10),
    )
    with torch.no_grad():
        body[-1].weight.mul_(60.0)
    return NormalizedImageModel(body).double().eval()


def trained_cnn() -> nn.Module:
    """The bundled trained small CNN, float32, eval mode."""
    body = small_cnn()
    body.load_state_dict({k: v.float() for k, v in torch.load(WEIGHTS, weights_only=True).items()})
    return NormalizedImageModel(body).float().eval()


class Predictor:
    """A query-only view of a module, with ``predict`` and nothing else.

    ``predict`` takes [0, 1] inputs in the module's dtype.
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...],
                 device: torch.device) -> None:
        self.model = model.to(device)
        self.input_shape = input_shape
        self.clip_values = (0.0, 1.0)
        self.device = device

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:  # noqa: D102
        out = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                batch = torch.as_tensor(x[start : start + batch_size], device=self.device)
                batch = batch.to(next(self.model.parameters()).dtype)
                out.append(self.model(batch).cpu().numpy())
        return np.concatenate(out)


def images(dim: int, n: int) -> np.ndarray:
    """``n`` CIFAR-10 test images at the shape of ``dim``, float64 in [0, 1].

    The images take one class after the other.
    """
    data = np.load(BUNDLED_CIFAR10)
    order = np.arange(1000).reshape(10, 100).T.reshape(-1)[:n]  # classes interleaved
    x = torch.from_numpy(data["x"][order].astype(np.float64) / 255)
    if dim == 784:
        x = F.interpolate(x.mean(1, keepdim=True), size=(28, 28), mode="area")
    elif dim == 12288:
        x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
    return x.clamp(0.0, 1.0).numpy()


def reference_estimate(predictor: Predictor, x: np.ndarray, seed: int,
                       num: int = 100) -> np.ndarray:
    """max_j v_jᵀ F v_j over ``num`` random unit directions (the reference black-box value)."""
    jac = FiniteDifferenceJacobian(predictor.predict, x, clip_values=predictor.clip_values,
                                   dtype="float64")
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((len(x), num, x[0].size))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    jv = torch.from_numpy(jac.directional_derivatives(v))
    p = jac.probs[:, None, :].expand(-1, num, -1).reshape(-1, jac.num_classes)
    return fisher_quadratic_form(jv.reshape(-1, jac.num_classes),
                                 p).reshape(len(x), num).max(1).values.numpy()


def run(label: str, model: nn.Module, dim: int, x: np.ndarray, budgets: list[int],
        coordinate_n: int,
        seed: int, device: torch.device) -> list[str]:
    """Rows of the table for one model and input size."""
    shape = tuple(x.shape[1:])
    predictor = Predictor(model, shape, device)
    exact_metric = FisherInformationMetric(copy.deepcopy(model).double(), method="exact",
                                           batch_size=32, verbose=True)
    lam, trace = exact_metric(x), exact_metric.trace(x).values
    rows = []
    plans = [(b, "auto") for b in budgets] + ([(2 * dim + 3, "coordinate")] if coordinate_n > 0
                                              else [])
    for budget, directions in plans:
        xs = x[:coordinate_n] if directions == "coordinate" else x
        fisher = BlackBoxFisher(predictor, max_queries=budget, directions=directions,
                                dtype="float64",
                                seed=seed, batch_size=1024, verbose=True)
        start = time.perf_counter()
        est = fisher.estimate_many(xs)
        seconds = (time.perf_counter() - start) / len(xs)
        err = np.abs(est["spectral_norm"].values / lam[: len(xs)] - 1)
        err_tr = np.abs(est["trace"].values / trace[: len(xs)] - 1)
        name = "coordinate" if directions == "coordinate" else str(budget)
        rows.append(
            f"| {label} | {dim} | {len(xs)} | {name} | {int(est['trace'].queries.max())} | "
            f"{np.median(err):.2e} | {np.quantile(err, 0.9):.2e} | {np.median(err_tr):.2e} | "
            f"{seconds:.2f} |"
        )
        print(rows[-1], flush=True)
    ratio = reference_estimate(predictor, x, seed) / lam
    rows.append(
        f"| {label} | {dim} | {len(x)} | reference: max vᵀFv, 100 unit directions | 201 | "
        f"ratio to exact: median {np.median(ratio):.2e} (5–95%: {np.quantile(ratio, 0.05):.1e}–"
        f"{np.quantile(ratio, 0.95):.1e}) | | | |"
    )
    print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10, help="inputs per input size")
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 400, 1000, 4000],
                        help="queries per input")
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(SHAPES),
                        choices=sorted(SHAPES))
    parser.add_argument("--coordinate-n", type=int, default=3,
                        help="inputs for coordinate mode (0: skip)")
    parser.add_argument("--trained-n", type=int, default=10,
                        help="inputs for the trained CNN (0: skip)")
    parser.add_argument("--trained-budgets", type=int, nargs="+", default=[400, 4000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)

    print(
        "| model | d | inputs | budget | queries/input | median rel. err λ_max | 90% rel. err "
        "λ_max | median rel. err tr F | s/input |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    for dim in args.sizes:
        run("random CNN", random_cnn(args.seed), dim, images(dim, args.n), args.budgets,
            args.coordinate_n,
            args.seed, device)
    if args.trained_n > 0:
        run("trained small CNN (float32)", trained_cnn(), 3072, images(3072, args.trained_n),
            args.trained_budgets, 0, args.seed, device)
    print(
        f"\ntotal {time.perf_counter() - start:.0f} s on {device} ({torch.get_num_threads()} "
        "threads)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
