"""Random small networks for the soundness search of the Lipschitz bound.

:func:`random_network` draws a small network from every layer type that has a rule, with random
constructor arguments (kernel sizes, strides, padding, dilation, ``ceil_mode``,
``count_include_pad``, ``divisor_override``, ``align_corners``, groups, padding modes,
unbatched shapes that pooling reads as channels, activation arguments in and out of the ranges
their rules hold on), in sequence and in parallel branches joined by sums, differences and
concatenations, as modules or as the functions ``torch.nn.functional`` offers; and the classes
of model the bound once got silently wrong, which it must now prove or refuse: in-place changes
(sound chains, and changes a later node reads, directly or through a view), hooks, Python values
taken from the input, casts and rounding, keyword-argument calls. Every network records the
classes it contains (:attr:`RandomNetwork.classes`), so that a search reports what it covered.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# Per-sample sizes the generator keeps to, so that a dense Jacobian stays cheap.
_MAX_NUMEL = 256
_MAX_INPUT = 96
#: The search evaluates at most this many inputs per forward pass; the generator keeps only
#: networks that compute, for batches of 1 to CHUNK inputs, the same function of each input.
CHUNK = 4


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


class InPlace(nn.Module):
    """In-place operations on a fresh tensor ``h = c·x``.

    Sound: ``relu_(h)``, ``h += x``, ``h.add_(x, alpha=α)`` (nothing reads ``h`` before the
    change afterwards). Unsound as traced: ``h.mul_(f)`` whose result is not used, the same
    through a view ``h[:]``, and ``h.copy_(f·h)``, each followed by a read of ``h``: the graph
    shows that read the value before the change.
    """

    SOUND = ("relu_", "iadd", "add_")
    KINDS = (*SOUND, "mul_ unused", "view mul_", "copy_")

    def __init__(self, kind: str, factor: float) -> None:
        super().__init__()
        self.kind, self.factor = kind, factor

    def forward(self, x: Tensor) -> Tensor:
        """The operation on ``h = c·x``."""
        h = x * 1.5
        if self.kind == "relu_":
            return torch.relu_(h)
        if self.kind == "iadd":
            h += x
            return h
        if self.kind == "add_":
            return h.add_(x, alpha=-self.factor)
        if self.kind == "mul_ unused":
            h.mul_(self.factor)
        elif self.kind == "view mul_":
            view = h[:]
            view.mul_(self.factor)
        else:
            h.copy_(self.factor * h)
        return h

    def extra_repr(self) -> str:
        """The operation and its factor, for ``repr``."""
        return f"{self.kind}, factor={self.factor}"


class Escape(nn.Module):
    """``x`` scaled by a Python number taken from the input (``.item()``, ``.tolist()``)."""

    KINDS = ("item", "tolist")

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: Tensor) -> Tensor:
        """``x · mean(x)`` as a Python number (one input per batch: :func:`chunk_of`)."""
        mean = x.mean()
        return x * (mean.item() if self.kind == "item" else mean.tolist())

    def extra_repr(self) -> str:
        """The escape, for ``repr``."""
        return self.kind


class Cast(nn.Module):
    """Casts and rounding: to float64 (sound) or to integers, half precision, floors, signs."""

    SOUND = ("double", "to dtype=", "to other")
    KINDS = (*SOUND, "int64", "half", "floor division", "round", "comparison")

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: Tensor) -> Tensor:
        """The cast of ``x`` (back in float64)."""
        kind = self.kind
        if kind == "double":
            return x.double()
        if kind == "to dtype=":
            return x.to(dtype=torch.float64)
        if kind == "to other":
            return x.to(x)
        if kind == "int64":
            return (4 * x).to(torch.int64).double()
        if kind == "half":
            return (1000 * x).half().double()
        if kind == "floor division":
            return torch.div(x, 0.05, rounding_mode="floor")
        if kind == "round":
            return torch.round(4 * x)
        return (x > 0).double()

    def extra_repr(self) -> str:
        """The cast, for ``repr``."""
        return self.kind


class Keyword(nn.Module):
    """Calls with keyword arguments.

    ``torch.add(h, other=x, alpha=α)``, ``torch.cat(tensors=...)``,
    ``torch.sub(h, other=x, alpha=α)``, ``torch.mul(input=x, other=c)``,
    ``torch.matmul(input=x, other=C)``.
    """

    KINDS = ("add", "cat", "sub", "mul", "matmul")

    def __init__(self, kind: str, alpha: float, matrix: Tensor) -> None:
        super().__init__()
        self.kind, self.alpha = kind, alpha
        self.register_buffer("matrix", matrix)

    def forward(self, x: Tensor) -> Tensor:
        """The keyword call on ``x`` and ``h = −2x``."""
        h = x * -2.0
        if self.kind == "add":
            return torch.add(h, other=x, alpha=self.alpha)
        if self.kind == "cat":
            return torch.cat(tensors=[h, x], dim=1)
        if self.kind == "sub":
            return torch.sub(h, other=x, alpha=self.alpha)
        if self.kind == "mul":
            return torch.mul(input=x, other=self.alpha)
        return torch.matmul(input=x, other=self.matrix)

    def extra_repr(self) -> str:
        """The call, for ``repr``."""
        return f"{self.kind}, alpha={self.alpha}"


# Activations whose rules hold on a range of their arguments; the generator draws in and out.
RANGED = (nn.CELU, nn.ELU, nn.Softplus, nn.Hardtanh, nn.LeakyReLU)
RANGED_FUNCTIONS = (F.celu, F.elu, F.softplus, F.hardtanh, F.leaky_relu)


# ----------------------------------------------------------------------------- the generator
def _activation(rng: random.Random) -> nn.Module:
    low = rng.choice([-2.0, -1.0, 0.0])
    choices: list[Callable[[], nn.Module]] = [
        nn.ReLU, nn.ReLU6, nn.Tanh, nn.Sigmoid, nn.Hardsigmoid, nn.Hardswish, nn.SiLU,
        nn.Mish, nn.Softsign, nn.SELU,
        lambda: nn.Hardtanh(low, low + rng.choice([0.5, 2.0])),
        lambda: nn.CELU(rng.choice([-1.0, -0.3, 0.5, 1.0, 2.0])),
        lambda: nn.Softplus(rng.choice([0.5, 1.0, 3.0]), rng.choice([1.0, 20.0, math.inf])),
        lambda: nn.GELU(approximate=rng.choice(["none", "tanh"])),
        lambda: nn.LeakyReLU(rng.choice([0.01, 0.2, -0.5, 1.5, -2.0])),
        lambda: nn.ELU(rng.choice([-1.0, 0.5, 1.0, 2.0])),
        lambda: nn.Softmax(dim=-1),
        lambda: Functional(F.relu), lambda: Functional(torch.tanh), lambda: Functional(F.silu),
        lambda: Functional(F.leaky_relu, rng.choice([0.1, -1.5])), lambda: Functional(F.gelu),
        lambda: Functional(F.celu, alpha=rng.choice([-1.0, 0.5, 2.0])),
        lambda: Functional(F.elu, rng.choice([-0.5, 1.5])),
        lambda: Functional(F.softplus, beta=rng.choice([1.0, 2.0]), threshold=rng.choice([
            0.5, 20.0, math.inf])),
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
    # Left out: max pools with both padding and dilation. PyTorch's max-pool backward with both
    # corrupts the heap and aborts the interpreter (not an exception) on small maps, e.g.
    # max_pool3d on a map of depth 1, or MaxPool2d(3, 3, padding=1, dilation=2, ceil_mode=True)
    # on a 1×9 map; a search that drew one would not finish. (The bound's rule counts windows
    # by arithmetic and does not run that backward.)
    options["dilation"] = 1 if options["padding"] > 0 else rng.randint(1, 2)
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
        (2, lambda: InPlace(rng.choice(InPlace.KINDS), rng.choice([0.5, 3.0, 100.0]))),
        (1, lambda: Escape(rng.choice(Escape.KINDS))),
        (2, lambda: Cast(rng.choice(Cast.KINDS))),
        (2, lambda: Keyword(rng.choice(Keyword.KINDS), rng.choice([-1.5, 0.5, 2.0]),
                            torch.randn(shape[-1], rng.randint(1, 5), generator=generator,
                                        dtype=torch.float64))),
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


def chunk_of(model: nn.Module) -> int:
    """Inputs per forward pass: 1 where a Python number is taken from the batch, else CHUNK.

    ``.item()`` needs a batch of one input.
    """
    return 1 if any(isinstance(m, Escape) for m in model.modules()) else CHUNK


def _output_shape(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Per-sample output shape, or ``None`` where PyTorch refuses the input or samples interact.

    Batches of 1 to :data:`CHUNK` inputs must give each input what a batch of one gives it: a
    network whose broadcasting mixes the batch axis into others computes a different function
    per batch size (the bound is of the batch-of-one function), and may even fail at a batch
    size it was never run at.
    """
    count, chunk = math.prod(shape), chunk_of(model)
    x = torch.linspace(-1.0, 1.0, CHUNK * count, dtype=torch.float64).reshape(CHUNK, *shape)
    try:
        with torch.no_grad():
            model = model.double().eval()
            singles = [model(x[i : i + 1]) for i in range(CHUNK)]
            batches = [model(x[:size]) for size in range(2, chunk + 1)]
    except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError):
        return None
    single = singles[0]
    if not (isinstance(single, Tensor) and single.ndim >= 2 and single.numel() > 0):
        return None
    expected = torch.cat(singles)
    for batch in batches:
        if not isinstance(batch, Tensor) or batch.shape[1:] != single.shape[1:] or not (
            torch.allclose(batch, expected[: len(batch)], rtol=1e-9, atol=1e-12)
        ):
            return None
    return tuple(single.shape[1:])


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
        classes: the classes of :data:`CLASSES` the network contains.
    """

    model: nn.Module
    input_shape: tuple[int, ...]
    box: tuple[float, float] | None
    classes: frozenset[str] = frozenset()


#: The classes of model the generator draws besides plain layers, by name.
CLASSES = (
    "hook", "in-place (sound)", "in-place read later", "view mutation", "scalar escape",
    "cast (sound)", "cast or rounding", "keyword call", "argument range",
)


def classes_of(model: nn.Module) -> frozenset[str]:
    """Which of :data:`CLASSES` a network contains."""
    found: set[str] = set()
    for m in model.modules():
        if any(getattr(m, kind) for kind in ("_forward_hooks", "_forward_pre_hooks")):
            found.add("hook")
        if isinstance(m, InPlace):
            found.add({"view mul_": "view mutation"}.get(
                m.kind, "in-place (sound)" if m.kind in InPlace.SOUND else "in-place read later"
            ))
        elif isinstance(m, Escape):
            found.add("scalar escape")
        elif isinstance(m, Cast):
            found.add("cast (sound)" if m.kind in Cast.SOUND else "cast or rounding")
        elif isinstance(m, Keyword):
            found.add("keyword call")
        elif isinstance(m, RANGED) or (isinstance(m, Functional) and m.fn in RANGED_FUNCTIONS):
            found.add("argument range")
    return frozenset(found)


def _scale_output(factor: float) -> Callable[..., Tensor]:
    return lambda module, inputs, output: output * factor


def _scale_input(factor: float) -> Callable[..., tuple[Tensor, ...]]:
    return lambda module, inputs: tuple(t * factor for t in inputs)


def _add_hook(rng: random.Random, model: nn.Module) -> None:
    """A forward hook or pre-hook that scales by 3 to 100, on a random layer or on the root."""
    target = rng.choice(list(model.modules()))
    factor = rng.choice([3.0, 100.0])
    if rng.random() < 0.5:
        target.register_forward_hook(_scale_output(factor))
    else:
        target.register_forward_pre_hook(_scale_input(factor))

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
    if rng.random() < 0.1:
        _add_hook(rng, model)
    has_attention = any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    box = rng.choice([(-1.0, 1.0), (0.0, 1.0)]) if has_attention or rng.random() < 0.3 else None
    return RandomNetwork(model, shape, box, classes_of(model))


