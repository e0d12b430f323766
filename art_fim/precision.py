"""The arithmetic precision art_fim computes in: full float32 unless the caller opts into TF32.

PyTorch lets cuDNN convolutions use TF32 by default on Ampere and newer GPUs (10-bit
mantissas in the products). That is fine for training but not for a metric that should give
the same numbers on every device: on an H200, TF32 moved single-image ``λ_max`` by up to 24%
against the CPU, and with it off the two agree to float32 rounding. So every public entry
point of art_fim computes inside :func:`precision_context`, which turns TF32 off for
convolutions and matrix products and restores the caller's three settings afterwards, also
when the computation raises. ``precision="tf32"`` opts in for speed; results record which
precision was used.

The settings are process-wide (PyTorch keeps them as globals), so the context is not
thread-safe; it is re-entrant: a nested context restores what the outer one set.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import torch

Precision = Literal["float32", "tf32"]
PRECISIONS: tuple[str, ...] = ("float32", "tf32")

_F = TypeVar("_F", bound=Callable[..., Any])


def check_precision(precision: Any) -> str:
    """Return ``precision`` if it is ``"float32"`` or ``"tf32"``.

    Raises:
        ValueError: any other value, with a message that names the two choices.
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(
            f"precision must be 'float32' (full precision, the default) or 'tf32' (faster on "
            f"Ampere and newer GPUs, about 3 significant digits in products); got {precision!r}"
        )
    return precision


def current_settings() -> tuple[bool, bool, str]:
    """The three settings the context manages.

    They are ``(cudnn.allow_tf32, cuda.matmul.allow_tf32, matmul precision)``.

    Raises:
        RuntimeError: from PyTorch (2.9 and later), when the settings were made through a mix
            of these legacy switches and the per-backend ``fp32_precision`` attributes in a way
            the legacy switches cannot describe.
    """
    return (
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.get_float32_matmul_precision(),
    )


# The per-backend switches of PyTorch 2.9 and later, parents before children.
_FP32_PRECISION_OWNERS = ("", "cuda.matmul", "cudnn", "cudnn.conv", "cudnn.rnn", "mkldnn",
                          "mkldnn.matmul", "mkldnn.conv", "mkldnn.rnn")


def _owner(path: str) -> Any:
    owner: Any = torch.backends
    for part in filter(None, path.split(".")):
        owner = getattr(owner, part)
    return owner


def _snapshot() -> tuple[str, tuple[Any, ...]]:
    """The caller's settings, in the terms that can describe them.

    The legacy triple when PyTorch can report it; otherwise (a mix of legacy and per-backend
    settings that the legacy getters refuse to read) every per-backend ``fp32_precision``.
    """
    try:
        return "legacy", current_settings()
    except RuntimeError:
        return "fp32_precision", tuple(
            _owner(path).fp32_precision for path in _FP32_PRECISION_OWNERS
        )


def _restore(snapshot: tuple[str, tuple[Any, ...]]) -> None:
    kind, values = snapshot
    if kind == "legacy":
        _apply(*values)
    else:
        for path, value in zip(_FP32_PRECISION_OWNERS, values):
            _owner(path).fp32_precision = value


def _apply(cudnn_tf32: bool, matmul_tf32: bool, matmul_precision: str) -> None:
    # The matmul precision first: setting it also sets cuda.matmul.allow_tf32, which follows.
    torch.set_float32_matmul_precision(matmul_precision)
    torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
    torch.backends.cudnn.allow_tf32 = cudnn_tf32


@contextmanager
def precision_context(precision: str = "float32") -> Iterator[str]:
    """Compute in ``precision`` inside the block, then restore the caller's settings.

    ``"float32"``: TF32 off for cuDNN convolutions and CUDA matrix products, and
    ``torch.get_float32_matmul_precision() == "highest"``. ``"tf32"``: TF32 on for both and
    matmul precision ``"high"``. The three settings of :func:`current_settings` are restored
    on exit, whether the block returns or raises.

    Args:
        precision: ``"float32"`` or ``"tf32"``.

    Yields:
        The precision in force, for the result to record.
    """
    check_precision(precision)
    saved = _snapshot()
    try:
        if precision == "float32":
            _apply(False, False, "highest")
        else:
            _apply(True, True, "high")
        yield precision
    finally:
        _restore(saved)


def in_precision(function: _F) -> _F:
    """Run ``function`` inside :func:`precision_context` of its ``precision`` keyword.

    The keyword defaults to ``"float32"``.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with precision_context(kwargs.get("precision", "float32")):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
