"""One engine for "score these inputs with this classifier": it runs the loop over batches.

An estimator is a per-batch function with a plan. What surrounds its arithmetic is the same for
all of them, and lives here once:

1. the classifier turned into what the estimator declares it needs (:data:`Access`): a
   white-box :class:`~art_fim.adapters.ClassifierAdapter` (Jacobians), gradient-free outputs
   on the model's device (:meth:`BatchEngine.outputs`, through the same forward function the
   Jacobians differentiate), or the classifier's own answers to queries
   (:meth:`BatchEngine.predict`);
2. input validation (:func:`~art_fim.checks.check_inputs`: shape, dtype, finiteness, range);
3. eval mode while the model runs, with every submodule's own ``training`` flag and every
   parameter's ``requires_grad`` given back afterwards
   (:func:`~art_fim.adapters.evaluation_mode`), also when the estimator raises;
4. the numerical precision (:func:`~art_fim.precision.precision_context`: full float32
   unless the caller opts into TF32), the caller's settings restored afterwards;
5. the plan: the estimator's batch size (and whatever else it cuts) within ``memory_budget``,
   from the sizes :meth:`BatchEngine.footprint` measures and the arithmetic of
   :mod:`art_fim.memory`;
6. the loop over batches, with per-input random streams (:class:`Batch`: input ``i``'s draws
   depend on ``(seed, i)`` only, never on the batch size) and the progress bar;
7. the concatenation of the per-batch results, field by field (:func:`concatenate`).

An estimator declares ``access`` and ``description`` and implements ``plan`` and ``batch``
(:class:`Estimator`); its ``batch`` returns named tensors (a ``NamedTuple``, possibly nested,
or a dict of them), which come back concatenated over the inputs as NumPy arrays::

    engine = BatchEngine(classifier, options, access=estimator.access)
    plan, columns = engine.compute(estimator, x)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from art_fim.adapters import (
    ClassifierAdapter,
    NotDifferentiableError,
    TorchAdapter,
    adapter_for,
    evaluation_mode,
    torch_module,
)
from art_fim.checks import check_inputs
from art_fim.memory import Footprint, default_memory_budget, exact_plan, fit, noisy_copy_bytes
from art_fim.options import Options
from art_fim.precision import precision_context
from art_fim.streams import input_generators, input_rngs

#: What an estimator needs of the classifier: ``"gradients"`` (a white-box adapter, refused
#: without one), ``"outputs"`` (gradient-free outputs: the differentiable forward function
#: where there is one, else ``predict``) or ``"queries"`` (``predict`` only, never gradients:
#: the query-only route, which also sees postprocessing defences).
Access = Literal["gradients", "outputs", "queries"]

PlanT = TypeVar("PlanT", bound="Plan")
PartT = TypeVar("PartT")


@dataclass(frozen=True)
class Batch:
    """One batch of a run.

    Attributes:
        x: the batch's inputs, ``[B, *input_shape]`` (validated).
        start: index in the run's inputs of the batch's first input.
        seed: the run's seed.
    """

    x: np.ndarray
    start: int
    seed: int

    def __len__(self) -> int:
        """Inputs in the batch."""
        return len(self.x)

    @property
    def stop(self) -> int:
        """Index one past the batch's last input."""
        return self.start + len(self.x)

    @property
    def generators(self) -> list[torch.Generator]:
        """One CPU generator per input, seeded from ``(seed, index)`` (:mod:`art_fim.streams`).

        Fresh generators at each read: read once per batch and hand the same list on.
        """
        return input_generators(self.seed, self.start, len(self.x))

    @property
    def rngs(self) -> list[np.random.Generator]:
        """One NumPy generator per input, from the same ``(seed, index)`` seed sequences.

        Fresh generators at each read, as for :attr:`generators`.
        """
        return input_rngs(self.seed, self.start, len(self.x))


class Plan(Protocol):
    """What the engine reads of an estimator's plan: inputs per batch and the route's name."""

    @property
    def batch_size(self) -> int:
        """Inputs per batch."""

    @property
    def label(self) -> str:
        """The route, added to the progress bar's text (empty: nothing)."""


@dataclass(frozen=True)
class BatchPlan:
    """The simplest plan: a batch size, no route to name."""

    batch_size: int
    label: str = ""


class ExactPlan(NamedTuple):
    """The plan of a route that forms all ``K`` Jacobian rows (:meth:`BatchEngine.exact_plan`)."""

    batch_size: int
    class_chunk: int

    @property
    def label(self) -> str:
        """No route to name."""
        return ""


class Estimator(Protocol, Generic[PlanT, PartT]):
    """A per-batch estimator: what the engine runs.

    Attributes:
        access: what it needs of the classifier (:data:`Access`).
        description: the progress bar's text.
    """

    access: Access
    description: str

    def plan(self, engine: BatchEngine, x: np.ndarray) -> PlanT:
        """Plan the run on the validated inputs ``x`` (inside the engine's contexts)."""

    def batch(self, engine: BatchEngine, batch: Batch, plan: PlanT) -> PartT:
        """One batch's results: named tensors or arrays, one row per input."""


def concatenate(parts: list[Any]) -> Any:
    """Concatenate per-batch results field by field, as NumPy arrays.

    A ``NamedTuple`` or dict is concatenated per field (recursively); tensors and arrays along
    their first axis; ``None`` stays ``None``.
    """
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(concatenate([getattr(p, f) for p in parts]) for f in first._fields))
    if isinstance(first, Mapping):
        return {key: concatenate([p[key] for p in parts]) for key in first}
    return np.concatenate([_numpy(p) for p in parts])


def _numpy(value: Tensor | np.ndarray) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)


class BatchEngine:
    """Scores inputs with a classifier: the loop, and what every estimator needs around it.

    Args:
        classifier: an ART classifier or an ``nn.Module`` in eval mode.
        options: the shared settings (:class:`~art_fim.options.Options`; default: the defaults).
        access: what the estimator needs of the classifier (:data:`Access`).

    Raises:
        NotDifferentiableError: ``access="gradients"`` and the classifier passes none.
        ValueError: a bare module in training mode.
        TypeError: a classifier with neither gradients nor ``predict``.
    """

    def __init__(
        self,
        classifier: Any,
        options: Options | None = None,
        *,
        access: Access = "gradients",
    ) -> None:
        options = Options() if options is None else options
        if access not in ("gradients", "outputs", "queries"):
            raise ValueError(f"access must be 'gradients', 'outputs' or 'queries', got {access!r}")
        if isinstance(classifier, nn.Module) and classifier.training:
            raise ValueError(
                "The model is in training mode, where batch normalisation and dropout make each "
                "output depend on the rest of the batch (or on chance). Call model.eval() first."
            )
        self.classifier = classifier
        self.options = options
        self._adapter: ClassifierAdapter | None = None
        if access != "queries":
            try:
                self._adapter = adapter_for(classifier, self.options.output_type)
            except NotDifferentiableError:
                if access == "gradients":
                    raise
        queryable = isinstance(classifier, nn.Module) or callable(
            getattr(classifier, "predict", None)
        )
        if self._adapter is None and not (
            queryable or (access == "queries" and callable(classifier))
        ):
            raise TypeError(
                f"{type(classifier).__name__} has neither input gradients nor a predict method; "
                "pass an ART classifier or a PyTorch module."
            )

    @property
    def adapter(self) -> ClassifierAdapter:
        """The white-box adapter (refused for a classifier without input gradients)."""
        if self._adapter is None:
            raise NotDifferentiableError(
                f"{type(self.classifier).__name__} exposes no input gradients."
            )
        return self._adapter

    @property
    def differentiable(self) -> bool:
        """Whether the classifier passes input gradients."""
        return self._adapter is not None

    @property
    def matrix_free(self) -> bool:
        """Whether the Jacobians are autograd ones, with products that never form ``J``.

        PyTorch classifiers; those differentiated through ART's ``class_gradient`` give dense
        Jacobians, for which only the exact route makes sense.
        """
        return isinstance(self._adapter, TorchAdapter)

    @property
    def device(self) -> torch.device:
        """Where the model computes (the CPU for classifiers queried through ``predict``)."""
        if self._adapter is not None:
            return self._adapter.device
        parameter = self._parameter()
        return torch.device("cpu") if parameter is None else parameter.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in (float32 for classifiers queried through ``predict``)."""
        if self._adapter is not None:
            return getattr(self._adapter, "dtype", torch.float32)
        parameter = self._parameter()
        return torch.float32 if parameter is None else parameter.dtype

    def _parameter(self) -> Tensor | None:
        """A bare module's first floating parameter (``None`` for anything else)."""
        if not isinstance(self.classifier, nn.Module):
            return None
        return next((t for t in self.classifier.parameters() if t.is_floating_point()), None)

    @property
    def budget(self) -> int:
        """Peak bytes one batch may take."""
        return self.options.memory_budget or default_memory_budget(self.device)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of one input, or ``None`` when unknown (a bare module)."""
        if self._adapter is not None:
            return self._adapter.input_shape
        shape = getattr(self.classifier, "input_shape", None)
        return None if shape is None else tuple(shape)

    @property
    def clip_values(self) -> Any:
        """The classifier's valid input range, or ``None``."""
        if self._adapter is not None:
            return self._adapter.clip_values
        return getattr(self.classifier, "clip_values", None)

    @contextlib.contextmanager
    def _scoring(self, x: np.ndarray, description: str) -> Iterator[tuple[np.ndarray, Any]]:
        """Validated ``x`` and a progress bar, in eval mode and the options' precision."""
        x = check_inputs(x, self.input_shape, self.clip_values)
        with precision_context(self.options.precision), evaluation_mode(
            torch_module(self.classifier)
        ), tqdm(
            total=len(x), desc=description, unit="input", disable=not self.options.verbose
        ) as bar:
            yield x, bar

    def compute(self, estimator: Estimator[PlanT, PartT], x: np.ndarray) -> tuple[PlanT, PartT]:
        """Run ``estimator`` on every input: plan, the loop over batches, concatenation.

        Everything that runs the model (the planning probe included) runs in eval mode and the
        options' precision, with the caller's flags and settings given back afterwards.

        Args:
            estimator: the per-batch estimator (:class:`Estimator`).
            x: ``[N, *input_shape]`` inputs in the classifier's own scale.

        Returns:
            The plan, and the per-batch results concatenated over the inputs
            (:func:`concatenate`), one row per input of ``x``.
        """
        with self._scoring(x, estimator.description) as (x, bar):
            plan = estimator.plan(self, x)
            if plan.label:
                bar.set_description(f"{estimator.description} ({plan.label})")
            parts = []
            for start in range(0, len(x), plan.batch_size):
                batch = Batch(x[start : start + plan.batch_size], start, self.options.seed)
                parts.append(estimator.batch(self, batch, plan))
                bar.update(len(batch))
        return plan, concatenate(parts)

    def outputs(self, x: np.ndarray | Tensor) -> Tensor:
        """Raw model outputs ``[B, K]`` without gradients, on :attr:`device` (float64 if queried).

        PyTorch classifiers run the same forward function the Jacobians differentiate (ART's
        preprocessing included), on their own device; others answer through ``predict``.
        """
        adapter = self._adapter
        if isinstance(adapter, TorchAdapter):
            with torch.no_grad():
                return adapter.forward(torch.as_tensor(x, device=adapter.device).to(adapter.dtype))
        if isinstance(x, Tensor):
            x = x.detach().cpu().numpy()
        return torch.from_numpy(np.asarray(self.predict(x.astype(np.float32)), dtype=np.float64))

    def predict(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """The classifier's own answers to the queries ``x``, as NumPy (the model's dtype).

        ART classifiers answer through ``predict`` (postprocessing defences included); a bare
        module is called on its device, ``batch_size`` queries at a time; any other callable is
        called on all of ``x``.

        Args:
            x: ``[B, *input_shape]`` queries.
            batch_size: queries per forward pass (handed to ART's ``predict``); default all.
        """
        classifier = self.classifier
        if isinstance(classifier, nn.Module):
            size = batch_size or len(x)
            with torch.no_grad():
                parts = [
                    classifier(torch.as_tensor(x[i : i + size]).to(self.device, self.dtype)).cpu()
                    for i in range(0, len(x), size)
                ]
            out = torch.cat(parts)
            # NumPy has no bfloat16; float32 holds its values exactly.
            return (out.float() if out.dtype == torch.bfloat16 else out).numpy()
        if callable(getattr(classifier, "predict", None)):
            return np.asarray(classifier.predict(x, batch_size=batch_size or len(x)))
        return np.asarray(classifier(x))

    def activation_bytes(self, x: np.ndarray) -> int:
        """Bytes one forward graph of ``x[:1]`` keeps (0 when unknown: no PyTorch module).

        For classifiers queried through ``predict``, the graph of the module behind them (its
        preprocessing aside), which bounds the activations a gradient-free pass holds at once.
        """
        if self._adapter is not None:
            return self._adapter.activation_bytes(x[:1])
        module = torch_module(self.classifier)
        if module is None:
            return 0
        probe = TorchAdapter(module, module, None, None, self.device)
        return probe.activation_bytes(x[:1])

    def footprint(self, x: np.ndarray, first_batch: int) -> Footprint:
        """Per-input sizes of one Jacobian (classes, dimension, bytes per number, forward graph).

        Decides the output type on the first batch (``x[:first_batch]``) first: a model's
        outputs are logits or probabilities throughout.
        """
        adapter = self.adapter
        adapter.decide_output_type(x[:first_batch])
        probe = adapter.jacobian(x[:1])
        return Footprint(
            probe.num_classes, probe.input_dim, adapter.itemsize, self.activation_bytes(x)
        )

    def noisy_copies_per_pass(self, x: np.ndarray, requested: int) -> int:
        """Noisy copies per gradient-free forward pass within the budget (at most ``requested``)."""
        input_bytes = int(x[0].size) * (torch.finfo(self.dtype).bits // 8)
        return fit(requested, noisy_copy_bytes(self.activation_bytes(x), input_bytes), self.budget)

    def batch_size(self, requested: int, bytes_per_input: int) -> int:
        """The largest batch (at least 1, at most ``requested``) whose ``bytes_per_input`` fit."""
        return fit(requested, bytes_per_input, self.budget)

    def exact_plan(self, x: np.ndarray, requested: int) -> ExactPlan:
        """``(batch size, classes per backward pass)`` for routes that form all ``K`` Jacobian rows.

        Raises:
            ValueError: one input does not fit the budget even one class at a time.
        """
        return ExactPlan(*exact_plan(self.footprint(x, requested), self.budget, requested))
