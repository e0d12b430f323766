"""Input and output validation: every bad input gets an error that says what to do."""

from __future__ import annotations

from typing import Literal

import numpy as np

OutputType = Literal["auto", "logits", "probabilities"]

# Probabilities from float32 softmax sum to 1 within a few ulps times K; 1e-4 leaves room
# for K in the thousands while no real logit vector lands that close to a simplex point.
_SIMPLEX_TOL = 1e-4


class LabelOnlyOutputError(ValueError):
    """The classifier returns labels or one-hot vectors, from which no Fisher can be formed."""


def check_inputs(
    x: np.ndarray,
    input_shape: tuple[int, ...] | None,
    clip_values: tuple[float, float] | np.ndarray | None,
) -> np.ndarray:
    """Validate a batch of inputs in the classifier's own (pre-normalisation) scale.

    Args:
        x: ``[N, *input_shape]`` floating array.
        input_shape: expected shape of one input, or ``None`` to accept any.
        clip_values: the classifier's ``(min, max)`` input range, or ``None``.

    Returns:
        ``x`` as a NumPy array (unchanged values).

    Raises:
        TypeError: ``x`` is not a floating array.
        ValueError: wrong shape, NaN or inf, or values outside ``clip_values``.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        hint = " (images? use x.astype(np.float32) / 255)" if x.dtype == np.uint8 else ""
        raise TypeError(f"x must be a floating-point array, got dtype {x.dtype}{hint}.")
    if input_shape is not None:
        expected = tuple(int(s) for s in input_shape)
        if x.shape == expected:
            raise ValueError(
                f"x has shape {x.shape}, a single input without a batch axis; pass x[None] "
                f"(shape {(1, *expected)})."
            )
        if x.ndim < 1 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"x has shape {x.shape} but the classifier expects [N, {', '.join(map(str, expected))}]"
                " (check the channel order: ART's PyTorch classifiers take channels first)."
            )
    if x.shape[0] == 0:
        raise ValueError("x is empty: pass at least one input.")
    finite = np.isfinite(x)
    if not finite.all():
        bad = np.unique(np.nonzero(~finite.reshape(x.shape[0], -1))[0])
        raise ValueError(
            f"x contains NaN or inf in {bad.size} input(s) (first at index {bad[0]}); "
            "remove or repair them before scoring."
        )
    if clip_values is not None:
        low, high = float(np.min(clip_values[0])), float(np.max(clip_values[1]))
        tol = 1e-6 * max(1.0, abs(high - low))
        if x.min() < low - tol or x.max() > high + tol:
            raise ValueError(
                f"x has values in [{x.min():.4g}, {x.max():.4g}] outside the classifier's "
                f"clip_values [{low:g}, {high:g}]; pass inputs in the classifier's own scale "
                "(e.g. pixels divided by 255, before normalisation: the classifier's "
                "`preprocessing` normalises)."
            )
    return x


def _is_one_hot(outputs: np.ndarray) -> bool:
    values_binary = np.isin(outputs, (0.0, 1.0)).all()
    return bool(values_binary and np.all(outputs.sum(axis=1) == 1.0))


def _on_simplex(outputs: np.ndarray) -> bool:
    return bool(
        outputs.min() >= -_SIMPLEX_TOL
        and outputs.max() <= 1.0 + _SIMPLEX_TOL
        and np.abs(outputs.sum(axis=1) - 1.0).max() <= _SIMPLEX_TOL
    )


def resolve_output_type(outputs: np.ndarray, declared: OutputType) -> Literal["logits", "probabilities"]:
    """Decide whether model outputs are logits or probabilities, and check a declaration.

    Args:
        outputs: ``[N, K]`` raw model outputs.
        declared: ``"auto"`` to detect, or the user's declaration to verify.

    Returns:
        ``"logits"`` or ``"probabilities"``.

    Raises:
        LabelOnlyOutputError: the outputs are labels or one-hot vectors.
        ValueError: the outputs contradict the declaration, or have the wrong shape.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        raise LabelOnlyOutputError(
            f"The classifier returned outputs of shape {outputs.shape}; the Fisher information "
            "needs a score per class, [N, nb_classes] logits or probabilities, not labels."
        )
    if not np.isfinite(outputs).all():
        raise ValueError("The classifier returned NaN or inf scores; check the model and its inputs.")
    if _is_one_hot(outputs):
        raise LabelOnlyOutputError(
            "The classifier returns one-hot labels, not scores: its Fisher information is zero "
            "almost everywhere and cannot be estimated. Wrap a predict function that returns "
            "logits or probabilities."
        )
    simplex = _on_simplex(outputs)
    if declared == "auto":
        return "probabilities" if simplex else "logits"
    if declared == "logits" and simplex:
        raise ValueError(
            "output_type='logits' was declared but the outputs are probabilities (non-negative "
            "rows summing to 1): pass output_type='probabilities', or remove the final softmax."
        )
    if declared == "probabilities" and not simplex:
        raise ValueError(
            "output_type='probabilities' was declared but the outputs are not probabilities "
            f"(row sums in [{outputs.sum(1).min():.4g}, {outputs.sum(1).max():.4g}], values in "
            f"[{outputs.min():.4g}, {outputs.max():.4g}]): pass output_type='logits'."
        )
    if declared not in ("logits", "probabilities"):
        raise ValueError(f"output_type must be 'auto', 'logits' or 'probabilities', got {declared!r}")
    return declared
