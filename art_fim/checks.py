"""Input and output validation: every bad input gets an error that says what to do."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

OutputType = Literal["auto", "logits", "probabilities"]

# Probabilities from float32 softmax sum to 1 within a few ulps times K; 1e-4 leaves room
# for K in the thousands while no real logit vector lands that close to a simplex point.
_SIMPLEX_TOL = 1e-4
# Lower precisions widen it: each probability is rounded to a relative ``ε/2`` and they sum
# to 1, so the row sum is off by about ``ε/2`` (measured: 2.4e-4 for float16 at K = 2);
# ``4 ε`` is eight times that.
_SIMPLEX_EPS_FACTOR = 4.0


class LabelOnlyOutputError(ValueError):
    """The classifier returns labels or one-hot vectors, from which no Fisher can be formed."""


def is_integer(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy integer (``bool`` excluded)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, low: int = 1) -> None:
    """Refuse ``value`` unless it is an integer ``≥ low`` (``bool`` excluded).

    Raises:
        ValueError: naming the parameter and what it must be.
    """
    if not is_integer(value) or value < low:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
            low, f"an integer ≥ {low}"
        )
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def clip_bounds(clip_values: Any, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``(low, high)`` bounds of ``clip_values`` broadcast to one input's shape.

    ART takes scalars, arrays that broadcast to the input (e.g. ``[C, 1, 1]`` per channel)
    and flat per-feature arrays.

    Args:
        clip_values: the classifier's ``(min, max)``.
        input_shape: shape of one input.

    Returns:
        ``(low, high)``, float64 arrays of shape ``input_shape``.

    Raises:
        ValueError: the bounds fit neither form.
    """
    bounds = []
    for c in (clip_values[0], clip_values[1]):
        c = np.asarray(c, dtype=np.float64)
        try:
            bounds.append(np.broadcast_to(c, input_shape))
        except ValueError:
            if c.size != int(np.prod(input_shape)):
                raise ValueError(
                    f"clip_values of shape {c.shape} fit neither inputs of shape {input_shape} nor "
                    "their flattened features; pass scalars, per-channel arrays that broadcast to "
                    "the input (e.g. shape [C, 1, 1]) or one bound per feature."
                ) from None
            bounds.append(c.reshape(input_shape))
    return bounds[0], bounds[1]


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
                f"x has shape {x.shape} but the classifier expects "
                f"[N, {', '.join(map(str, expected))}]"
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
        low, high = clip_bounds(clip_values, tuple(x.shape[1:]))
        tol = 1e-6 * np.maximum(1.0, np.abs(high - low))
        outside = (x < low - tol) | (x > high + tol)
        if outside.any():
            advice = (
                "pass inputs in the classifier's own scale (e.g. pixels divided by 255, before "
                "normalisation: the classifier's `preprocessing` normalises)."
            )
            if low.min() == low.max() and high.min() == high.max():
                raise ValueError(
                    f"x has values in [{x.min():.4g}, {x.max():.4g}] outside the classifier's "
                    f"clip_values [{low.flat[0]:g}, {high.flat[0]:g}]; {advice}"
                )
            first = tuple(int(i) for i in np.argwhere(outside)[0])
            feature = first[1:]
            raise ValueError(
                f"x has {int(outside.sum())} value(s) outside the classifier's per-feature "
                f"clip_values (first: x[{', '.join(map(str, first))}] = {x[first]:.4g}, allowed "
                f"[{low[feature]:g}, {high[feature]:g}]); {advice}"
            )
    return x


def output_eps(outputs: np.ndarray | torch.Tensor) -> float:
    """Return the machine epsilon of the precision the outputs were computed in.

    A tensor's dtype says it. An array may hold half-precision results in a wider dtype (ART's
    ``BlackBoxClassifier.predict`` copies any output into float32), so values that are all
    exactly representable in bfloat16 or float16 are taken to have that precision.

    Args:
        outputs: model outputs.

    Returns:
        ``ε`` of that precision (``0`` for integer outputs).
    """
    if isinstance(outputs, torch.Tensor):
        return float(torch.finfo(outputs.dtype).eps) if outputs.is_floating_point() else 0.0
    outputs = np.asarray(outputs)
    if not np.issubdtype(outputs.dtype, np.floating):
        return 0.0
    if outputs.dtype.itemsize > 2:
        finite = np.ascontiguousarray(outputs[np.isfinite(outputs)], dtype=np.float64)
        values = torch.from_numpy(finite)
        for half in (torch.bfloat16, torch.float16):  # coarser first: its values are rarer
            if values.numel() and torch.equal(values.to(half).double(), values):
                return float(torch.finfo(half).eps)
    return float(np.finfo(outputs.dtype).eps)


def simplex_tolerance(eps: float) -> float:
    """Return how far from the probability simplex rounding at precision ``eps`` may put outputs."""
    return max(_SIMPLEX_TOL, _SIMPLEX_EPS_FACTOR * eps)


def _on_simplex(outputs: np.ndarray, tol: float) -> bool:
    return bool(
        outputs.min() >= -tol
        and outputs.max() <= 1.0 + tol
        and np.abs(outputs.sum(axis=1) - 1.0).max() <= tol
    )


def resolve_output_type(
    outputs: np.ndarray | torch.Tensor, declared: OutputType, *, detected: bool = False
) -> Literal["logits", "probabilities"]:
    """Decide whether model outputs are logits or probabilities, and check a declaration.

    ``K ≥ 2`` outputs are probabilities when every row lies on the simplex, within a tolerance
    that follows the outputs' precision (:func:`output_eps`). One output per input is a binary
    model's logit or sigmoid probability; values all in ``[0, 1]`` fit both, so they need a
    declaration.

    Args:
        outputs: ``[N, K]`` raw model outputs, ``K ≥ 1``.
        declared: ``"auto"`` to detect, or the type to verify.
        detected: ``declared`` was detected on an earlier batch of the same model, not
            declared by the user (changes only the error messages).

    Returns:
        ``"logits"`` or ``"probabilities"``.

    Raises:
        LabelOnlyOutputError: the outputs are labels (every value 0 or 1, one-hot or not).
        ValueError: the outputs contradict the declaration, are ambiguous, or have the wrong shape.
    """
    if declared not in ("auto", "logits", "probabilities"):
        raise ValueError(
            f"output_type must be 'auto', 'logits' or 'probabilities', got {declared!r}"
        )
    eps = output_eps(outputs)
    if isinstance(outputs, torch.Tensor):
        outputs = outputs.detach().to("cpu", torch.float64).numpy()
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2 or outputs.shape[1] < 1:
        raise LabelOnlyOutputError(
            f"The classifier returned outputs of shape {outputs.shape}; the Fisher information "
            "needs a score per class, [N, nb_classes] logits or probabilities (or [N, 1] for a "
            "binary model), not labels."
        )
    if not np.isfinite(outputs).all():
        raise ValueError(
            "The classifier returned NaN or inf scores; check the model and its inputs."
        )
    if np.isin(outputs, (0.0, 1.0)).all():
        raise LabelOnlyOutputError(
            "The classifier returns one-hot labels, not scores (every output is 0 or 1): its "
            "Fisher information is zero almost everywhere and cannot be estimated. Wrap a predict "
            "function that returns logits or probabilities (and remove label postprocessing such "
            "as ClassLabels)."
        )
    tol = simplex_tolerance(eps)
    source = "was detected on an earlier batch" if detected else "was declared"
    if outputs.shape[1] == 1:
        in_unit = bool(outputs.min() >= -tol and outputs.max() <= 1.0 + tol)
        if declared == "auto":
            if in_unit:
                raise ValueError(
                    "The classifier returns one score per input, all in [0, 1]: a sigmoid "
                    "probability or a binary logit that happens to lie there. Declare which: "
                    "output_type='probabilities' or output_type='logits'."
                )
            return "logits"
        if declared == "probabilities" and not in_unit:
            raise ValueError(
                f"output_type='probabilities' {source} but the single outputs lie in "
                f"[{outputs.min():.4g}, {outputs.max():.4g}], not in [0, 1]: pass "
                "output_type='logits'."
            )
        return declared
    simplex = _on_simplex(outputs, tol)
    if declared == "auto":
        return "probabilities" if simplex else "logits"
    if declared == "logits" and simplex:
        raise ValueError(
            f"output_type='logits' {source} but the outputs are probabilities (non-negative rows "
            "summing to 1): pass output_type='probabilities', or remove the final softmax."
        )
    if declared == "probabilities" and not simplex:
        raise ValueError(
            f"output_type='probabilities' {source} but the outputs are not probabilities: row "
            f"sums differ from 1 by up to {np.abs(outputs.sum(1) - 1.0).max():.3g} and values lie "
            f"in [{outputs.min():.4g}, {outputs.max():.4g}] (tolerance {tol:.3g} at this output "
            f"precision, ε = {eps:.3g}): pass output_type='logits'."
        )
    return declared


def check_labels(y: Any, num_inputs: int, num_classes: int | None = None) -> np.ndarray:
    """Return labels as class indices ``[N]`` int64, from indices or one-hot rows.

    Both forms are accepted, as ART takes them.

    Args:
        y: ``[N]`` class indices, ``[N, 1]``, or ``[N, nb_classes]`` one-hot labels.
        num_inputs: ``N``, the number of inputs.
        num_classes: ``K`` when known, to check the range.

    Raises:
        ValueError: wrong length, not integers, soft labels, or classes out of range.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:
        if not (np.isin(y, (0, 1)).all() and np.all(y.sum(axis=1) == 1)):
            raise ValueError(
                "y is two-dimensional but its rows are not one-hot; pass class indices [N] or "
                "one-hot labels [N, nb_classes]."
            )
        if num_classes is not None and y.shape[1] != num_classes:
            raise ValueError(
                f"y has {y.shape[1]} one-hot columns but the classifier has {num_classes} classes."
            )
        y = y.argmax(axis=1)
    if y.ndim != 1 or len(y) != num_inputs:
        raise ValueError(
            f"y has shape {y.shape} for {num_inputs} inputs; pass one label per input, as class "
            "indices [N] or one-hot labels [N, nb_classes]."
        )
    if y.dtype.kind not in "iub":
        if y.dtype.kind != "f" or not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(
                f"y must hold integer class indices, got dtype {y.dtype} with non-integer values."
            )
    labels = y.astype(np.int64)
    if labels.size and (
        labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes)
    ):
        bound = (
            "" if num_classes is None else f" and < {num_classes} (the model's number of classes)"
        )
        raise ValueError(
            f"y has class indices in [{labels.min()}, {labels.max()}]; they must be ≥ 0{bound}."
        )
    return labels

