"""An upper bound on a network's ℓ2 Lipschitz constant, from its real module graph.

The network is traced with ``torch.fx`` (its own ``forward``, whatever the architecture), run
once on an example input of the stated shape in float64, and every node gets a bound by the
rules of :mod:`art_fim.lipschitz.rules`: per-layer constants on the real weights and shapes,
composed along the graph (products along paths, sums at residual joins, root-sum-squares at
concatenations). The result bounds ``‖z(a) − z(b)‖₂ / ‖a − b‖₂`` for the logits ``z``: over
all inputs, or, for networks with attention (which has no global constant) or a LayerNorm whose
input variance the box keeps away from 0, over inputs in the stated box.

| Paper link: https://arxiv.org/abs/2410.23382 (Lipschitz constant from the architecture)
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import logging
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, fx, nn

from art_fim.lipschitz.rules import (
    LayerBound,
    NodeBound,
    NodeContext,
    UnsupportedLayerError,
    describe,
    rule_for,
)
from art_fim.triton_guard import keep_triton_out_beside_tensorflow

logger = logging.getLogger(__name__)

Box = tuple[Any, Any]


@dataclass(frozen=True)
class LipschitzBound:
    """An upper bound on the ℓ2 Lipschitz constant of a network's logits.

    Attributes:
        value: the bound ``L``: ``‖z(a) − z(b)‖₂ ≤ L ‖a − b‖₂``.
        layers: the constant of every layer, in graph order (1-Lipschitz activations and shape
            operations are left out).
        input_shape: shape of one input.
        input_box: the ``(low, high)`` box the bound holds on when :attr:`local`, else ``None``
            or the box that was given.
        local: ``True`` when some constant holds only for inputs in :attr:`input_box`
            (attention; LayerNorm with a variance floor); otherwise the bound is global.
    """

    value: float
    layers: tuple[LayerBound, ...]
    input_shape: tuple[int, ...]
    input_box: Box | None
    local: bool

    def __float__(self) -> float:
        """The bound, :attr:`value`."""
        return self.value

    def table(self) -> str:
        """The per-layer constants as a plain-text table."""
        rows = [f"{'layer':<44}{'type':<26}{'constant':>12}  input      note"]
        for r in self.layers:
            shape = "×".join(map(str, r.input_shape))
            rows.append(
                f"{r.name[:43]:<44}{r.layer[:25]:<26}{r.constant:>12.5g}  {shape:<10} {r.note}"
            )
        scope = f"for inputs in {self.input_box}" if self.local else "global"
        rows.append(f"bound on the logits' ℓ2 Lipschitz constant: {self.value:.6g} ({scope})")
        return "\n".join(rows)


class _Tracer(fx.Tracer):
    """fx's default tracer (torch.nn layers are leaves), plus user-declared leaf layers."""

    def __init__(self, leaves: tuple[type[nn.Module], ...]) -> None:
        super().__init__()
        self._leaves = leaves

    # Overrides fx.Tracer: the leaf types stay whole, as one node each.
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, self._leaves) or super().is_leaf_module(m, module_qualified_name)


@contextlib.contextmanager
def _traceable_len() -> Iterator[None]:
    """Record ``len(tensor)`` as a graph node instead of failing.

    ``len(x)`` is a common batch size. fx cannot trace the builtin (``Proxy.__len__`` must
    return an int). While tracing, ``len`` of a proxy becomes a ``call_function`` node; every
    other argument goes to the real builtin.
    """
    original = builtins.len

    def traced_len(obj: Any) -> Any:
        if isinstance(obj, fx.Proxy):
            return obj.tracer.create_proxy("call_function", original, (obj,), {})
        return original(obj)

    builtins.len = traced_len
    try:
        yield
    finally:
        builtins.len = original


def trace(model: nn.Module, leaves: tuple[type[nn.Module], ...] = ()) -> fx.GraphModule:
    """The network's module graph (``torch.fx``), with clear errors when it cannot be traced."""
    tracer = _Tracer(leaves)
    if tracer.is_leaf_module(model, ""):
        model = nn.Sequential(model)  # a single layer: trace it as a call, not through its forward
    try:
        with _traceable_len():
            graph = tracer.trace(model)
    except Exception as err:  # fx raises TraceError, RuntimeError, TypeError, ... for one cause
        raise UnsupportedLayerError(
            f"torch.fx could not trace {type(model).__name__} ({type(err).__name__}: {err}). "
            "The bound walks the module graph, so forward() must be traceable: no Python control "
            "flow on tensor values."
        ) from err
    return fx.GraphModule(tracer.root, graph)


def _has_tensor(value: Any) -> bool:
    if isinstance(value, Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return any(_has_tensor(v) for v in value)
    return False


class _Propagation(fx.Interpreter):
    """Runs the graph once on an example input and bounds every node on the way."""

    def __init__(
        self,
        gm: fx.GraphModule,
        box: tuple[Tensor, Tensor] | None,
        custom_layers: Mapping[type, float],
    ) -> None:
        super().__init__(gm)
        self.extra_traceback = False  # keep the rules' error messages (and types) as raised
        self.box = box
        self.custom_layers = dict(custom_layers)
        self.bounds: dict[fx.Node, NodeBound] = {}
        self.records: list[LayerBound] = []
        self.modules = dict(gm.named_modules())
        self.cache: dict[tuple, float] = {}
        self._input_seen = False

    def run_node(self, n: fx.Node) -> Any:  # overrides fx.Interpreter
        if n.op == "call_module":
            _check_batch_independent(str(n.target), self.modules[str(n.target)])
        value = super().run_node(n)
        self.bounds[n] = self._bound(n, value)
        return value

    def _constant(self, value: Any) -> NodeBound:
        return NodeBound(0.0, value, value) if self.box is not None else NodeBound(0.0)

    def _bound(self, n: fx.Node, value: Any) -> NodeBound:
        if n.op == "placeholder":
            if self._input_seen:
                return self._constant(value)
            self._input_seen = True
            return NodeBound(1.0, *self.box) if self.box is not None else NodeBound(1.0)
        if n.op == "output":
            return self.bounds[n.args[0]] if isinstance(n.args[0], fx.Node) else NodeBound(0.0)
        if n.op == "get_attr" or (not n.users and n.op != "output"):
            return self._constant(value)
        inputs: list[fx.Node] = []
        fx.node.map_arg((n.args, n.kwargs), inputs.append)
        inputs = [
            a for a in dict.fromkeys(inputs) if self.bounds[a].lipschitz > 0 or self.bounds[a].fold
        ]
        if not inputs or not _has_tensor(value):
            return self._constant(value)  # depends on the input's shape at most
        module = self.modules[str(n.target)] if n.op == "call_module" else None
        ctx = NodeContext(
            node=n, value=value, module=module, inputs=inputs, bounds=self.bounds,
            examples=self.env, modules=self.modules, call=lambda replace: self._call(n, replace),
            boxes=self.box is not None, records=self.records, cache=self.cache,
        )
        _check_mutation(ctx)
        if module is not None and isinstance(module, tuple(self.custom_layers)):
            constant = next(c for t, c in self.custom_layers.items() if isinstance(module, t))
            ctx.record(type(module).__name__, constant, "declared by the caller")
            return NodeBound(ctx.bound.lipschitz * constant)
        return rule_for(ctx)(ctx)

    def _call(self, n: fx.Node, replace: Mapping[fx.Node, Any]) -> Any:
        def load(arg: fx.Node) -> Any:
            if arg in replace:
                value = replace[arg]
                # A copy, so that in-place ops stay local.
                return value.clone() if isinstance(value, Tensor) else value
            return self.env[arg]

        args = fx.node.map_arg(n.args, load)
        kwargs = fx.node.map_arg(n.kwargs, load)
        return getattr(self, n.op)(n.target, args, kwargs)


def _check_batch_independent(name: str, module: nn.Module) -> None:
    """Refuse, before it runs, a BatchNorm that normalises with batch statistics in eval mode.

    With ``track_running_stats=False`` the output of one input depends on the rest of the batch
    (PyTorch would fail first on the walk's batch of one for a ``[1, C]`` input, with a message
    about training).
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_var is None:
        cls = type(module)
        raise UnsupportedLayerError(
            f"Layer {name!r} ({cls.__module__}.{cls.__qualname__}) has no running statistics "
            "(track_running_stats=False): it normalises every batch by its own statistics, so "
            "one input's output depends on the others and no per-input Lipschitz constant exists. "
            "Train it with running statistics, or replace it."
        )


_IN_PLACE_FUNCTIONS = {operator.iadd, operator.isub, operator.imul, operator.itruediv}


def _check_mutation(ctx: NodeContext) -> None:
    """Refuse an in-place operation on a tensor that other nodes also read.

    The graph shows those readers the tensor before the mutation, while at run time they see it
    after: the walk would bound the wrong function. (``x = relu_(x)`` chains, the usual case,
    are fine: the mutated tensor has no other reader.)
    """
    n = ctx.node
    in_place = (
        (ctx.module is not None and getattr(ctx.module, "inplace", False))
        or (n.op == "call_function" and (n.target in _IN_PLACE_FUNCTIONS
                                          or n.kwargs.get("inplace", False)
                                          or getattr(n.target, "__name__", "").endswith("_")))
        or (n.op == "call_method" and str(n.target).endswith("_"))
    )
    target = n.args[0] if n.args else None
    if in_place and isinstance(target, fx.Node) and len(target.users) > 1:
        readers = ", ".join(u.name for u in target.users if u is not n)
        raise UnsupportedLayerError(
            f"{describe(ctx)} modifies {target.name!r} in place, which {readers} also read: "
            "the traced graph does not show them the change. Use the out-of-place operation."
        )


def _box_tensors(box: Box, shape: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    low, high = (torch.as_tensor(np.asarray(b, dtype=np.float64), device=device) for b in box)
    low, high = (b.expand(1, *shape).clone() for b in (low, high))
    if bool((low > high).any()):
        raise ValueError(
            f"input_box has low > high somewhere; pass (low, high) with low ≤ high: {box}."
        )
    return low, high


def _module_and_defaults(
    model: Any, input_shape: tuple[int, ...] | None, input_box: Box | None
) -> tuple[nn.Module, tuple[int, ...], Box | None]:
    """The network to bound (an ART classifier's preprocessing prepended), input shape and box."""
    from art.estimators.classification import PyTorchClassifier

    if isinstance(model, PyTorchClassifier):
        from art_fim.lipschitz.preprocessing import classifier_module

        shape = tuple(input_shape or model.input_shape)
        box = input_box if input_box is not None else model.clip_values
        return classifier_module(model, shape), shape, box
    if isinstance(model, nn.Module):
        if input_shape is None:
            raise ValueError(
                "input_shape is required for a torch.nn.Module: the constants of convolutions and "
                "pooling depend on the input size, e.g. lipschitz_bound(model, (3, 32, 32))."
            )
        return model, tuple(input_shape), input_box
    raise TypeError(
        "lipschitz_bound takes a torch.nn.Module or an ART PyTorchClassifier, got "
        f"{type(model).__name__}."
    )


def lipschitz_bound(
    model: Any,
    input_shape: tuple[int, ...] | None = None,
    input_box: Box | None = None,
    custom_layers: Mapping[type[nn.Module], float] | None = None,
) -> LipschitzBound:
    """Upper bound on the ℓ2 Lipschitz constant of a network's logits on inputs of ``input_shape``.

    ``‖z(a) − z(b)‖₂ ≤ L ‖a − b‖₂`` for all inputs (``a``, ``b`` in ``input_box`` when the
    bound is :attr:`~LipschitzBound.local`). Computed on the real instance: the module graph is
    traced with ``torch.fx`` and run once in float64; ``Linear`` layers contribute ``σ_max(W)``,
    convolutions their exact operator norm on the shape they see (an eval-mode BatchNorm that
    follows a convolution is folded into it), activations ``sup|φ'|``, pooling its exact constant,
    LayerNorm and self-attention local constants on the box; the constants compose along the
    graph (products, residual sums ``1 + L``, concatenations ``√(Σ L_i²)``). Layers without a rule
    raise :class:`UnsupportedLayerError` naming them.

    | Paper link: https://arxiv.org/abs/2410.23382

    Args:
        model: a ``torch.nn.Module`` in eval mode returning logits, or an ART ``PyTorchClassifier``
            (its standardisation preprocessing is part of the function; its ``input_shape`` and
            ``clip_values`` are the defaults; its model is bounded in eval mode, as ART's
            ``predict`` runs it, on a copy: the classifier's module and flags are not changed).
        input_shape: shape of one input, e.g. ``(3, 32, 32)``.
        input_box: ``(low, high)`` (scalars or arrays broadcastable to ``input_shape``): inputs the
            bound must cover. Needed for attention; lets LayerNorm use a variance floor. Ignored
            by every other layer, whose constants are global.
        custom_layers: ``{module type: constant}`` for elementwise layers the rules do not know.

    Returns:
        A :class:`LipschitzBound` (``float(result)`` is the bound).

    Raises:
        UnsupportedLayerError: a layer without a rule, or a forward that fx cannot trace.
        ValueError: a bare module in training mode, a missing ``input_shape``, or a bad box.
    """
    module, shape, box = _module_and_defaults(model, input_shape, input_box)
    if isinstance(model, nn.Module):
        if any(m.training for m in module.modules()):
            raise ValueError(
                "The model is in training mode (batch normalisation uses batch statistics and "
                "dropout is random); call model.eval() first."
            )
    elif any(m.training for m in model.model.modules()):
        logger.info(
            "The classifier's model is in training mode; it is bounded in eval mode, the mode "
            "ART's predict runs it in (its flags are left as they are)."
        )
    custom_layers = dict(custom_layers or {})
    # The convolutions' operator norms use torch.func.vjp, which loads torch._dynamo (Triton).
    keep_triton_out_beside_tensorflow()
    # A copy: the caller's module keeps its weights, dtype and training flags. A classifier is
    # bounded in eval mode, the mode ART's predict and class_gradient run it in.
    network = copy.deepcopy(module).to(torch.float64).eval()
    gm = trace(network, tuple(custom_layers))
    device = next((p.device for p in network.parameters()), torch.device("cpu"))
    boxes = _box_tensors(box, shape, device) if box is not None else None
    if boxes is not None:
        example = boxes[0].clone()
    else:
        example = torch.zeros(1, *shape, dtype=torch.float64, device=device)
    propagation = _Propagation(gm, boxes, custom_layers)
    with torch.no_grad():
        output = propagation.run(example)
    if not isinstance(output, Tensor):
        raise ValueError(
            f"The model returned {type(output).__name__}; expected a tensor of logits."
        )
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    records = tuple(propagation.records)
    local = any(r.local for r in records)
    return LipschitzBound(propagation.bounds[out_node].lipschitz, records, shape, box, local)
