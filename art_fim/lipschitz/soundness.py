"""Searching for counterexamples to :func:`~art_fim.lipschitz.lipschitz_bound` on random networks.

A bound ``L`` is sound when no input breaks it:

* ``‖J(x)‖₂ ≤ L`` at every ``x`` (in the box, for a local bound), with ``J(x)`` the exact
  Jacobian of the flattened output, taken densely in float64 (``torch.func.jacrev``);
* ``‖f(a) − f(b)‖₂ ≤ L ‖a − b‖₂`` for every pair.

:func:`random_network` draws a small network from every layer type that has a rule, with random
constructor arguments (kernel sizes, strides, padding, dilation, ``ceil_mode``,
``count_include_pad``, ``divisor_override``, ``align_corners``, groups, padding modes,
unbatched shapes that pooling reads as channels), in sequence and in parallel branches joined
by sums, differences and concatenations, as modules or as the functions ``torch.nn.functional``
offers. :func:`search` then looks for a counterexample instead of checking a few points: from
structured starts (zero, where pooling and ``ReLU`` tie; sparse points; box corners; random
points at several scales) it climbs ``‖J(x)‖₂`` by accepting random moves that raise it, and it
climbs the pair ratio by gradient ascent on both ends. The result is the largest
``exact / bound`` ratio it found: above ``1`` is a counterexample.

The property test ``tests/test_lipschitz_soundness.py`` draws the networks through
``hypothesis`` with a fixed budget; ``benchmarks/lipschitz_soundness.py`` runs the search longer.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from art_fim.lipschitz.graph import lipschitz_bound
from art_fim.lipschitz.rules import UnsupportedLayerError

logger = logging.getLogger(__name__)

# Relative slack for rounding: the bound and the exact norms are both float64.
TOLERANCE = 1e-6
# Per-sample sizes the generator keeps to, so that a dense Jacobian stays cheap.
_MAX_NUMEL = 256
_MAX_INPUT = 96


# ----------------------------------------------------------------------------- building blocks
class Functional(nn.Module):
    """``fn(x, *args, **kwargs)``: a ``torch.nn.functional`` call, traced as a function node."""

    def __init__(self, fn: Callable[..., Tensor], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def forward(self, x: Tensor) -> Tensor:
        """``fn`` applied to ``x`` with the stored arguments."""
        return self.fn(x, *self.args, **self.kwargs)

    def extra_repr(self) -> str:
        """The function and its arguments, for ``repr``."""
        return f"{getattr(self.fn, '__name__', self.fn)}, args={self.args}, kwargs={self.kwargs}"


class Branches(nn.Module):
    """Two branches on the same input, joined: ``a + b``, ``a − b`` or ``cat`` of both."""

    def __init__(self, left: nn.Module, right: nn.Module, join: str) -> None:
        super().__init__()
        self.left, self.right, self.join = left, right, join

    def forward(self, x: Tensor) -> Tensor:
        """Both branches on ``x``, joined."""
        a, b = self.left(x), self.right(x)
        if self.join == "add":
            return a + b
        if self.join == "sub":
            return a - b
        if self.join == "cat":
            return torch.cat([a, b], dim=1)
        return torch.cat([a.flatten(1), b.flatten(1)], dim=1)

    def extra_repr(self) -> str:
        """The join, for ``repr``."""
        return f"join={self.join}"


class Scale(nn.Module):
    """Multiplication (or division) by a constant tensor that broadcasts over the batch."""

    def __init__(self, factor: Tensor, divide: bool) -> None:
        super().__init__()
        self.register_buffer("factor", factor)
        self.divide = divide

    def forward(self, x: Tensor) -> Tensor:
        """``x`` multiplied (or divided) by the factor."""
        return x / self.factor if self.divide else x * self.factor


class Drop(nn.Module):
    """``x[:, 0]``: drops the channel axis, leaving a map that pooling reads as unbatched."""

    def forward(self, x: Tensor) -> Tensor:
        """``x[:, 0]``."""
        return x[:, 0]


class SelfAttention(nn.Module):
    """``MultiheadAttention(x, x, x)[0]`` on ``[N, tokens, embed]``."""

    def __init__(self, embed: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(embed, heads, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        """The attention output for ``x`` as query, key and value."""
        return self.attention(x, x, x, need_weights=False)[0]


# ----------------------------------------------------------------------------- the generator
def _activation(rng: random.Random) -> nn.Module:
    choices: list[Callable[[], nn.Module]] = [
        nn.ReLU, nn.ReLU6, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.SiLU,
        nn.Mish, nn.Softplus, nn.Softsign, nn.SELU, nn.CELU,
        lambda: nn.GELU(approximate=rng.choice(["none", "tanh"])),
        lambda: nn.LeakyReLU(rng.choice([0.01, 0.2, -0.5, 1.5, -2.0])),
        lambda: nn.ELU(rng.choice([0.5, 1.0, 2.0])),
        lambda: nn.Softmax(dim=-1),
        lambda: Functional(F.relu), lambda: Functional(torch.tanh), lambda: Functional(F.silu),
        lambda: Functional(F.leaky_relu, rng.choice([0.1, -1.5])), lambda: Functional(F.gelu),
    ]
    return rng.choice(choices)()


def _pool_options(rng: random.Random, n: int) -> dict[str, Any]:
    kernel = rng.randint(1, 3)
    padding = rng.randint(0, kernel // 2)
    return {"kernel_size": kernel, "stride": rng.choice([None, 1, 2, 3]), "padding": padding,
            "ceil_mode": rng.random() < 0.5}


def _max_pool(rng: random.Random, n: int, functional: bool) -> nn.Module:
    if rng.random() < 0.3:
        size = rng.randint(1, 5)
        cls = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)[n - 1]
        fn = (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)[n - 1]
        return Functional(fn, size) if functional else cls(size)
    options = _pool_options(rng, n)
    options["dilation"] = rng.randint(1, 2)
    cls = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[n - 1]
    fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1]
    return Functional(fn, **options) if functional else cls(**options)


def _avg_pool(rng: random.Random, n: int, functional: bool) -> nn.Module:
    if rng.random() < 0.3:
        size = rng.randint(1, 6)  # above the map size: an enlarging pool
        cls = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[n - 1]
        fn = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[n - 1]
        return Functional(fn, size) if functional else cls(size)
    options = _pool_options(rng, n)
    options["count_include_pad"] = rng.random() < 0.5
    if n > 1 and rng.random() < 0.4:
        options["divisor_override"] = rng.randint(1, 4)
    cls = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[n - 1]
    fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
    return Functional(fn, **options) if functional else cls(**options)


def _upsample(rng: random.Random, n: int, functional: bool) -> nn.Module:
    modes = {
        1: ["nearest", "linear"], 2: ["nearest", "bilinear", "bicubic"], 3: ["nearest", "trilinear"]
    }[n]
    mode = rng.choice(modes)
    options: dict[str, Any] = {"mode": mode}
    if rng.random() < 0.5:
        options["scale_factor"] = rng.choice([2, 1.5, 0.5])
    else:
        options["size"] = rng.randint(1, 6)
    if mode != "nearest":
        options["align_corners"] = rng.random() < 0.5
    return Functional(F.interpolate, **options) if functional else nn.Upsample(**options)


def _batchnorm(rng: random.Random, channels: int, n: int, generator: torch.Generator) -> nn.Module:
    bn = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[max(n, 1) - 1](
        channels, affine=rng.random() < 0.8
    )
    with torch.no_grad():
        bn.running_mean.copy_(0.3 * torch.randn(channels, generator=generator))
        bn.running_var.copy_(0.05 + 2 * torch.rand(channels, generator=generator))
        if bn.affine:
            bn.weight.copy_(2 * torch.randn(channels, generator=generator))
    return bn


def _convolution(rng: random.Random, channels: int, n: int) -> nn.Module:
    groups = rng.choice([g for g in (1, 2, 3) if channels % g == 0])
    out = groups * rng.randint(1, 3)
    kernel = rng.randint(1, 3)
    padding = rng.randint(0, kernel)
    mode = (
        rng.choice(["zeros", "zeros", "circular", "reflect", "replicate"]) if padding else "zeros"
    )
    cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[n - 1]
    return cls(channels, out, kernel, stride=rng.randint(1, 2), padding=padding,
               dilation=rng.randint(1, 2), groups=groups, bias=rng.random() < 0.5,
               padding_mode=mode)


def _layer(
    rng: random.Random, shape: tuple[int, ...], generator: torch.Generator, depth: int
) -> nn.Module:
    """One random layer (or block) that takes per-sample inputs of ``shape``.

    Layers whose constants depend on options and shapes (pooling, resampling, convolutions) are
    drawn more often than those whose constants cannot go wrong (dropout, reshapes).
    """
    rank = len(shape)
    functional = rng.random() < 0.3
    options: list[tuple[int, Callable[[], nn.Module]]] = [(2, lambda: _activation(rng))]
    if rank >= 2:  # [N, C, *spatial]: convolutions and batched pooling over the spatial axes
        n = rank - 1
        options += [
            (3, lambda: _convolution(rng, shape[0], n)),
            (2, lambda: _batchnorm(rng, shape[0], n, generator)),
            (5, lambda: _max_pool(rng, n, functional)),
            (5, lambda: _avg_pool(rng, n, functional)),
            (3, lambda: _upsample(rng, n, functional)),
            (1, lambda: Drop()),
            (1, lambda: nn.Flatten()),
            (1, lambda: Functional(F.pad, tuple(rng.randint(0, 2) for _ in range(2)))),
        ]
    if 1 <= rank <= 3:  # pooling of an unbatched map: the leading axis is read as channels
        options += [
            (4, lambda: _max_pool(rng, rank, functional)),
            (3, lambda: _avg_pool(rng, rank, functional)),
        ]
    if rank == 1:
        options += [
            (3, lambda: nn.Linear(shape[0], rng.randint(1, 12), bias=rng.random() < 0.5)),
            (2, lambda: _batchnorm(rng, shape[0], 1, generator)),
            (1, lambda: nn.Unflatten(1, (1, shape[0]))),
        ]
    if rank in (1, 2):
        options.append((1, lambda: nn.LayerNorm(shape[-1], elementwise_affine=rng.random() < 0.7)))
    if rank == 2 and shape[1] % 2 == 0 and shape[1] >= 2:
        options.append((2, lambda: SelfAttention(shape[1], rng.choice([1, 2]))))
    options += [
        (1, lambda: Scale(torch.rand(shape[-1], generator=generator, dtype=torch.float64) * 3 + 0.1,
                          rng.random() < 0.5)),
        (1, lambda: nn.Dropout(0.5)),
    ]
    if depth < 2:
        options.append((5, lambda: _branches(rng, shape, generator, depth + 1)))
    pick = rng.randrange(sum(w for w, _ in options))
    for weight, make in options:
        if pick < weight:
            return make()
        pick -= weight
    raise AssertionError("unreachable")


# Options that change what a parameter-free layer computes without changing its shapes.
_HIDDEN_OPTIONS: dict[str, Callable[[random.Random], Any]] = {
    "count_include_pad": lambda rng: rng.random() < 0.5,
    "divisor_override": lambda rng: rng.choice([None, 1, 2, 5]),
    "ceil_mode": lambda rng: rng.random() < 0.5,
    "align_corners": lambda rng: rng.random() < 0.5,
}


def _twin(rng: random.Random, layer: nn.Module) -> nn.Module:
    """A copy of ``layer`` with its hidden options (those ``repr`` may not show) drawn again."""
    twin = copy.deepcopy(layer)
    options = twin.kwargs if isinstance(twin, Functional) else vars(twin)
    for name, draw in _HIDDEN_OPTIONS.items():
        if name in options and not (name == "align_corners" and options.get("mode") == "nearest"):
            options[name] = draw(rng)
    return twin


def _branches(
    rng: random.Random, shape: tuple[int, ...], generator: torch.Generator, depth: int
) -> nn.Module:
    join = rng.choice(["add", "sub", "cat", "flat"])
    left = _sequence(rng, shape, generator, rng.randint(1, 2), depth)
    if rng.random() < 0.3 and len(left) == 1:  # twins: the same layer with other hidden options
        right = nn.Sequential(_twin(rng, left[0]))
        if _output_shape(right, shape) is not None:
            return Branches(left, right, join)
    right = _sequence(rng, shape, generator, rng.randint(0, 2), depth)
    return Branches(left, right, join)


def _sequence(
    rng: random.Random, shape: tuple[int, ...], generator: torch.Generator, length: int, depth: int
) -> nn.Sequential:
    """Up to ``length`` random layers, each checked to run on the shape the previous one leaves."""
    layers: list[nn.Module] = []
    current = shape
    for _ in range(length):
        for _attempt in range(10):
            layer = _layer(rng, current, generator, depth)
            out = _output_shape(nn.Sequential(*layers, layer), shape)
            if out is not None and 1 <= math.prod(out) <= _MAX_NUMEL and len(out) >= 1:
                layers.append(layer)
                current = out
                break
    return nn.Sequential(*layers)


def _output_shape(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Per-sample output shape, or ``None`` where PyTorch refuses the input or samples interact.

    A batch of two must give, for its first input, what a batch of one gives: a network whose
    broadcasting mixes the batch axis into others computes a different function per batch size
    (the bound is of the batch-of-one function).
    """
    x = torch.linspace(-1.0, 1.0, 2 * math.prod(shape), dtype=torch.float64).reshape(2, *shape)
    try:
        with torch.no_grad():
            model = model.double().eval()
            pair, single = model(x), model(x[:1])
    except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError):
        return None
    if not (isinstance(pair, Tensor) and pair.ndim >= 2 and pair.numel() > 0):
        return None
    if pair.shape[1:] != single.shape[1:] or not torch.allclose(
        pair[:1], single, rtol=1e-9, atol=1e-12
    ):
        return None
    return tuple(pair.shape[1:])


_INPUT_SHAPES = [
    (6,), (10,), (2, 7), (3, 6), (1, 9), (2, 5, 5), (1, 6, 6), (3, 4, 4), (1, 3, 4, 4), (2, 3, 3, 3)
]


@dataclass(frozen=True)
class RandomNetwork:
    """A drawn network and where it is searched.

    Attributes:
        model: the network (float64, eval mode).
        input_shape: shape of one input.
        box: ``(low, high)`` the search (and, with attention, the bound) covers, or ``None``
            for a global bound searched at several scales.
    """

    model: nn.Module
    input_shape: tuple[int, ...]
    box: tuple[float, float] | None


def random_network(rng: random.Random, max_layers: int = 3) -> RandomNetwork:
    """Draw a small network: up to ``max_layers`` layers or branch blocks, then sometimes a head.

    Args:
        rng: the source of every structural choice (``hypothesis`` passes its own, so that a
            failing network shrinks); the weights come from a ``torch.Generator`` seeded by it.
        max_layers: layers (or blocks) in the top-level sequence.
    """
    generator = torch.Generator().manual_seed(rng.getrandbits(32))
    shape = rng.choice(_INPUT_SHAPES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rng.getrandbits(32))
        body = _sequence(rng, shape, generator, rng.randint(1, max_layers), 0)
        out = _output_shape(body, shape) or shape
        layers = list(body)
        if rng.random() < 0.3 and math.prod(out) <= _MAX_INPUT:
            layers += (
                [nn.Flatten(), nn.Linear(math.prod(out), rng.randint(1, 5))]
                if len(out) > 1
                else [nn.Linear(out[0], rng.randint(1, 5))]
            )
        model = nn.Sequential(*layers).double().eval()
    has_attention = any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    box = rng.choice([(-1.0, 1.0), (0.0, 1.0)]) if has_attention or rng.random() < 0.3 else None
    return RandomNetwork(model, shape, box)


# ----------------------------------------------------------------------------- the search
@dataclass(frozen=True)
class SearchResult:
    """What the search found on one network.

    Attributes:
        bound: the Lipschitz bound ``L`` (``nan`` when the network was refused).
        jacobian_ratio: largest ``‖J(x)‖₂ / L`` found.
        pair_ratio: largest ``‖f(a) − f(b)‖₂ / (L ‖a − b‖₂)`` found.
        inputs: points at which an exact Jacobian or a pair ratio was evaluated.
        witness: the input with the largest ``‖J(x)‖₂``, ``[*input_shape]``.
        refused: the refusal message, when the bound raised :class:`UnsupportedLayerError`.
    """

    bound: float
    jacobian_ratio: float
    pair_ratio: float
    inputs: int
    witness: Tensor | None
    refused: str | None = None

    @property
    def ratio(self) -> float:
        """The larger of the two ratios (above ``1 + TOLERANCE``: a counterexample)."""
        return max(self.jacobian_ratio, self.pair_ratio)


def _jacobian_norms(model: nn.Module, points: Tensor) -> Tensor:
    """Exact ``‖J(x)‖₂`` at each of ``points`` ``[B, *shape]`` (dense float64 ``jacrev``, then SVD).

    Inputs of an eval-mode network do not interact, so the Jacobian of the batch-summed output
    holds every input's own Jacobian: ``∂(Σ_b f(x_b))/∂x_b = J(x_b)``; one ``jacrev`` takes all.
    """
    count = len(points)

    def summed(t: Tensor) -> Tensor:
        return model(t).reshape(count, -1).sum(0)

    jacobians = (
        torch.func.jacrev(summed)(points).reshape(-1, count, points[0].numel()).transpose(0, 1)
    )
    return torch.linalg.matrix_norm(jacobians, ord=2)


def _starts(
    shape: tuple[int, ...], box: tuple[float, float] | None, count: int, generator: torch.Generator
) -> Tensor:
    """Structured and random starting points.

    Zero, sparse points, corners, and random points at several scales.
    """
    low, high = box if box is not None else (-1.0, 1.0)
    dim = math.prod(shape)
    scales = [1.0] if box is not None else [0.1, 1.0, 10.0]
    points = [torch.zeros(dim, dtype=torch.float64).clamp(low, high)]
    while len(points) < count:
        kind = len(points) % 4
        if kind == 0:  # a few entries up, the rest at the low end
            p = torch.full((dim,), low, dtype=torch.float64)
            idx = torch.randint(dim, (max(1, dim // 8),), generator=generator)
            p[idx] = high
        elif kind == 1:  # a corner
            p = torch.where(
                torch.rand(dim, generator=generator, dtype=torch.float64) < 0.5, low, high
            )
        else:
            scale = scales[len(points) % len(scales)]
            p = low + (high - low) * torch.rand(dim, generator=generator, dtype=torch.float64)
            if box is None:
                p = scale * torch.randn(dim, generator=generator, dtype=torch.float64)
        points.append(p.to(torch.float64))
    return torch.stack(points).reshape(count, *shape)


def _clip(x: Tensor, box: tuple[float, float] | None) -> Tensor:
    return x if box is None else x.clamp(*box)


def search(
    network: RandomNetwork,
    starts: int = 8,
    steps: int = 6,
    pair_steps: int = 15,
    seed: int = 0,
) -> SearchResult:
    """Bound one network and search for an input or a pair of inputs that breaks the bound.

    Args:
        network: the network and its box (:func:`random_network`).
        starts: starting points.
        steps: rounds of random moves that keep the ones raising ``‖J(x)‖₂``.
        pair_steps: gradient-ascent steps on the pair ratio.
        seed: seed of the starting points and moves.

    Returns:
        A :class:`SearchResult`; a refused network has ``nan`` bound and ratios ``0``.
    """
    model, shape, box = network.model, network.input_shape, network.box
    try:
        bound = float(lipschitz_bound(model, shape, input_box=box))
    except UnsupportedLayerError as err:
        return SearchResult(math.nan, 0.0, 0.0, 0, None, refused=str(err))
    generator = torch.Generator().manual_seed(seed)
    x = _starts(shape, box, starts, generator)
    best = _jacobian_norms(model, x)
    inputs = len(x)
    step = 0.3 if box is None else 0.3 * (box[1] - box[0])
    for _ in range(steps):
        scale = x.flatten(1).norm(dim=1).clamp_min(1.0).reshape(-1, *[1] * len(shape))
        move = _clip(
            x + step * scale * torch.randn(x.shape, generator=generator, dtype=torch.float64), box
        )
        norms = _jacobian_norms(model, move)
        inputs += len(move)
        better = norms > best
        x = torch.where(better.reshape(-1, *[1] * len(shape)), move, x)
        best = torch.maximum(best, norms)
        step *= 0.6
    witness = x[int(best.argmax())]
    pair = _pair_search(model, x, box, pair_steps, generator)
    inputs += len(x) * (pair_steps + 1)
    if bound == 0:
        jacobian_ratio = math.inf if float(best.max()) > 0 else 0.0
        pair_ratio = math.inf if pair > 0 else 0.0
    else:
        jacobian_ratio, pair_ratio = float(best.max()) / bound, pair / bound
    return SearchResult(bound, jacobian_ratio, pair_ratio, inputs, witness)


def _pair_search(
    model: nn.Module,
    x: Tensor,
    box: tuple[float, float] | None,
    steps: int,
    generator: torch.Generator,
) -> float:
    """Largest ``‖f(a) − f(b)‖ / ‖a − b‖`` found by Adam ascent from pairs around ``x``."""
    spread = 0.5 if box is None else 0.25 * (box[1] - box[0])
    a = x.clone().requires_grad_(True)
    b = _clip(x + spread * torch.randn(x.shape, generator=generator, dtype=torch.float64), box)
    b = b.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([a, b], lr=0.05 * spread)
    best = 0.0
    for _ in range(steps + 1):
        gap = (a - b).flatten(1).norm(dim=1)
        ratio = (model(a) - model(b)).flatten(1).norm(dim=1) / gap.clamp_min(1e-12)
        ratio = torch.where(gap > 1e-9, ratio, torch.zeros_like(ratio))
        best = max(best, float(ratio.max()))
        optimiser.zero_grad()
        (-ratio.sum()).backward()
        optimiser.step()
        with torch.no_grad():
            a.copy_(_clip(a, box))
            b.copy_(_clip(b, box))
    return best


@dataclass(frozen=True)
class Report:
    """A search over many networks.

    Attributes:
        networks: networks bounded and searched.
        refused: networks the bound refused by name (not searched).
        inputs: points evaluated over all networks.
        worst_ratio: largest ``exact / bound`` ratio found (Jacobian or pair).
        worst_network: ``repr`` of the network where it was found.
        tight: networks where the search reached the bound (ratio within ``1e-6`` of 1).
        seconds: wall-clock time of the search.
        counterexamples: ``repr`` and ratio of every network whose ratio exceeded ``1 + TOLERANCE``.
    """

    networks: int
    refused: int
    inputs: int
    worst_ratio: float
    worst_network: str
    tight: int
    seconds: float
    counterexamples: tuple[tuple[str, float], ...]


def search_many(
    seed: int, count: int, max_layers: int = 3, max_seconds: float | None = None, **options: Any
) -> Report:
    """Draw up to ``count`` networks from ``random.Random(seed)`` and :func:`search` each.

    Args:
        seed: seed of the draws (and of each search).
        count: networks to draw.
        max_layers: see :func:`random_network`.
        max_seconds: stop drawing after this long (``None``: no limit).
        options: passed to :func:`search`.
    """
    rng = random.Random(seed)
    start = time.perf_counter()
    searched = refused = inputs = tight = 0
    worst, worst_network = 0.0, ""
    found: list[tuple[str, float]] = []
    for i in range(count):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
        network = random_network(rng, max_layers)
        result = search(network, seed=seed + i, **options)
        if result.refused is not None:
            refused += 1
            logger.debug("refused: %s", result.refused)
            continue
        searched += 1
        inputs += result.inputs
        tight += abs(result.ratio - 1) <= 1e-6
        if result.ratio > worst:
            worst, worst_network = result.ratio, repr(network.model)
        if result.ratio > 1 + TOLERANCE:
            found.append((repr(network.model), result.ratio))
            logger.warning("counterexample (ratio %.6g) on %r", result.ratio, network.model)
    seconds = time.perf_counter() - start
    return Report(searched, refused, inputs, worst, worst_network, tight, seconds, tuple(found))
