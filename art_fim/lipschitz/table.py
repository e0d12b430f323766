"""Which rule bounds which node, for exactly which call: the walk proves a node or refuses it.

A node reaches a rule only through this table:

* a layer by its **exact** type (a subclass may compute something else), with every argument
  of that type's constructor named here, and the ones that change the constant checked
  (``CELU``'s ``alpha > 0``); a PyTorch whose constructor takes an argument this table does not
  name is refused rather than read as the version the rule was derived for;
* a function or a tensor method by its target and the exact parameter list it was derived for
  (:mod:`art_fim.lipschitz.signatures`): keyword calls bind as positional ones do, and a keyword
  the list does not name (``out=``, ``rounding_mode="floor"``) refuses the node;
* every argument other than the ones that carry the input must not depend on the input's
  values (a scale or a stride computed from the input would be frozen at the example input).

Anything else that depends on the input is refused by name, with what to do.
"""

from __future__ import annotations

import builtins
import inspect
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from art_fim.lipschitz import rules as r
from art_fim.lipschitz.rules import (
    NodeBound,
    NodeContext,
    UnsupportedLayerError,
    describe,
    layer_type,
)
from art_fim.lipschitz.signatures import (
    FALSE,
    FINITE,
    NON_NEGATIVE,
    NONE,
    POSITIVE,
    Check,
    Spec,
    bind,
    equals,
    spec,
)

Rule = Callable[[NodeContext], NodeBound]

_FLOAT_DTYPE: Check = (lambda v: v is None or v in r.FLOATING, "None, float32 or float64")
_SOFTPLUS_THRESHOLD: Check = (
    lambda v: v == math.inf,
    "inf: PyTorch's Softplus returns x itself where βx > threshold, a jump of "
    "log(1 + e^(−threshold))/β that no Lipschitz constant covers",
)


@dataclass(frozen=True)
class Op:
    """A rule and the call it was derived for."""

    rule: Rule
    call: Spec


@dataclass(frozen=True)
class LayerOp:
    """A rule for one layer type.

    Attributes:
        rule: the rule.
        constructor: every parameter of the type's ``__init__`` the rule was derived with.
        checks: ``{attribute: check}`` for the constructor arguments that change the constant.
        call: the ``forward`` parameters (which carry the input, which must be ``None``, ...).
    """

    rule: Rule
    constructor: tuple[str, ...]
    checks: Mapping[str, Check] = field(default_factory=dict)
    call: Spec = field(default_factory=lambda: spec("input"))


def _layer(rule: Rule, constructor: str, **checks: Check) -> LayerOp:
    return LayerOp(rule, tuple(p.strip() for p in constructor.split(",") if p.strip()), checks)


_CONV = (
    "in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode"
)
_BN = "num_features, eps, momentum, affine, track_running_stats, bias"
_AVG = "kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override"
_MAX = "kernel_size, stride, padding, dilation, return_indices, ceil_mode"
_ATTENTION = spec(
    "query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None, "
    "average_attn_weights=True, is_causal=False",
    inputs=("query", "key", "value"), key_padding_mask=NONE, attn_mask=NONE, is_causal=FALSE,
)

LAYERS: dict[type[nn.Module], LayerOp] = {
    nn.Linear: _layer(r.linear, "in_features, out_features, bias"),
    nn.modules.linear.NonDynamicallyQuantizableLinear: _layer(
        r.linear, "in_features, out_features, bias"
    ),
    **{cls: _layer(r.convolution, _CONV) for cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d)},
    **{cls: _layer(r.batchnorm, _BN) for cls in r.BATCHNORMS[:3]},
    nn.SyncBatchNorm: _layer(r.batchnorm, _BN + ", process_group"),
    nn.LayerNorm: _layer(r.layernorm, "normalized_shape, eps, elementwise_affine, bias"),
    nn.MultiheadAttention: LayerOp(
        r.attention,
        ("embed_dim", "num_heads", "dropout", "bias", "add_bias_kv", "add_zero_attn", "kdim",
         "vdim", "batch_first"),
        call=_ATTENTION,
    ),
    **{cls: _layer(r.linear_pooling, _AVG) for cls in (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)},
    **{cls: _layer(r.linear_pooling, "output_size")
       for cls in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)},
    nn.Upsample: _layer(
        r.linear_pooling, "size, scale_factor, mode, align_corners, recompute_scale_factor"
    ),
    **{cls: _layer(r.max_pooling, _MAX, return_indices=FALSE)
       for cls in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)},
    **{cls: _layer(r.max_pooling, "output_size, return_indices", return_indices=FALSE)
       for cls in (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)},
    nn.Flatten: _layer(r.reshaping, "start_dim, end_dim"),
    nn.Unflatten: _layer(r.reshaping, "dim, unflattened_size"),
    nn.Identity: _layer(r.reshaping, "args, kwargs"),
    **{cls: _layer(r.reshaping, "p, inplace")
       for cls in (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)},
    nn.Softmax: _layer(r.softmax, "dim"),
    **{cls: _layer(r.activation, "inplace")
       for cls in (nn.ReLU, nn.ReLU6, nn.Hardsigmoid, nn.SiLU, nn.Mish, nn.Hardswish, nn.SELU)},
    **{cls: _layer(r.activation, "args, kwargs") for cls in (nn.Tanh, nn.Sigmoid, nn.Softsign)},
    nn.Hardtanh: _layer(r.activation, "min_val, max_val, inplace, min_value, max_value"),
    nn.Softplus: _layer(r.activation, "beta, threshold", beta=POSITIVE,
                        threshold=_SOFTPLUS_THRESHOLD),
    nn.CELU: _layer(r.activation, "alpha, inplace", alpha=POSITIVE),
    nn.ELU: _layer(r.activation, "alpha, inplace", alpha=NON_NEGATIVE),
    nn.LeakyReLU: _layer(r.activation, "negative_slope, inplace", negative_slope=FINITE),
    nn.GELU: _layer(r.activation, "approximate", approximate=equals("none", "tanh")),
}

_POOL_AVG = "input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True"
_POOL_MAX = (
    "input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False"
)
_SUM = spec("input, other, *, alpha=1", inputs=("input", "other"), alpha=FINITE)
_OPERATOR = spec("a, b, /", inputs=("a", "b"))
_UNARY_OPERATOR = spec("a, /", inputs=("a",))
_ONE = spec("input")
_IN_PLACE_FLAG = spec("input, inplace=False")

FUNCTIONS: dict[Any, Op] = {
    **{f: Op(r.addition, _OPERATOR) for f in (operator.add, operator.iadd)},
    torch.add: Op(r.addition, _SUM),
    **{f: Op(r.subtraction, _OPERATOR) for f in (operator.sub, operator.isub)},
    **{f: Op(r.subtraction, _SUM) for f in (torch.sub, torch.subtract)},
    operator.neg: Op(r.negation, _UNARY_OPERATOR), torch.neg: Op(r.negation, _ONE),
    **{f: Op(r.scaling, _OPERATOR)
       for f in (operator.mul, operator.imul, operator.truediv, operator.itruediv)},
    torch.mul: Op(r.scaling, spec("input, other", inputs=("input", "other"))),
    torch.div: Op(r.scaling, spec("input, other, *, rounding_mode=None", inputs=("input", "other"),
                                  rounding_mode=NONE)),
    torch.true_divide: Op(r.scaling, spec("input, other", inputs=("input", "other"))),
    **{f: Op(r.concatenation, spec("tensors, dim=0", inputs=("tensors",)))
       for f in (torch.cat, torch.concat, torch.stack)},
    torch.flatten: Op(r.reshaping, spec("input, start_dim=0, end_dim=-1")),
    torch.reshape: Op(r.reshaping, spec("input, shape")),
    torch.permute: Op(r.reshaping, spec("input, dims")),
    torch.transpose: Op(r.reshaping, spec("input, dim0, dim1")),
    torch.squeeze: Op(r.reshaping, spec("input, dim=None")),
    torch.unsqueeze: Op(r.reshaping, spec("input, dim")),
    operator.getitem: Op(r.indexing, spec("a, b, /", inputs=("a",))),
    F.pad: Op(r.padding, spec("input, pad, mode='constant', value=None")),
    F.dropout: Op(r.dropout_function, spec("input, p=0.5, training=True, inplace=False")),
    F.avg_pool1d: Op(r.linear_pooling, spec(_POOL_AVG)),
    **{f: Op(r.linear_pooling, spec(_POOL_AVG + ", divisor_override=None"))
       for f in (F.avg_pool2d, F.avg_pool3d)},
    **{f: Op(r.linear_pooling, spec("input, output_size"))
       for f in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)},
    torch.mean: Op(r.linear_pooling, spec("input, dim=None, keepdim=False, *, dtype=None",
                                          dtype=_FLOAT_DTYPE)),
    F.interpolate: Op(r.linear_pooling, spec(
        "input, size=None, scale_factor=None, mode='nearest', align_corners=None, "
        "recompute_scale_factor=None, antialias=False"
    )),
    **{f: Op(r.max_pooling, spec(_POOL_MAX, return_indices=FALSE))
       for f in (F.max_pool1d, F.max_pool2d, F.max_pool3d)},
    **{f: Op(r.max_pooling, spec("input, output_size, return_indices=False",
                                 return_indices=FALSE))
       for f in (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)},
    F.softmax: Op(r.softmax, spec("input, dim=None, _stacklevel=3, dtype=None",
                                  dtype=_FLOAT_DTYPE)),
    torch.softmax: Op(r.softmax, spec("input, dim, dtype=None", dtype=_FLOAT_DTYPE)),
    F.linear: Op(r.functional_linear, spec("input, weight, bias=None")),
    operator.matmul: Op(r.functional_linear, _OPERATOR),
    torch.matmul: Op(r.functional_linear, spec("input, other", inputs=("input", "other"))),
    **{f: Op(r.functional_convolution,
             spec("input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1"))
       for f in (F.conv1d, F.conv2d, F.conv3d)},
    **{f: Op(r.activation, _IN_PLACE_FLAG)
       for f in (F.relu, F.relu6, F.hardsigmoid, F.silu, F.mish, F.hardswish, F.selu)},
    **{f: Op(r.activation, _ONE)
       for f in (torch.relu, F.relu_, torch.relu_, torch.tanh, F.tanh, torch.sigmoid, F.sigmoid,
                 F.softsign)},
    **{f: Op(r.activation, spec("input, min_val=-1.0, max_val=1.0, inplace=False"))
       for f in (F.hardtanh,)},
    F.hardtanh_: Op(r.activation, spec("input, min_val=-1.0, max_val=1.0")),
    F.softplus: Op(r.activation, spec("input, beta=1.0, threshold=20.0", beta=POSITIVE,
                                      threshold=_SOFTPLUS_THRESHOLD)),
    F.celu: Op(r.activation, spec("input, alpha=1.0, inplace=False", alpha=POSITIVE)),
    F.elu: Op(r.activation, spec("input, alpha=1.0, inplace=False", alpha=NON_NEGATIVE)),
    F.elu_: Op(r.activation, spec("input, alpha=1.0", alpha=NON_NEGATIVE)),
    F.leaky_relu: Op(r.activation, spec("input, negative_slope=0.01, inplace=False",
                                        negative_slope=FINITE)),
    F.leaky_relu_: Op(r.activation, spec("input, negative_slope=0.01", negative_slope=FINITE)),
    F.gelu: Op(r.activation, spec("input, approximate='none'",
                                  approximate=equals("none", "tanh"))),
    # The input's shape, not its values.
    builtins.len: Op(r.shape_query, spec("obj, /", inputs=(), shape_only=("obj",))),
    builtins.getattr: Op(r.shape_query, spec(
        "obj, name, /", inputs=(), shape_only=("obj",),
        name=equals("shape", "ndim", "dtype", "device", "is_cuda"),
    )),
    **{f: Op(r.shape_only, spec("input, *, dtype=None, layout=None, device=None, "
                                "requires_grad=False, memory_format=None",
                                inputs=(), shape_only=("input",)))
       for f in (torch.zeros_like, torch.ones_like)},
    torch.full_like: Op(r.shape_only, spec(
        "input, fill_value, *, dtype=None, layout=None, device=None, requires_grad=False, "
        "memory_format=None", inputs=(), shape_only=("input",),
    )),
}

_SELF = ("self",)
_SHAPE = spec("self, *shape", inputs=_SELF)
_METHOD_SUM = spec("self, other, *, alpha=1", inputs=("self", "other"), alpha=FINITE)
_METHOD_PRODUCT = spec("self, other", inputs=("self", "other"))

METHODS: dict[str, Op] = {
    **{m: Op(r.reshaping, _SHAPE) for m in ("view", "reshape", "permute")},
    "flatten": Op(r.reshaping, spec("self, start_dim=0, end_dim=-1", inputs=_SELF)),
    "transpose": Op(r.reshaping, spec("self, dim0, dim1", inputs=_SELF)),
    "contiguous": Op(r.reshaping, spec("self, memory_format=None", inputs=_SELF)),
    "squeeze": Op(r.reshaping, spec("self, dim=None", inputs=_SELF)),
    "unsqueeze": Op(r.reshaping, spec("self, dim", inputs=_SELF)),
    "clone": Op(r.reshaping, spec("self, *, memory_format=None", inputs=_SELF)),
    **{m: Op(r.reshaping, spec("self, other", inputs=_SELF, shape_only=("other",)))
       for m in ("view_as", "reshape_as")},
    **{m: Op(r.cast, spec("self, memory_format=None", inputs=_SELF)) for m in ("float", "double")},
    "to": Op(r.cast, spec("self, *args, **kwargs", inputs=_SELF, shape_only=("args",))),
    **{m: Op(r.replicating, spec("self, *sizes", inputs=_SELF)) for m in ("expand", "repeat")},
    "expand_as": Op(r.replicating, spec("self, other", inputs=_SELF, shape_only=("other",))),
    **{m: Op(r.addition, _METHOD_SUM) for m in ("add", "add_")},
    **{m: Op(r.addition, _METHOD_PRODUCT) for m in ("__add__", "__iadd__")},
    **{m: Op(r.subtraction, _METHOD_SUM) for m in ("sub", "sub_")},
    **{m: Op(r.scaling, _METHOD_PRODUCT) for m in ("mul", "mul_", "true_divide")},
    **{m: Op(r.scaling, spec("self, other, *, rounding_mode=None", inputs=("self", "other"),
                             rounding_mode=NONE))
       for m in ("div", "div_")},
    "neg": Op(r.negation, spec("self", inputs=_SELF)),
    "mean": Op(r.linear_pooling, spec("self, dim=None, keepdim=False, *, dtype=None",
                                      inputs=_SELF, dtype=_FLOAT_DTYPE)),
    "softmax": Op(r.softmax, spec("self, dim, dtype=None", inputs=_SELF, dtype=_FLOAT_DTYPE)),
    "matmul": Op(r.functional_linear, _METHOD_PRODUCT),
    **{m: Op(r.activation, spec("self", inputs=_SELF)) for m in ("relu", "relu_", "tanh",
                                                                 "sigmoid")},
    **{m: Op(r.shape_query, spec("self, dim=None", inputs=(), shape_only=_SELF))
       for m in ("size", "dim", "ndimension", "numel")},
}

# Calls that leave the tensor world: their results are Python values, frozen at the example.
_ESCAPES = {"item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__"}

_SUPPORTED = (
    "Supported: Linear, Conv1d/2d/3d (also F.linear, F.conv*d and matmul with constant weights), "
    "BatchNorm (eval), LayerNorm, MultiheadAttention (self-attention), max/average/adaptive "
    "pooling, elementwise activations, residual sums, concatenation, reshapes, casts to float32 "
    "or float64 and scaling by constants. For a custom elementwise layer with a known constant, "
    "pass custom_layers={LayerType: constant}."
)


def _constructor(cls: type) -> tuple[str, ...]:
    names = inspect.signature(cls.__init__).parameters
    return tuple(p for p in names if p not in ("self", "device", "dtype"))


def _refuse_argument(ctx: NodeContext, name: str, value: Any, must: str) -> None:
    raise UnsupportedLayerError(
        f"{describe(ctx)} has {name}={value!r}; its rule holds for {name} {must}. No rule for "
        "this configuration."
    )


def _check_layer(ctx: NodeContext, op: LayerOp) -> None:
    """Every constructor argument known to the rule, and the ones that matter in range."""
    module = ctx.module
    unknown = [p for p in _constructor(layer_type(module)) if p not in op.constructor]
    if unknown:
        raise UnsupportedLayerError(
            f"{describe(ctx)} takes constructor argument(s) {', '.join(unknown)} that its rule "
            "was not derived for (a newer PyTorch?); no rule for this configuration."
        )
    for name, (ok, must) in op.checks.items():
        value = getattr(module, name)
        if not ok(value):
            _refuse_argument(ctx, name, value, must)


def _nodes_in(value: Any) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg(value, found.append)
    return found


def _check_call(ctx: NodeContext, call: Spec) -> None:
    """Bind the call, then check its arguments: only the input parameters may carry the input."""
    node = ctx.node
    try:
        arguments = bind(call.signature, node.args, node.kwargs)
    except TypeError as err:
        raise UnsupportedLayerError(
            f"{describe(ctx)} is called with arguments its rule was not derived for ({err}); the "
            f"rule takes ({call.signature.__str__()[1:-1]}). No rule for this call."
        ) from None
    ctx.arguments = arguments
    for name, value in arguments.items():
        if name in call.inputs or name in call.shape_only:
            continue
        dependent = [n for n in _nodes_in(value) if ctx.bounds[n].depends]
        if dependent:
            raise UnsupportedLayerError(
                f"{describe(ctx)} takes {name} from {dependent[0].name!r}, which depends on the "
                "input's values: the walk would freeze it at its example input. Only a constant "
                f"or a shape may be passed as {name}."
            )
    for name, (ok, must) in call.checks.items():
        value = arguments[name]
        if isinstance(value, fx.Node):
            value = ctx.examples[value]
        if not ok(value):
            _refuse_argument(ctx, name, value, must)
    inputs: list[fx.Node] = []
    for name in call.inputs:
        inputs += [n for n in _nodes_in(arguments.get(name)) if ctx.bounds[n].depends]
    ctx.inputs = list(dict.fromkeys(inputs))


def _escapes(ctx: NodeContext) -> bool:
    """Whether an input-dependent node's value left the tensor world (a Python number, a list)."""
    node = ctx.node
    if node.op == "call_method" and str(node.target) in _ESCAPES:
        return True
    if node.op == "call_function" and node.target is builtins.getattr:
        return node.args[1] in _ESCAPES
    has_tensor = isinstance(ctx.value, torch.Tensor) or (
        isinstance(ctx.value, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in ctx.value)
    )
    return not has_tensor and ctx.value is not None


def op_for(ctx: NodeContext) -> tuple[Rule, Spec]:
    """The rule for an input-dependent node and the call it binds to, or a refusal naming it."""
    node = ctx.node
    layer = FUNCTIONS.get(node.target) if node.op == "call_function" else None
    if node.op == "call_method":
        layer = METHODS.get(str(node.target))
    is_shape = layer is not None and layer.rule is r.shape_query
    if not is_shape and _escapes(ctx):
        raise UnsupportedLayerError(
            f"{describe(ctx)} turns an input-dependent tensor into a Python value "
            f"({type(ctx.value).__name__}): the walk would freeze it at its example input and "
            "bound a different function. Keep the computation in tensors (no .item(), .tolist(), "
            "int(), float() or bool() of values that depend on the input)."
        )
    if node.op == "call_module":
        module_op = LAYERS.get(layer_type(ctx.module))
        if module_op is None:
            raise UnsupportedLayerError(f"No ℓ2 Lipschitz rule for {describe(ctx)}. {_SUPPORTED}")
        _check_layer(ctx, module_op)
        return module_op.rule, module_op.call
    if layer is None:
        raise UnsupportedLayerError(f"No ℓ2 Lipschitz rule for {describe(ctx)}. {_SUPPORTED}")
    return layer.rule, layer.call


def bound_node(ctx: NodeContext) -> NodeBound:
    """The node's bound by its rule, after every check of its call (see the module docstring)."""
    rule, call = op_for(ctx)
    _check_call(ctx, call)
    return rule(ctx)
