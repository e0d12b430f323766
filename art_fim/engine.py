"""One engine for "score these inputs with this classifier"; estimators are per-batch functions.

What surrounds an estimator's arithmetic is the same for all of them, and lives here once:

1. the classifier turned into what the estimators use, by the access they need
   (:data:`Access`): a white-box :class:`~art_fim.adapters.ClassifierAdapter` (Jacobians),
   gradient-free outputs on the model's device (:meth:`BatchEngine.outputs`, through the
   same forward function the Jacobians differentiate), or the classifier's own answers to
   queries (:meth:`BatchEngine.predict`);
2. input validation (:func:`~art_fim.checks.check_inputs`: shape, dtype, finiteness, range);
3. eval mode while the model runs, with every submodule's own ``training`` flag given back
   afterwards (:func:`~art_fim.adapters.evaluation_mode`), also when the estimator raises;
4. the numerical precision (:func:`~art_fim.precision.precision_context`: full float32
   unless the caller opts into TF32), the caller's settings restored afterwards;
5. memory planning: batches whose peak stays within ``memory_budget``
   (:mod:`art_fim.memory` gives each route's bytes per input);
6. per-input random streams (:func:`~art_fim.streams.input_generators`: input ``i``'s draws
   depend on ``(seed, i)`` only, never on the batch size);
7. the progress bar.

An estimator opens a :meth:`BatchEngine.run`, plans its batch size from its own footprint,
and hands each :class:`Batch` to its per-batch function::

    engine = BatchEngine(classifier, precision=precision, memory_budget=memory_budget)
    with engine.run(x, "Fisher trace") as run:
        size, chunk = engine.exact_plan(run.x, batch_size)
        parts = [per_batch(engine.adapter.jacobian(b.x, chunk)) for b in run.batches(size)]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

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
from art_fim.checks import OutputType, check_inputs, check_positive_int, is_integer
from art_fim.memory import Footprint, plan_exact
from art_fim.precision import Precision, check_precision, precision_context
from art_fim.streams import input_generators

#: What an estimator needs of the classifier: ``"gradients"`` (a white-box adapter, refused
#: without one), ``"outputs"`` (gradient-free outputs: the differentiable forward function
#: where there is one, else ``predict``) or ``"queries"`` (``predict`` only, never gradients:
#: the query-only route, which also sees postprocessing defences).
Access = Literal["gradients", "outputs", "queries"]

#: Default peak bytes of one batch on the CPU (on a GPU: half the free memory).
CPU_MEMORY_BUDGET = 2 * 1024**3


def default_memory_budget(device: torch.device) -> int:
    """Bytes one batch may take at its peak: half the free GPU memory, or 2 GiB on CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free // 2)
    return CPU_MEMORY_BUDGET


def check_memory_budget(budget: Any) -> None:
    """Refuse a ``memory_budget`` that is neither ``None`` nor a positive number of bytes."""
    if budget is not None and not (is_integer(budget) and budget > 0):
        raise ValueError(
            "memory_budget must be a positive number of bytes (e.g. 2 * 1024**3) or None for the "
            f"default; got {budget!r}"
        )


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
        """One CPU generator per input, seeded from ``(seed, index)`` (:mod:`art_fim.streams`)."""
        return input_generators(self.seed, self.start, len(self.x))


class Run:
    """The inputs of one estimator call, cut into batches as they are scored.

    Attributes:
        x: the validated inputs.
    """

    def __init__(self, x: np.ndarray, bar: Any, seed: int) -> None:
        self.x = x
        self._bar = bar
        self._seed = seed

    def describe(self, description: str) -> None:
        """Set the progress bar's text (e.g. once the route is known)."""
        self._bar.set_description(description)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield consecutive batches of ``batch_size`` inputs; the bar advances as each is done."""
        for start in range(0, len(self.x), batch_size):
            batch = Batch(self.x[start : start + batch_size], start, self._seed)
            yield batch
            self._bar.update(len(batch))


class BatchEngine:
    """Scores inputs with a classifier: what every estimator needs around its per-batch work.

    Args:
        classifier: an ART classifier or an ``nn.Module`` in eval mode.
        output_type: ``"auto"``, ``"logits"`` or ``"probabilities"``.
        access: what the estimator needs of the classifier (:data:`Access`).
        precision: ``"float32"`` or ``"tf32"`` (:mod:`art_fim.precision`).
        memory_budget: peak bytes of one batch; ``None``: :func:`default_memory_budget`.
        seed: seed of the per-input random streams.
        verbose: show a progress bar.

    Raises:
        NotDifferentiableError: ``access="gradients"`` and the classifier passes none.
        ValueError: a bare module in training mode; an invalid precision or budget.
        TypeError: a classifier with neither gradients nor ``predict``.
    """

    def __init__(
        self,
        classifier: Any,
        output_type: OutputType = "auto",
        *,
        access: Access = "gradients",
        precision: Precision = "float32",
        memory_budget: int | None = None,
        seed: int = 0,
        verbose: bool = True,
    ) -> None:
        if access not in ("gradients", "outputs", "queries"):
            raise ValueError(f"access must be 'gradients', 'outputs' or 'queries', got {access!r}")
        check_precision(precision)
        check_memory_budget(memory_budget)
        if isinstance(classifier, nn.Module) and classifier.training:
            raise ValueError(
                "The model is in training mode, where batch normalisation and dropout make each "
                "output depend on the rest of the batch (or on chance). Call model.eval() first."
            )
        self.classifier = classifier
        self.output_type = output_type
        self.precision = precision
        self.memory_budget = memory_budget
        self.seed = seed
        self.verbose = verbose
        self._adapter: ClassifierAdapter | None = None
        if access != "queries":
            try:
                self._adapter = adapter_for(classifier, output_type)
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
        return self.memory_budget or default_memory_budget(self.device)

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
    def evaluating(self) -> Iterator[None]:
        """Eval mode for the model behind the classifier, every submodule's flag restored after."""
        with evaluation_mode(torch_module(self.classifier)):
            yield

    @contextlib.contextmanager
    def run(self, x: np.ndarray, description: str) -> Iterator[Run]:
        """Validate ``x``, then score it in eval mode and the engine's precision, with progress.

        Args:
            x: ``[N, *input_shape]`` inputs in the classifier's own scale.
            description: the progress bar's text.

        Yields:
            The :class:`Run`, whose :meth:`Run.batches` cut the validated inputs.
        """
        x = check_inputs(x, self.input_shape, self.clip_values)
        with precision_context(self.precision), self.evaluating(), tqdm(
            total=len(x), desc=description, unit="input", disable=not self.verbose
        ) as bar:
            yield Run(x, bar, self.seed)

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
        """Noisy copies per gradient-free forward pass within the budget (at most ``requested``).

        Each copy holds about ``2 A`` of activations (a layer's input and output at once, ``A``
        the graph size of :mod:`art_fim.memory`) and three input-sized tensors (the noise, the
        noisy input and the clean one broadcast).
        """
        input_bytes = int(x[0].size) * (torch.finfo(self.dtype).bits // 8)
        per_copy = 2 * self.activation_bytes(x) + 3 * input_bytes
        return self.batch_size(requested, per_copy)

    def batch_size(self, requested: int, bytes_per_input: int) -> int:
        """The largest batch (at least 1, at most ``requested``) whose ``bytes_per_input`` fit."""
        check_positive_int("batch_size", requested)
        return max(1, min(int(requested), self.budget // max(1, int(bytes_per_input))))

    def exact_plan(self, x: np.ndarray, requested: int) -> tuple[int, int | None]:
        """``(batch size, classes per backward pass)`` for routes that form all ``K`` Jacobian rows.

        Raises:
            ValueError: one input does not fit the budget even one class at a time.
        """
        check_positive_int("batch_size", requested)
        footprint = self.footprint(x, requested)
        plan = plan_exact(footprint, self.budget, int(requested))
        if plan is None:
            raise ValueError(
                f"One input's Jacobian needs about {footprint.exact(1) / 2**30:.3g} GiB (K = "
                f"{footprint.classes}, d = {footprint.dim}), more than memory_budget = "
                f"{self.budget / 2**30:.3g} GiB; raise memory_budget."
            )
        return plan

    def generator(self) -> torch.Generator:
        """One generator on :attr:`device`, seeded with the engine's seed: one sequential stream."""
        return torch.Generator(device=self.device).manual_seed(self.seed)
