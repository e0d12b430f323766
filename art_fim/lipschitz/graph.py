"""An upper bound on a network's ℓ2 Lipschitz constant, from its real module graph.

The network is traced with ``torch.fx`` (its own ``forward``, whatever the architecture), run
once on an example input of the stated shape in float64, and every node gets a bound by the
rules of :mod:`art_fim.lipschitz.rules`: per-layer constants on the real weights and shapes,
composed along the graph (products along paths, sums at residual joins, root-sum-squares at
concatenations). The walk proves or refuses: every node whose value depends on the input must be
matched by a rule for its exact call (:mod:`art_fim.lipschitz.table`); hooks (which the trace
never runs), in-place changes that a later node reads (the graph shows it the old value), and
changes to parameters and buffers are refused by name.

The result bounds ``‖z(a) − z(b)‖₂ / ‖a − b‖₂`` for the logits ``z``: over all inputs, or, for
networks with attention (which has no global constant) or a LayerNorm whose input variance the
box keeps away from 0, over inputs in the stated box.

| Paper link: https://arxiv.org/abs/2410.23382 (Lipschitz constant from the architecture)
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, fx, nn

from art_fim.lipschitz.provenance import Provenance, provenance_of
from art_fim.lipschitz.rules import (
    LayerBound,
    NodeBound,
    NodeContext,
    UnsupportedLayerError,
)
from art_fim.lipschitz.table import bound_node
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
        provenance: the network, preprocessing and input shape it was computed for; the
            certified functions refuse to use it for anything else (:meth:`check_use`).
    """

    value: float
    layers: tuple[LayerBound, ...]
    input_shape: tuple[int, ...]
    input_box: Box | None
    local: bool
    provenance: Provenance | None = None

    def check_use(self, model: Any, input_shape: tuple[int, ...]) -> None:
        """Refuse to use the bound for another network, preprocessing or input shape.

        Args:
            model: the ``torch.nn.Module`` or ART ``PyTorchClassifier`` it is used with.
            input_shape: shape of one input it is used on.

        Raises:
            ValueError: the bound was computed for something else (the message says what).
        """
        if self.provenance is None:
            raise ValueError(
                "This LipschitzBound does not record what it was computed for; recompute it with "
                "lipschitz_bound, or pass float(bound) to take responsibility for it."
            )
        reason = self.provenance.mismatch(provenance_of(model, input_shape))
        if reason is not None:
            raise ValueError(f"The Lipschitz bound does not hold here: {reason}.")

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


def _versions(value: Any) -> tuple[int, ...] | None:
    """The version counters of a value's tensors (``None`` for a value without tensors).

    PyTorch bumps a tensor's counter at every in-place change, through any view of it.
    """
    if isinstance(value, Tensor):
        return (value._version,)
    if isinstance(value, (tuple, list)) and any(isinstance(v, Tensor) for v in value):
        return tuple(v._version if isinstance(v, Tensor) else -1 for v in value)
    return None


_CASTS = {"float", "double", "to"}


class _Propagation(fx.Interpreter):
    """Runs the graph once on an example input and bounds every node on the way.

    A node none of whose arguments depends on the input's values is a constant (also a function
    of the input's shape). Every other node is bounded by its rule
    (:mod:`art_fim.lipschitz.table`) or refused. After each node, the version counters of the
    values still to be read show any in-place change it made: a change to a tensor that a later
    node reads (the graph shows that node the old value), to a parameter or buffer, or to a
    constant, is refused.
    """

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
        self._order = {n: i for i, n in enumerate(gm.graph.nodes)}
        self._versions: dict[fx.Node, tuple[int, ...]] = {}
        self._state = {
            name: t for name, t in [*gm.named_parameters(remove_duplicate=False),
                                    *gm.named_buffers(remove_duplicate=False)]
        }
        self._state_versions = _state_versions(gm)

    def run_node(self, n: fx.Node) -> Any:  # overrides fx.Interpreter
        if n.op == "call_module":
            _check_batch_independent(str(n.target), self.modules[str(n.target)])
        value = super().run_node(n)
        self._check_mutations(n)
        versions = _versions(value)
        if versions is not None:
            self._versions[n] = versions
        self.bounds[n] = self._bound(n, value)
        return value

    # Overrides fx.Interpreter: a cast between float64 and float32 is the identity on real
    # numbers; the walk stays in float64 (the cast rule refuses every other target).
    def call_method(self, target: Any, args: Any, kwargs: Any) -> Any:
        value = super().call_method(target, args, kwargs)
        source = args[0] if args else None
        if (
            target in _CASTS and isinstance(source, Tensor) and isinstance(value, Tensor)
            and source.dtype == torch.float64 and value.dtype == torch.float32
        ):
            return source.to(value.device)
        return value

    def _check_mutations(self, n: fx.Node) -> None:
        for name, tensor in self._state.items():
            if tensor._version != self._state_versions[name]:
                raise UnsupportedLayerError(
                    f"{_name(n, self.modules)} changes the parameter or buffer {name!r} in place: "
                    "the network is a different function at every call. No rule."
                )
        for m, recorded in list(self._versions.items()):
            if m not in self.env:  # read for the last time earlier: nothing reads it again
                del self._versions[m]
                continue
            current = _versions(self.env[m])
            if current == recorded:
                continue
            self._versions[m] = current  # type: ignore[assignment]
            readers = [u for u in m.users if self._order[u] > self._order[n]]
            if readers:
                later = ", ".join(repr(u.name) for u in readers)
                raise UnsupportedLayerError(
                    f"{_name(n, self.modules)} changes {m.name!r} in place (directly or through a "
                    f"view), and {later} read(s) it afterwards: the traced graph shows them the "
                    "value before the change, so the walk would bound another function. Use the "
                    "out-of-place operation (h = h * c, not h.mul_(c))."
                )
            if not self.bounds[m].depends and _depends(n, self.bounds):
                raise UnsupportedLayerError(
                    f"{_name(n, self.modules)} changes the constant {m.name!r} in place: the "
                    "walk reads constants at their example values. Use the out-of-place operation."
                )

    def _constant(self, value: Any) -> NodeBound:
        if self.box is not None and isinstance(value, Tensor):
            return NodeBound(0.0, value, value, depends=False)
        return NodeBound(0.0, depends=False)

    def _bound(self, n: fx.Node, value: Any) -> NodeBound:
        if n.op == "placeholder":
            if self._input_seen:
                return self._constant(value)
            self._input_seen = True
            return NodeBound(1.0, *self.box) if self.box is not None else NodeBound(1.0)
        if n.op == "output":
            return self.bounds[n.args[0]] if isinstance(n.args[0], fx.Node) else NodeBound(0.0)
        if n.op == "get_attr":
            return self._constant(value)
        inputs: list[fx.Node] = []
        fx.node.map_arg((n.args, n.kwargs), inputs.append)
        inputs = [a for a in dict.fromkeys(inputs) if self.bounds[a].depends]
        if not inputs:
            return self._constant(value)  # depends on the input's shape at most
        module = self.modules[str(n.target)] if n.op == "call_module" else None
        ctx = NodeContext(
            node=n, value=value, module=module, inputs=inputs, bounds=self.bounds,
            examples=self.env, modules=self.modules, call=lambda replace: self._call(n, replace),
            boxes=self.box is not None, records=self.records, cache=self.cache, arguments={},
            custom=tuple(self.custom_layers),
        )
        if module is not None and isinstance(module, ctx.custom):
            constant = next(c for t, c in self.custom_layers.items() if isinstance(module, t))
            ctx.record(type(module).__name__, constant, "declared by the caller")
            return NodeBound(ctx.bound.lipschitz * constant)
        return bound_node(ctx)

    def _call(self, n: fx.Node, replace: Mapping[fx.Node, Any]) -> Any:
        def load(arg: fx.Node) -> Any:
            value = replace[arg] if arg in replace else self.env[arg]
            # A copy, so that an in-place operation changes neither the walk's values nor the
            # caller's replacement.
            return value.clone() if isinstance(value, Tensor) else value

        args = fx.node.map_arg(n.args, load)
        kwargs = fx.node.map_arg(n.kwargs, load)
        return getattr(self, n.op)(n.target, args, kwargs)


def _depends(n: fx.Node, bounds: Mapping[fx.Node, NodeBound]) -> bool:
    found: list[fx.Node] = []
    fx.node.map_arg((n.args, n.kwargs), found.append)
    return any(bounds[a].depends for a in found)


def _name(n: fx.Node, modules: Mapping[str, nn.Module]) -> str:
    if n.op == "call_module":
        cls = type(modules[str(n.target)])
        return f"Layer {n.target!r} ({cls.__module__}.{cls.__qualname__})"
    return f"Node {n.name!r} ({n.op} {getattr(n.target, '__name__', n.target)})"


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


_HOOKS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
)


def check_hooks(model: nn.Module) -> None:
    """Refuse a network with hooks: ``torch.fx`` traces ``forward`` and never runs them.

    A forward hook or pre-hook changes what the network computes (a hook that scales a
    layer's output by 100 would be ignored); backward hooks change what gradients report.
    Module hooks, and the global hooks of ``torch.nn.modules.module.register_module_*_hook``.
    """
    from torch.nn.modules import module as module_hooks

    for kind in _HOOKS:
        if getattr(module_hooks, f"_global{kind}", None):
            raise UnsupportedLayerError(
                f"A global module hook is registered (torch.nn.modules.module._global{kind}): it "
                "runs inside every layer, and the traced graph does not show it. Remove it "
                "before bounding."
            )
    for name, m in model.named_modules():
        for kind in _HOOKS:
            if getattr(m, kind, None):
                cls = type(m)
                where = f"Layer {name!r}" if name else "The network itself"
                hooks = kind[1:].replace("_", " ")
                raise UnsupportedLayerError(
                    f"{where} ({cls.__module__}.{cls.__qualname__}) has {hooks}: torch.fx "
                    "traces forward() without running hooks, so the walk would bound "
                    "another function. Remove the hooks (for weight reparametrisations, use "
                    "torch.nn.utils.parametrize) before bounding."
                )


def _state_versions(model: nn.Module) -> dict[str, int]:
    """The version counter of every parameter and buffer, by name."""
    return {
        name: t._version for name, t in [*model.named_parameters(remove_duplicate=False),
                                         *model.named_buffers(remove_duplicate=False)]
    }


def _check_data_access(gm: fx.GraphModule) -> None:
    """Refuse ``.data``: changes through it bypass the version counters the walk checks."""
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target is builtins.getattr and n.args[1] == "data":
            raise UnsupportedLayerError(
                f"Node {n.name!r} reads .data of {n.args[0]}: changes made through .data are "
                "invisible to PyTorch's record of in-place operations, which the walk checks. "
                "Use the tensor itself (or .detach())."
            )


def _check_parameters(model: nn.Module) -> None:
    """Refuse parameters and buffers that float64 cannot hold (complex): the walk casts to it."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_complex():
            raise UnsupportedLayerError(
                f"{name!r} is complex ({t.dtype}); the walk computes in float64. No rule."
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
        UnsupportedLayerError: a node without a rule for its exact call (layer type,
            constructor arguments, keywords, argument ranges), a Python value or a cast to an
            integer taken from the input, an in-place change read afterwards, a hook, or a
            forward that fx cannot trace; the message names the node and what to do.
        ValueError: a bare module in training mode, a missing ``input_shape``, or a bad box.
    """
    module, shape, box = _module_and_defaults(model, input_shape, input_box)
    check_hooks(model.model if not isinstance(model, nn.Module) else model)
    check_hooks(module)
    _check_parameters(module)
    provenance = provenance_of(model, shape)
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
    state = _state_versions(network)
    gm = trace(network, tuple(custom_layers))
    if _state_versions(network) != state:  # fx ran an in-place op on a buffer while tracing
        changed = [k for k, v in _state_versions(network).items() if state[k] != v]
        raise UnsupportedLayerError(
            f"forward() changes {', '.join(map(repr, changed))} in place: the network is a "
            "different function at every call. No rule."
        )
    _check_data_access(gm)
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
    return LipschitzBound(
        propagation.bounds[out_node].lipschitz, records, shape, box, local, provenance
    )
