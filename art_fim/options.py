"""The settings every estimator shares, in one frozen object validated once.

Each public class and function of art_fim takes these six as keyword parameters, as ART's
metrics do, and builds one :class:`Options` from them; everything below the public call (the
batch engine, the per-batch work, the query-only route) reads that object instead of the six
values handed on one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from art_fim.checks import OutputType, check_positive_int, is_integer
from art_fim.precision import Precision, check_precision

OUTPUT_TYPES: tuple[str, ...] = ("auto", "logits", "probabilities")


def check_output_type(output_type: Any) -> None:
    """Refuse an ``output_type`` other than ``"auto"``, ``"logits"`` or ``"probabilities"``."""
    if not isinstance(output_type, str) or output_type not in OUTPUT_TYPES:
        raise ValueError(
            f"output_type must be 'auto', 'logits' or 'probabilities', got {output_type!r}"
        )


def check_memory_budget(budget: Any) -> None:
    """Refuse a ``memory_budget`` that is neither ``None`` nor a positive number of bytes."""
    if budget is not None and not (is_integer(budget) and budget > 0):
        raise ValueError(
            "memory_budget must be a positive number of bytes (e.g. 2 * 1024**3) or None for the "
            f"default; got {budget!r}"
        )


@dataclass(frozen=True)
class Options:
    """The settings shared by every estimator.

    Attributes:
        output_type: ``"auto"`` (detect on the first batch), ``"logits"`` or ``"probabilities"``.
        precision: ``"float32"`` or ``"tf32"`` (:mod:`art_fim.precision`).
        memory_budget: peak bytes of one batch; ``None``: half the free GPU memory, or 2 GiB
            on CPU (:mod:`art_fim.memory`).
        seed: seed of every random draw; input ``i``'s draws depend on ``(seed, i)`` only
            (:mod:`art_fim.streams`).
        verbose: show a progress bar.
        batch_size: inputs per batch (reduced where the memory budget requires), or queries
            per ``predict`` call on the query-only route.

    Raises:
        ValueError: any invalid value, naming the parameter and what it must be.
    """

    output_type: OutputType = "auto"
    precision: Precision = "float32"
    memory_budget: int | None = None
    seed: int = 0
    verbose: bool = True
    batch_size: int = 128

    def __post_init__(self) -> None:
        """Validate every setting, once."""
        check_output_type(self.output_type)
        check_precision(self.precision)
        check_memory_budget(self.memory_budget)
        check_positive_int("seed", self.seed, low=0)
        check_positive_int("batch_size", self.batch_size)


#: The names of the shared settings (the parameters an estimator hands on as :class:`Options`).
SHARED: frozenset[str] = frozenset(field.name for field in fields(Options))
