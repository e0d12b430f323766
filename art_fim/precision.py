"""The arithmetic precision art_fim computes in: full float32 unless the caller opts into TF32.

PyTorch lets cuDNN convolutions use TF32 by default on Ampere and newer GPUs (10-bit
mantissas in the products). That is fine for training but not for a metric that should give
the same numbers on every device: on an H200, TF32 moved single-image ``λ_max`` by up to 24%
against the CPU, and with it off the two agree to float32 rounding. So every public entry
point of art_fim computes inside :func:`precision_context`, which turns TF32 off for
convolutions and matrix products and restores the caller's settings afterwards, also when the
computation raises. ``precision="tf32"`` opts in for speed; results record which precision
was used.

What "the caller's settings" are: since PyTorch 2.9 each backend and operation has its own
``fp32_precision`` (``torch.backends.cuda.matmul.fp32_precision``, ...), and the legacy
switches (``torch.set_float32_matmul_precision``, ``torch.backends.cudnn.allow_tf32``) keep
values of their own beside them, which the legacy getters check against the per-backend ones
(and refuse to read, raising ``RuntimeError``, when a caller mixed the two APIs). A snapshot
(:class:`Settings`) therefore holds both: every per-backend value and the two legacy values,
read without tripping the check; restoring sets the legacy values first (which also set some
per-backend ones) and then every per-backend value, parents before children.

The settings are process-wide (PyTorch keeps them as globals), so the context is not
thread-safe; it is re-entrant: a nested context restores what the outer one set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch

Precision = Literal["float32", "tf32"]
PRECISIONS: tuple[str, ...] = ("float32", "tf32")

# The per-backend switches of PyTorch 2.9 and later as (backend, operation), parents before
# children: setting a parent sets its children too. Read and written through torch._C because
# the public ``torch.backends.mkldnn.fp32_precision`` setter writes the generic switch instead.
_FP32_PRECISION_KEYS = (
    ("generic", "all"), ("cuda", "all"), ("mkldnn", "all"),
    ("cuda", "matmul"), ("cuda", "conv"), ("cuda", "rnn"),
    ("mkldnn", "matmul"), ("mkldnn", "conv"), ("mkldnn", "rnn"),
)
# The per-backend values the legacy getters check against their own.
_LEGACY_CHECKED = (("cuda", "matmul"), ("mkldnn", "matmul"), ("cuda", "conv"), ("cuda", "rnn"))
_PER_BACKEND = hasattr(torch._C, "_get_fp32_precision_getter")


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
    """The legacy view of the settings the context manages.

    They are ``(cudnn.allow_tf32, cuda.matmul.allow_tf32, matmul precision)``.

    Raises:
        RuntimeError: from PyTorch (2.9 and later), when the settings were made through a mix
            of these legacy switches and the per-backend ``fp32_precision`` attributes in a way
            the legacy switches cannot describe (:class:`Settings` holds those too).
    """
    return (
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.get_float32_matmul_precision(),
    )


@dataclass(frozen=True)
class Settings:
    """Every precision setting of the process, legacy and per-backend, to restore exactly.

    Attributes:
        matmul_precision: the legacy ``torch.get_float32_matmul_precision()`` value.
        cudnn_tf32: the legacy ``torch.backends.cudnn.allow_tf32`` value.
        matmul_tf32: the legacy ``torch.backends.cuda.matmul.allow_tf32`` (before PyTorch 2.9,
            where it is a value of its own; ``None`` after, where it follows the others).
        fp32_precision: the per-backend values in the order of ``_FP32_PRECISION_KEYS``
            (empty before PyTorch 2.9).
    """

    matmul_precision: str
    cudnn_tf32: bool
    matmul_tf32: bool | None
    fp32_precision: tuple[str, ...]

    @classmethod
    def read(cls) -> Settings:
        """The settings in force, read without raising whatever mix of APIs set them.

        The legacy getters raise when a per-backend value contradicts their own; the snapshot
        sets the per-backend values they check to ones that contradict nothing (``"ieee"``,
        or ``"tf32"`` for cuDNN when its own flag is on), reads the legacy values, and puts the
        per-backend values back.
        """
        if not _PER_BACKEND:
            cudnn, matmul, precision = current_settings()
            return cls(precision, cudnn, matmul, ())
        per_backend = tuple(torch._C._get_fp32_precision_getter(*k) for k in _FP32_PRECISION_KEYS)
        try:
            for key in _LEGACY_CHECKED:
                torch._C._set_fp32_precision_setter(*key, "ieee")
            precision = torch.get_float32_matmul_precision()
            try:
                cudnn = torch._C._get_cudnn_allow_tf32()
            except RuntimeError:  # its own flag is on: "ieee" contradicts it, "tf32" does not
                torch._C._set_fp32_precision_setter("cuda", "conv", "tf32")
                torch._C._set_fp32_precision_setter("cuda", "rnn", "tf32")
                cudnn = torch._C._get_cudnn_allow_tf32()
        finally:
            _set_per_backend(per_backend)
        return cls(precision, bool(cudnn), None, per_backend)

    def apply(self) -> None:
        """Make these the settings in force: the legacy values, then every per-backend one."""
        torch.set_float32_matmul_precision(self.matmul_precision)
        if self.matmul_tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = self.matmul_tf32
        torch.backends.cudnn.allow_tf32 = self.cudnn_tf32
        _set_per_backend(self.fp32_precision)


def _set_per_backend(values: tuple[str, ...]) -> None:
    for key, value in zip(_FP32_PRECISION_KEYS, values):
        torch._C._set_fp32_precision_setter(*key, value)


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
    matmul precision ``"high"``. Every setting of :class:`Settings` is restored on exit,
    whether the block returns or raises.

    Args:
        precision: ``"float32"`` or ``"tf32"``.

    Yields:
        The precision in force, for the result to record.
    """
    check_precision(precision)
    saved = Settings.read()
    try:
        if precision == "float32":
            _apply(False, False, "highest")
        else:
            _apply(True, True, "high")
        yield precision
    finally:
        saved.apply()
