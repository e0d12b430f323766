"""What each node of a traced network does to the Lipschitz bound and to the input box.

Walking the ``torch.fx`` graph, every node ``n`` gets a :class:`NodeBound`: an upper bound
``L_n`` on the ℓ2 Lipschitz constant of the map *network input → value of n*, and, when an input
box is given, elementwise bounds of the value over that box (interval bound propagation,
needed only by the local rules of LayerNorm and attention). Composition happens node by node:

* a layer with constant ``c``: ``L_n = c · L_input``;
* a sum ``a + b``: ``L_a + L_b`` (a residual block gives ``1 + L_body``);
* a concatenation: ``√(Σ L_i²)`` (a dense layer ``[s, h(s)]`` gives ``L_s √(1 + L_h²)``);
* reshapes, permutations and basic indexing: unchanged; a broadcast that copies each entry
  ``k`` times: ``√k``; scaling by a constant tensor ``c``: ``max|c|`` (normalisation layers);
* anything that depends on the input only through its shape, or not at all: 0.

Which node gets which rule, and for which exact call, is :mod:`art_fim.lipschitz.table`: a rule
reads its node's arguments by name (:attr:`NodeContext.arguments`), bound to the parameter list it
was derived for. A node with no rule raises :class:`UnsupportedLayerError` naming it: nothing is
skipped.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from art_fim.lipschitz import operators as ops
from art_fim.lipschitz.operators import Activation


class UnsupportedLayerError(TypeError):
    """A layer or operation of the network has no Lipschitz rule."""


@dataclass(frozen=True)
class LayerBound:
    """The constant one layer contributed.

    Attributes:
        name: the node (module path for layers).
        layer: what it is, e.g. ``"Conv2d+BatchNorm2d"``.
        constant: its ℓ2 Lipschitz constant (upper bound).
        input_shape: shape of one input to it.
        note: how the constant was obtained.
        local: whether it holds only for inputs in the stated box (attention; LayerNorm with a
            variance floor).
    """

    name: str
    layer: str
    constant: float
    input_shape: tuple[int, ...]
    note: str = ""
    local: bool = False


@dataclass
class NodeBound:
    """Bounds for one node.

    Attributes:
        lipschitz: bound on the Lipschitz constant of input → node (0: does not depend on it).
        lower: elementwise lower bound of the node's value over the input box, or ``None``.
        upper: elementwise upper bound, or ``None``.
        row_norm: bound on the ℓ2 norm along the last axis (known after LayerNorm), or ``None``.
        fold: for a linear layer whose only user is a BatchNorm: ``scale ↦`` the operator norm
            of the layer followed by that per-channel scale (``lipschitz`` is then its input's).
        fold_shape: the input shape of that linear layer.
        depends: whether the value may depend on the input's values (``False``: a constant, or a
            function of the input's shape only). A node with an argument that depends on the
            input is bounded by a rule, or refused.
    """

    lipschitz: float
    lower: Tensor | None = None
    upper: Tensor | None = None
    row_norm: float | None = None
    fold: Callable[[Tensor], float] | None = None
    fold_shape: tuple[int, ...] = ()
    depends: bool = True

    @property
    def box(self) -> tuple[Tensor, Tensor] | None:
        """``(lower, upper)`` or ``None``."""
        return None if self.lower is None or self.upper is None else (self.lower, self.upper)


@dataclass
class NodeContext:
    """What a rule sees of one node.

    Attributes:
        node: the fx node.
        value: its value at the example input (a batch of one, float64).
        module: the called module, for ``call_module`` nodes.
        inputs: the node's arguments that depend on the network input, in order.
        bounds: bounds of every node computed so far.
        examples: values of every node computed so far, at the example input.
        modules: the network's submodules by qualified name.
        call: re-runs the node with some arguments replaced (``{node: tensor}``).
        boxes: whether interval bounds are tracked.
        records: per-layer constants, appended to by rules.
        cache: constants of parameter-free layers already computed in this walk, by signature.
        arguments: the node's arguments by parameter name, defaults filled in (for a layer, its
            ``forward``'s), as the rule's parameter list binds them.
        custom: the layer types the caller declared constants for (``custom_layers``).
    """

    node: fx.Node
    value: Any
    module: nn.Module | None
    inputs: list[fx.Node]
    bounds: Mapping[fx.Node, NodeBound]
    examples: Mapping[fx.Node, Any]
    modules: Mapping[str, nn.Module]
    call: Callable[[Mapping[fx.Node, Any]], Any]
    boxes: bool
    records: list[LayerBound]
    cache: dict[tuple, float]
    arguments: dict[str, Any]
    custom: tuple[type, ...] = ()

    @property
    def input(self) -> fx.Node:
        """The single input-dependent argument (error if there are several)."""
        if len(self.inputs) != 1:
            raise UnsupportedLayerError(
                f"{describe(self)} combines {len(self.inputs)} input-dependent tensors; "
                "only one is supported here (a product of two input-dependent tensors has no "
                "global Lipschitz constant)."
            )
        return self.inputs[0]

    def example(self, value: Any) -> Any:
        """``value`` with every node in it replaced by its value at the example input."""
        return fx.node.map_arg(value, lambda n: self.examples[n])

    @property
    def bound(self) -> NodeBound:
        """Bounds of :attr:`input`."""
        return self.bounds[self.input]

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        """Shape of one sample of an argument (batch axis dropped)."""
        return tuple(self.examples[node].shape[1:])

    def record(
        self,
        layer: str,
        constant: float,
        note: str = "",
        shape: tuple[int, ...] | None = None,
        name: str = "",
        local: bool = False,
    ) -> None:
        """Add one layer's constant to the report."""
        name = name or str(self.node.target if self.node.op == "call_module" else self.node.name)
        shape = shape if shape is not None else self.shape(self.input)
        self.records.append(LayerBound(str(name), layer, float(constant), shape, note, local))


Rule = Callable[[NodeContext], NodeBound]


def layer_type(module: nn.Module) -> type:
    """The type a layer's rule is looked up by: its own, or the one a parametrization wraps.

    ``torch.nn.utils.parametrize`` swaps a layer's class for a subclass whose only change is
    that ``weight`` (or another tensor) is computed by the parametrization; the rules read the
    computed tensor, so the original class's rule holds.
    """
    cls = type(module)
    return cls.__bases__[0] if parametrize.is_parametrized(module) else cls


def describe(ctx: NodeContext) -> str:
    """``layer 'features.3' (torch.nn.modules.activation.Hardshrink)`` or the function's name."""
    node = ctx.node
    if node.op == "call_module":
        cls = type(ctx.module)
        return f"layer {node.target!r} ({cls.__module__}.{cls.__qualname__})"
    if node.op == "call_method":
        what = f"method .{node.target}() at node {node.name!r}"
    else:
        target = getattr(node.target, "__qualname__", None) or repr(node.target)
        module = getattr(node.target, "__module__", None)
        what = f"function {module + '.' if module else ''}{target} at node {node.name!r}"
    stack = node.meta.get("nn_module_stack")
    if stack:  # the innermost module whose forward the operation comes from
        path, cls = list(stack.values())[-1]
        what += f" inside layer {path!r} ({cls.__module__}.{cls.__qualname__})"
    return what


def _apply_box(
    ctx: NodeContext, node: fx.Node | None = None
) -> tuple[Tensor | None, Tensor | None]:
    """Run the node on the lower and on the upper bound of one argument (order-preserving ops)."""
    node = node or ctx.input
    bound = ctx.bounds[node]
    if not ctx.boxes or bound.box is None:
        return None, None
    return ctx.call({node: bound.lower}), ctx.call({node: bound.upper})


# ----------------------------------------------------------------------------- shape ops
def reshaping(ctx: NodeContext) -> NodeBound:
    """Reshapes, permutations, basic indexing, zero padding, eval-mode dropout: ``L`` unchanged."""
    lower, upper = _apply_box(ctx)
    return NodeBound(ctx.bound.lipschitz, lower, upper)


def indexing(ctx: NodeContext) -> NodeBound:
    """``x[index]``: a selection (a contraction) for basic indices; tuple outputs pass through."""
    source, index = ctx.input, ctx.example(ctx.arguments["b"])
    if not isinstance(ctx.examples[source], Tensor):
        # An item of a multi-output layer, e.g. attention's (output, weights).
        if index == 0:
            return ctx.bounds[source]
        if ctx.value is None:
            return NodeBound(0.0)
        raise UnsupportedLayerError(
            f"{describe(ctx)} uses output {index} of a multi-output layer; only output 0 "
            "(attention's output, not its weights) has a rule."
        )
    items = index if isinstance(index, tuple) else (index,)
    if not all(
        item is None or item is Ellipsis or _is_int(item)
        or (isinstance(item, slice) and all(
            v is None or _is_int(v) for v in (item.start, item.stop, item.step)))
        for item in items
    ):
        raise UnsupportedLayerError(
            f"{describe(ctx)} indexes with {index!r}; only basic indexing (integers, slices, None, "
            "...) has a rule: advanced indexing may repeat entries."
        )
    return reshaping(ctx)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def replicating(ctx: NodeContext) -> NodeBound:
    """``expand`` / ``repeat``: every entry copied ``k`` times multiplies the norm by ``√k``."""
    factor = math.sqrt(ctx.value.numel() / ctx.examples[ctx.input].numel())
    lower, upper = _apply_box(ctx)
    if factor != 1.0:
        ctx.record(f".{ctx.node.target}()", factor, "entries copied")
    return NodeBound(ctx.bound.lipschitz * factor, lower, upper)


def padding(ctx: NodeContext) -> NodeBound:
    """``F.pad``: constant padding adds fixed entries (``L`` unchanged); others copy entries."""
    mode = ctx.arguments["mode"]
    if mode != "constant":
        raise UnsupportedLayerError(
            f"{describe(ctx)} pads in mode {mode!r}; only constant padding has a rule."
        )
    return reshaping(ctx)


def dropout_function(ctx: NodeContext) -> NodeBound:
    """``F.dropout(x, p, training)``: the identity when not training."""
    if ctx.arguments["training"] is not False:
        raise UnsupportedLayerError(
            f"{describe(ctx)} runs in training mode; call model.eval() first."
        )
    return reshaping(ctx)


# ----------------------------------------------------------------------------- arithmetic
def _broadcast_factor(ctx: NodeContext, node: fx.Node) -> float:
    """``√k`` when broadcasting copies each entry of the argument ``k`` times into the output."""
    return math.sqrt(ctx.value.numel() / ctx.examples[node].numel())


def _operand_box(ctx: NodeContext, arg: Any) -> tuple[Any, Any]:
    """Bounds of an operand: a node's box (a constant node's is its value), or a Python scalar."""
    if isinstance(arg, fx.Node):
        return ctx.bounds[arg].lower, ctx.bounds[arg].upper
    return arg, arg


def _sum_lipschitz(ctx: NodeContext, operands: tuple[Any, ...], scales: tuple[float, ...]) -> float:
    """``Σ |α_i| L_i`` over the operands (a node added to itself counts twice)."""
    return sum(
        ctx.bounds[arg].lipschitz * abs(scale) * _broadcast_factor(ctx, arg)
        for arg, scale in zip(operands, scales)
        if isinstance(arg, fx.Node) and ctx.bounds[arg].lipschitz > 0
    )


def _pair(arguments: Mapping[str, Any]) -> tuple[Any, Any]:
    """The two operands of a binary function (``input, other``), method or operator."""
    for first, second in (("input", "other"), ("self", "other"), ("a", "b")):
        if first in arguments:
            return arguments[first], arguments[second]
    raise KeyError(f"no operands in {sorted(arguments)}")


def _operands(ctx: NodeContext) -> tuple[Any, Any, float]:
    """The two operands of a sum or difference, and ``α`` (1 for the operators)."""
    a, b = _pair(ctx.arguments)
    return a, b, float(ctx.arguments.get("alpha", 1.0))


def addition(ctx: NodeContext) -> NodeBound:
    """``a + b`` (also ``+=``, ``torch.add(a, b, alpha=α)``): ``L_a + |α| L_b``."""
    a, b, alpha = _operands(ctx)
    lipschitz = _sum_lipschitz(ctx, (a, b), (1.0, alpha))
    (lo_a, hi_a), (lo_b, hi_b) = _operand_box(ctx, a), _operand_box(ctx, b)
    if not ctx.boxes or lo_a is None or lo_b is None:
        return NodeBound(lipschitz)
    if alpha < 0:
        lo_b, hi_b = hi_b, lo_b
    return NodeBound(lipschitz, lo_a + alpha * lo_b, hi_a + alpha * hi_b)


def subtraction(ctx: NodeContext) -> NodeBound:
    """``a − b`` (``torch.sub(a, b, alpha=α)``): ``L_a + |α| L_b``."""
    a, b, alpha = _operands(ctx)
    lipschitz = _sum_lipschitz(ctx, (a, b), (1.0, alpha))
    (lo_a, hi_a), (lo_b, hi_b) = _operand_box(ctx, a), _operand_box(ctx, b)
    if not ctx.boxes or lo_a is None or lo_b is None:
        return NodeBound(lipschitz)
    if alpha < 0:
        lo_b, hi_b = hi_b, lo_b
    return NodeBound(lipschitz, lo_a - alpha * hi_b, hi_a - alpha * lo_b)


def negation(ctx: NodeContext) -> NodeBound:
    """``−a``."""
    bound = ctx.bound
    if bound.box is None:
        return NodeBound(bound.lipschitz)
    return NodeBound(bound.lipschitz, -bound.upper, -bound.lower)


def _constant_factor(ctx: NodeContext, other: Any, reciprocal: bool) -> tuple[float, Any]:
    value = ctx.examples[other] if isinstance(other, fx.Node) else other
    factor = torch.as_tensor(value, dtype=torch.float64)
    factor = 1.0 / factor if reciprocal else factor
    return float(factor.abs().max()), value


def scaling(ctx: NodeContext) -> NodeBound:
    """``a · c`` or ``a / c`` with ``c`` constant: ``max|c|`` (``max 1/|c|``).

    E.g. a normalisation ``(x − μ)/σ``.
    """
    a, b, _ = _operands(ctx)
    divide = ctx.node.target in (
        operator.truediv, operator.itruediv, torch.div, torch.true_divide, "div", "div_",
        "true_divide",
    )
    source = ctx.input
    if a is b:
        raise UnsupportedLayerError(
            f"{describe(ctx)} multiplies an input-dependent tensor by itself; a product of two "
            "input-dependent tensors has no global Lipschitz constant."
        )
    if divide and source is not a:
        raise UnsupportedLayerError(
            f"{describe(ctx)} divides by an input-dependent tensor; no rule."
        )
    other = b if source is a else a
    factor, value = _constant_factor(ctx, other, divide)
    lipschitz = ctx.bounds[source].lipschitz * factor * _broadcast_factor(ctx, source)
    if factor != 1.0 and ctx.bounds[source].lipschitz > 0:
        ctx.record("scale by constant", factor, "normalisation" if divide else "")
    lower, upper = _apply_box(ctx, source)
    if lower is not None:
        lower, upper = torch.minimum(lower, upper), torch.maximum(lower, upper)
    return NodeBound(lipschitz, lower, upper)


def concatenation(ctx: NodeContext) -> NodeBound:
    """``cat([f_1(x), …])``: ``√(Σ L_i²)`` (DenseNet: ``L_s √(1 + L_h²)`` per layer)."""
    pieces = [n for n in ctx.arguments["tensors"] if isinstance(n, fx.Node)]
    lipschitz = math.sqrt(sum(ctx.bounds[n].lipschitz ** 2 for n in pieces))  # repeats count
    lowers = {n: _operand_box(ctx, n)[0] for n in pieces}
    uppers = {n: _operand_box(ctx, n)[1] for n in pieces}
    if not ctx.boxes or any(v is None for v in lowers.values()):
        return NodeBound(lipschitz)
    return NodeBound(lipschitz, ctx.call(lowers), ctx.call(uppers))


# ----------------------------------------------------------------------------- activations
def _parameters(ctx: NodeContext) -> Mapping[str, Any]:
    """A layer's constructor arguments (its attributes) or a function's bound arguments."""
    return vars(ctx.module) if ctx.module is not None else ctx.arguments


def _leaky_relu(params: Mapping[str, Any]) -> Activation:
    slope = float(params["negative_slope"])
    return (
        Activation(max(1.0, slope)) if slope >= 0 else Activation(max(1.0, -slope), 0.0, 0.0)
    )


def _elu(params: Mapping[str, Any]) -> Activation:
    """``α(eˣ − 1)`` left of 0: slope ``α eˣ ≤ α`` (the table refuses ``α < 0``)."""
    return Activation(max(1.0, float(params["alpha"])))


def _gelu(params: Mapping[str, Any]) -> Activation:
    return ops.GELU_TANH if params["approximate"] == "tanh" else ops.GELU


#: Activations whose constant depends on their arguments, and how. The argument ranges each
#: formula holds on are checked by the table (:mod:`art_fim.lipschitz.table`) before this runs:
#: CELU's ``α(e^{x/α} − 1)`` has slope ``e^{x/α} ≤ 1`` left of 0 only for ``α > 0``.
PARAMETRISED: dict[Any, Callable[[Mapping[str, Any]], Activation]] = {
    nn.LeakyReLU: _leaky_relu, F.leaky_relu: _leaky_relu, F.leaky_relu_: _leaky_relu,
    nn.ELU: _elu, F.elu: _elu, F.elu_: _elu,
    nn.GELU: _gelu, F.gelu: _gelu,
}

#: ``sup|φ'|`` (and where φ turns) of the activations without arguments that change it.
ACTIVATIONS: dict[Any, Activation] = {
    nn.ReLU: ops.MONOTONE_1, nn.ReLU6: ops.MONOTONE_1, nn.Hardtanh: ops.MONOTONE_1,
    nn.Tanh: ops.MONOTONE_1, nn.Softsign: ops.MONOTONE_1, nn.CELU: ops.MONOTONE_1,
    nn.Softplus: ops.MONOTONE_1,
    nn.Sigmoid: ops.SIGMOID, nn.Hardsigmoid: ops.HARDSIGMOID, nn.SiLU: ops.SILU, nn.Mish: ops.MISH,
    nn.Hardswish: ops.HARDSWISH, nn.SELU: ops.SELU,
    F.relu: ops.MONOTONE_1, torch.relu: ops.MONOTONE_1, F.relu_: ops.MONOTONE_1,
    torch.relu_: ops.MONOTONE_1, F.relu6: ops.MONOTONE_1, F.hardtanh: ops.MONOTONE_1,
    F.hardtanh_: ops.MONOTONE_1, torch.tanh: ops.MONOTONE_1, F.tanh: ops.MONOTONE_1,
    F.softsign: ops.MONOTONE_1, F.celu: ops.MONOTONE_1, F.softplus: ops.MONOTONE_1,
    torch.sigmoid: ops.SIGMOID, F.sigmoid: ops.SIGMOID, F.hardsigmoid: ops.HARDSIGMOID,
    F.silu: ops.SILU, F.mish: ops.MISH, F.hardswish: ops.HARDSWISH, F.selu: ops.SELU,
    "relu": ops.MONOTONE_1, "relu_": ops.MONOTONE_1, "tanh": ops.MONOTONE_1, "sigmoid": ops.SIGMOID,
}


def _activation_of(ctx: NodeContext) -> Activation:
    key: Any = layer_type(ctx.module) if ctx.module is not None else ctx.node.target
    if key in PARAMETRISED:
        return PARAMETRISED[key](_parameters(ctx))
    return ACTIVATIONS[key]


def activation(ctx: NodeContext) -> NodeBound:
    """Elementwise ``φ``: ``sup|φ'|``; intervals through ``φ`` (decreasing then increasing)."""
    act = _activation_of(ctx)
    bound = ctx.bound
    if act.lipschitz != 1.0:
        name = type(ctx.module).__name__ if ctx.module is not None else ctx.node.name
        ctx.record(name, act.lipschitz, "sup |φ'|")
    if not ctx.boxes or bound.box is None:
        return NodeBound(bound.lipschitz * act.lipschitz)
    source = ctx.input
    lower, upper = ops.activation_interval(
        lambda t: ctx.call({source: t}), act, bound.lower, bound.upper
    )
    return NodeBound(bound.lipschitz * act.lipschitz, lower, upper)


def softmax(ctx: NodeContext) -> NodeBound:
    """Softmax as a map: its Jacobian ``diag(p) − ppᵀ`` has norm at most ½; values in [0, 1]."""
    bound = ctx.bound
    ctx.record("Softmax", 0.5, "λ_max(diag(p) − ppᵀ) ≤ ½")
    if not ctx.boxes:
        return NodeBound(0.5 * bound.lipschitz)
    return NodeBound(0.5 * bound.lipschitz, torch.zeros_like(ctx.value), torch.ones_like(ctx.value))


# ----------------------------------------------------------------------------- linear layers
def _affine_box(
    ctx: NodeContext, centre_fn: Callable[[Tensor], Tensor], radius_fn: Callable[[Tensor], Tensor]
) -> tuple[Tensor | None, Tensor | None]:
    bound = ctx.bound
    if not ctx.boxes or bound.box is None:
        return None, None
    centre, radius = (bound.lower + bound.upper) / 2, (bound.upper - bound.lower) / 2
    out_centre, out_radius = centre_fn(centre), radius_fn(radius)
    return out_centre - out_radius, out_centre + out_radius


#: The BatchNorm layers :func:`batchnorm` bounds (exact types: a subclass may compute otherwise).
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _folds_into_batchnorm(ctx: NodeContext) -> bool:
    """Whether the node's only reader is a BatchNorm that :func:`batchnorm` will bound.

    Not a layer the caller declared a constant for (``custom_layers``): that constant replaces
    the BatchNorm's, and the linear layer's own constant must stay.
    """
    users = list(ctx.node.users)
    if len(users) != 1 or users[0].op != "call_module" or users[0].args != (ctx.node,):
        return False
    module = ctx.modules.get(str(users[0].target))
    return layer_type(module) in BATCHNORMS and not isinstance(module, ctx.custom)


def linear(ctx: NodeContext) -> NodeBound:
    """``Linear``: ``‖W‖₂`` exactly (per token for 3-D inputs: the map is block-diagonal)."""
    m: nn.Linear = ctx.module  # type: ignore[assignment]
    weight = m.weight.detach().double()
    lower, upper = _affine_box(ctx, m, lambda r: F.linear(r, weight.abs()))
    if ctx.value.ndim == 2 and _folds_into_batchnorm(ctx):
        return NodeBound(ctx.bound.lipschitz, lower, upper, fold_shape=ctx.shape(ctx.input),
                         fold=lambda scale: ops.matrix_spectral_norm(weight * scale[:, None]))
    constant = ops.matrix_spectral_norm(weight)
    ctx.record("Linear", constant, "σ_max(W)")
    return NodeBound(ctx.bound.lipschitz * constant, lower, upper)


def convolution(ctx: NodeContext) -> NodeBound:
    """``Conv1d/2d/3d``: the exact operator norm on the input shape it sees (Lanczos on ``TᵀT``)."""
    m = ctx.module
    shape = ctx.shape(ctx.input)
    weight = m.weight.detach().double()
    lower, upper = _affine_box(ctx, m, lambda r: m._conv_forward(r, weight.abs(), None))
    if _folds_into_batchnorm(ctx):
        return NodeBound(ctx.bound.lipschitz, lower, upper, fold_shape=shape,
                         fold=lambda scale: ops.conv_operator_norm(m, shape, scale))
    constant = ops.conv_operator_norm(m, shape)
    ctx.record(type(m).__name__, constant, f"σ_max on {'×'.join(map(str, shape))}")
    return NodeBound(ctx.bound.lipschitz * constant, lower, upper)


def _factors(ctx: NodeContext) -> tuple[Any, Any, Any]:
    """``(left, right, bias)`` of ``F.linear(x, W, b)`` (``x Wᵀ + b``) or ``left @ right``."""
    arguments = ctx.arguments
    if "weight" in arguments:
        return arguments["input"], arguments["weight"], arguments["bias"]
    return (*_pair(arguments), None)


def functional_linear(ctx: NodeContext) -> NodeBound:
    """``F.linear(x, W, b)`` and ``x @ C`` / ``C @ x`` with constant ``W``, ``C``: ``σ_max``."""
    node = ctx.node
    left, right, bias = _factors(ctx)
    if left is right:
        raise UnsupportedLayerError(
            f"{describe(ctx)} multiplies an input-dependent tensor by itself; a product of two "
            "input-dependent tensors has no global Lipschitz constant."
        )
    source = ctx.input  # refuses a product of two input-dependent tensors
    other = right if left is source else left
    if not isinstance(other, fx.Node):
        raise UnsupportedLayerError(
            f"{describe(ctx)}: a product with a Python constant has no rule."
        )
    matrix = ctx.examples[other]
    if matrix.ndim < 2:
        raise UnsupportedLayerError(
            f"{describe(ctx)}: a product with a {matrix.ndim}-D constant has no rule."
        )
    # A stack of matrices: root-sum-square of their norms (valid whether the stack multiplies
    # separate slices of the input or broadcasts one slice into several outputs).
    norms = [ops.matrix_spectral_norm(m) for m in matrix.reshape(-1, *matrix.shape[-2:])]
    constant = math.sqrt(sum(n**2 for n in norms))
    ctx.record(
        getattr(node.target, "__name__", str(node.target)), constant, "σ_max of the constant factor"
    )
    bound = ctx.bound
    if not ctx.boxes or bound.box is None:
        return NodeBound(bound.lipschitz * constant)
    centre, radius = (bound.lower + bound.upper) / 2, (bound.upper - bound.lower) / 2
    out_centre = ctx.call({source: centre})
    replace = {source: radius, other: matrix.abs()}
    if isinstance(bias, fx.Node):
        replace[bias] = None
    out_radius = ctx.call(replace)
    return NodeBound(bound.lipschitz * constant, out_centre - out_radius, out_centre + out_radius)


def functional_convolution(ctx: NodeContext) -> NodeBound:
    """``F.conv1d/2d/3d(x, W, b, ...)``, constant ``W``: exact operator norm on the input shape."""
    node, source = ctx.node, ctx.input
    weight, bias = ctx.arguments["weight"], ctx.arguments["bias"]
    no_bias = {bias: None} if isinstance(bias, fx.Node) else {}
    shape = ctx.shape(source)
    constant = ops.linear_operator_norm(
        lambda v: ctx.call({source: v, **no_bias}), shape, device=ctx.value.device
    )
    ctx.record(str(node.target.__name__), constant, f"σ_max on {'×'.join(map(str, shape))}")
    bound = ctx.bound
    if not ctx.boxes or bound.box is None:
        return NodeBound(bound.lipschitz * constant)
    centre, radius = (bound.lower + bound.upper) / 2, (bound.upper - bound.lower) / 2
    out_centre = ctx.call({source: centre})
    out_radius = ctx.call({source: radius, weight: ctx.examples[weight].abs(), **no_bias})
    return NodeBound(bound.lipschitz * constant, out_centre - out_radius, out_centre + out_radius)


def batchnorm(ctx: NodeContext) -> NodeBound:
    """Eval-mode BatchNorm ``x ↦ s⊙x + t``.

    Folded into the preceding linear layer when it is the only user of that layer's output
    (``‖diag(s) T‖`` ≤ ``max|s| ‖T‖``), else ``max|s|``.
    """
    m = ctx.module
    if m.training:
        raise UnsupportedLayerError(
            f"{describe(ctx)} is in training mode; call model.eval() first."
        )
    scale = ops.batchnorm_scale(m)
    bound = ctx.bound
    view = (-1, *([1] * (ctx.value.ndim - 2)))
    lower, upper = _affine_box(ctx, m, lambda r: r * scale.abs().reshape(view))
    if bound.fold is not None:
        producer = ctx.input
        constant = bound.fold(scale)
        layer = f"{type(ctx.modules[str(producer.target)]).__name__}+{type(m).__name__}"
        shape = bound.fold_shape
        ctx.record(
            layer, constant, f"σ_max, BatchNorm folded, on {'×'.join(map(str, shape))}",
            shape=shape, name=f"{producer.target}+{ctx.node.target}",
        )
        return NodeBound(bound.lipschitz * constant, lower, upper)
    constant = float(scale.abs().max())
    ctx.record(type(m).__name__, constant, "max |γ|/√(σ²+ε) (not folded)")
    return NodeBound(bound.lipschitz * constant, lower, upper)


def _configuration(ctx: NodeContext) -> tuple | None:
    """Everything a parameter-free linear layer's constant depends on, or ``None`` (do not cache).

    The layer's type and every one of its attributes (``repr`` leaves out ``count_include_pad``,
    ``divisor_override``, ``ceil_mode``, ``align_corners``, ...), or the function with all its
    arguments, and the full shape of the input tensor (batch axis included: an unbatched map
    pools its leading axis as channels). Layers with parameters or buffers, and arguments that
    are other nodes, are not cached.
    """
    node, module = ctx.node, ctx.module
    source_shape = tuple(ctx.examples[ctx.input].shape)
    if module is not None:
        if any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
            return None
        state = tuple(sorted((k, repr(v)) for k, v in vars(module).items() if not k.startswith("_")
                             and k != "training"))
        return ("module", type(module), state, source_shape)
    others = {k: v for k, v in ctx.arguments.items() if v is not ctx.input}
    nodes: list[fx.Node] = []
    fx.node.map_arg(tuple(others.values()), nodes.append)
    if nodes:
        return None
    return (node.op, node.target, repr(sorted(others.items())), source_shape)


def linear_pooling(ctx: NodeContext) -> NodeBound:
    """Average, adaptive-average pooling, upsampling, means: linear maps with non-negative weights.

    The constant is the exact operator norm on the input shape (an adaptive pool that enlarges a
    small map copies entries and gets a constant above 1); boxes map endpoint to endpoint.
    """
    source = ctx.input
    shape = ctx.shape(source)
    key = _configuration(ctx)
    mode = _parameters(ctx).get("mode", "nearest")
    if mode == "bicubic" and ctx.boxes:
        raise UnsupportedLayerError(
            f"{describe(ctx)}: bicubic weights are negative; no interval rule."
        )
    constant = ctx.cache.get(key) if key is not None else None
    if constant is None:
        constant = ops.linear_operator_norm(
            lambda v: ctx.call({source: v}), shape, device=ctx.value.device
        )
        if key is not None:
            ctx.cache[key] = constant
    name = type(ctx.module).__name__ if ctx.module is not None else ctx.node.name
    ctx.record(name, constant, f"σ_max on {'×'.join(map(str, shape))}")
    lower, upper = _apply_box(ctx)
    return NodeBound(ctx.bound.lipschitz * constant, lower, upper)


def _as_tuple(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


_POOLED_AXES: dict[Any, int] = {
    nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3,
    nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3,
    F.max_pool1d: 1, F.max_pool2d: 2, F.max_pool3d: 3,
    F.adaptive_max_pool1d: 1, F.adaptive_max_pool2d: 2, F.adaptive_max_pool3d: 3,
}


def _pooled_axes(ctx: NodeContext) -> int:
    """How many trailing axes a max pool pools: 1, 2 or 3 (its ``Nd``), whatever the rank."""
    if ctx.module is not None:
        return next(_POOLED_AXES[c] for c in type(ctx.module).__mro__ if c in _POOLED_AXES)
    return _POOLED_AXES[ctx.node.target]


def max_pooling(ctx: NodeContext) -> NodeBound:
    """Max pooling: ``√m`` with ``m`` the largest number of windows covering one position.

    PyTorch pools the last ``n`` axes of an ``Nd`` pool's input, batched (``[N, C, *spatial]``)
    or not (``[C, *spatial]``, e.g. ``MaxPool1d`` on a flattened ``[N, L]`` map reads ``N`` as
    channels and pools ``L``): the windows are counted on those axes.
    """
    m, node = ctx.module, ctx.node
    n = _pooled_axes(ctx)
    spatial = tuple(ctx.examples[ctx.input].shape[-n:])
    pooled_out = tuple(ctx.value.shape[-n:])
    if m is not None:
        if getattr(m, "return_indices", False):
            raise UnsupportedLayerError(f"{describe(ctx)} returns indices; no rule.")
        if isinstance(m, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
            mults = [ops.adaptive_multiplicity(s, o) for s, o in zip(spatial, pooled_out)]
        else:
            kernel = _as_tuple(m.kernel_size, n)
            stride = _as_tuple(m.stride if m.stride is not None else m.kernel_size, n)
            pad, dil = _as_tuple(m.padding, n), _as_tuple(m.dilation, n)
            mults = [ops.window_multiplicity(s, k, st, p, d, m.ceil_mode)
                     for s, k, st, p, d in zip(spatial, kernel, stride, pad, dil)]
    elif node.target in (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d):
        mults = [ops.adaptive_multiplicity(s, o) for s, o in zip(spatial, pooled_out)]
    else:
        values = ctx.arguments
        kernel = _as_tuple(values["kernel_size"], n)
        stride = _as_tuple(values.get("stride") or values["kernel_size"], n)
        pad, dil = _as_tuple(values.get("padding", 0), n), _as_tuple(values.get("dilation", 1), n)
        mults = [ops.window_multiplicity(s, k, st, p, d, bool(values.get("ceil_mode", False)))
                 for s, k, st, p, d in zip(spatial, kernel, stride, pad, dil)]
    constant = ops.max_pool_lipschitz(mults)
    name = type(m).__name__ if m is not None else node.name
    ctx.record(name, constant, f"√(windows per position) = √{math.prod(mults)}")
    lower, upper = _apply_box(ctx)
    return NodeBound(ctx.bound.lipschitz * constant, lower, upper)


# ----------------------------------------------------------------------------- transformers
def layernorm(ctx: NodeContext) -> NodeBound:
    """LayerNorm: ``max|γ|/√(v_min + ε)``.

    ``v_min`` is the least variance over the input box (0, hence the global constant
    ``max|γ|/√ε``, without a box).
    """
    m: nn.LayerNorm = ctx.module  # type: ignore[assignment]
    bound = ctx.bound
    dim = math.prod(m.normalized_shape)
    floor = 0.0
    if bound.box is not None:
        floor = float(
            ops.min_variance(bound.lower.reshape(-1, dim), bound.upper.reshape(-1, dim)).min()
        )
    constant = ops.layernorm_lipschitz(m, floor)
    note = f"local: Var ≥ {floor:.3g} on the box" if floor > 0 else "global: max|γ|/√ε"
    ctx.record("LayerNorm", constant, note, local=floor > 0)
    out_lo, out_hi, row_norm = ops.layernorm_output_bounds(m)
    if not ctx.boxes:
        return NodeBound(bound.lipschitz * constant, row_norm=row_norm)
    out_lo, out_hi = (
        out_lo.to(ctx.value).expand_as(ctx.value), out_hi.to(ctx.value).expand_as(ctx.value)
    )
    return NodeBound(bound.lipschitz * constant, out_lo, out_hi, row_norm=row_norm)


def attention(ctx: NodeContext) -> NodeBound:
    """Multi-head self-attention.

    The local bound of :func:`~art_fim.lipschitz.operators.attention_lipschitz` with ``R`` from
    LayerNorm's output norm or from the input box.
    """
    m: nn.MultiheadAttention = ctx.module  # type: ignore[assignment]
    query, key, value = (ctx.arguments[k] for k in ("query", "key", "value"))
    if not (query is key is value):
        raise UnsupportedLayerError(
            f"{describe(ctx)}: only self-attention (query = key = value) has a rule."
        )
    if m.bias_k is not None or m.add_zero_attn:
        raise UnsupportedLayerError(
            f"{describe(ctx)} uses bias_k/bias_v or add_zero_attn; no rule."
        )
    source = ctx.input
    bound = ctx.bounds[source]
    radii = [] if bound.row_norm is None else [bound.row_norm]
    if bound.box is not None:
        corner = torch.maximum(bound.lower.abs(), bound.upper.abs())
        radii.append(float(corner.norm(dim=-1).max()))
    if not radii:
        raise UnsupportedLayerError(
            f"{describe(ctx)}: dot-product attention has no global Lipschitz constant; pass "
            "input_box=(low, high) (e.g. the pixel range (0, 1)) for a bound that holds on that "
            "box."
        )
    radius = min(radii)
    tokens = ctx.shape(source)[0] if m.batch_first else ctx.examples[source].shape[0]
    constant = ops.attention_lipschitz(m, tokens, radius)
    ctx.record(
        "MultiheadAttention", constant, f"local: {tokens} tokens of norm ≤ {radius:.3g}", local=True
    )
    if not ctx.boxes or bound.box is None:
        return NodeBound(bound.lipschitz * constant)
    lower, upper = ops.attention_output_bounds(m, bound.lower, bound.upper)
    return NodeBound(bound.lipschitz * constant, lower, upper)




# ----------------------------------------------------------------------------- shapes and casts
def shape_query(ctx: NodeContext) -> NodeBound:
    """``x.shape``, ``x.size()``, ``x.dim()``, ``len(x)``: the input's shape, not its values."""
    return NodeBound(0.0, depends=False)


def shape_only(ctx: NodeContext) -> NodeBound:
    """``zeros_like(x)``, ``ones_like(x)``, ``full_like(x, c)``: a constant of the input's shape."""
    if not ctx.boxes:
        return NodeBound(0.0, depends=False)
    return NodeBound(0.0, ctx.value, ctx.value, depends=False)


#: Casts that keep a real number as it is (up to rounding, which the bound ignores everywhere:
#: it bounds the network's real-arithmetic function).
FLOATING = (torch.float32, torch.float64)


def _cast_target(ctx: NodeContext) -> list[Any]:
    """Every dtype a ``.to()`` / ``.float()`` / ``.double()`` call asks for."""
    method, arguments = str(ctx.node.target), ctx.arguments
    if method == "float":
        return [torch.float32]
    if method == "double":
        return [torch.float64]
    wanted: list[Any] = []
    for value in (*arguments["args"], arguments["kwargs"].get("dtype")):
        if isinstance(value, fx.Node):  # .to(other): other's dtype
            value = getattr(ctx.examples[value], "dtype", value)
        if isinstance(value, torch.dtype):
            wanted.append(value)
        elif not (value is None or isinstance(value, (str, torch.device))):
            wanted.append(value)
    return wanted


def cast(ctx: NodeContext) -> NodeBound:
    """``.to(dtype, device)``, ``.float()``, ``.double()``: the identity on real numbers.

    Only float32 and float64 targets: a cast to an integer or boolean type rounds (no Lipschitz
    constant), and one to float16 or bfloat16 rounds far more coarsely than the inputs. The walk
    keeps float64 through a cast (:mod:`art_fim.lipschitz.graph`), so the node's bound is its
    input's.
    """
    unknown = set(ctx.arguments.get("kwargs", {})) - {
        "dtype", "device", "non_blocking", "copy", "memory_format"
    }
    bad = [w for w in _cast_target(ctx) if w not in FLOATING]
    if unknown or bad:
        what = ", ".join(map(str, bad)) or ", ".join(sorted(unknown))
        raise UnsupportedLayerError(
            f"{describe(ctx)} casts an input-dependent tensor to {what}: only casts to float32 or "
            "float64 have a rule (integer and boolean casts round, which no Lipschitz constant "
            "bounds). Keep the computation in floating point."
        )
    return ctx.bound
