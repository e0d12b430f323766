"""Checks on a result before it is shown: numeric ranges, string lengths, nesting depth, names.

A result file can pass every type check and still break a page: an AutoAttack accuracy of 150%
ranks first, a clean accuracy of 1e308 prints 309 digits and squashes a plot's axis, a 10 MB
string is copied into every output, a settings object nested 950 levels deep overflows any
recursive walk, a 240-character dataset name makes a file name the system refuses, and a
right-to-left override makes one model's name display as another's. :func:`displayable` turns a
record into one that is safe to show, or says why the file must be skipped:

* every number at a known place lies in its range (:data:`RANGES`); NaN counts as absent, as
  everywhere in the leaderboard;
* no value is nested deeper than :data:`MAX_DEPTH`;
* ``model``, ``dataset`` and ``threat_model`` are short (they name files and keys);
* every other string is cut to :data:`MAX_TEXT` characters (an error keeps its end, where
  a traceback names the exception);
* invisible format and control characters (bidirectional overrides, zero-width characters) are
  replaced by a visible ``⟨U+202E⟩``, so that a name displays as what it is.
"""

from __future__ import annotations

import math
import sys
import unicodedata
from fnmatch import fnmatchcase
from typing import Any

#: Deepest nesting of objects and lists a result may have (the current ones reach 4).
MAX_DEPTH = 32
#: Longest model name; dataset and threat-model names (folder names, parts of file names).
MAX_MODEL_NAME = 200
MAX_GROUP_NAME = 64
#: Longest other string shown; longer ones are cut.
MAX_TEXT = 2000

_PERCENT = (0.0, 100.0, False)
_COUNT = (0.0, 1e9, False)
_SECONDS = (0.0, 1e9, False)
# Norms, traces and distortions are non-negative; a saturated softmax makes λ_max exactly 0 and
# its log10 −inf, so infinities there are absent values rather than errors.
_NON_NEGATIVE_SCORE = (0.0, math.inf, True)
_LOG10_SCORE = (-400.0, 400.0, True)
# The signed logit margin is negative where the prediction is wrong: any finite number.
_SIGNED_SCORE = (-sys.float_info.max, sys.float_info.max, False)

#: ``dotted field pattern -> (lowest, highest, infinities allowed)``; the first match applies.
#: Numbers at places not listed are not shown as numbers, and are not checked.
RANGES: tuple[tuple[str, tuple[float, float, bool]], ...] = (
    ("reported.clean_acc", _PERCENT),
    ("reported.autoattack_acc", _PERCENT),
    ("reported.attack_seconds", _SECONDS),
    ("reported.attack_n_examples", _COUNT),
    ("clean_acc", _PERCENT),
    ("n_examples", _COUNT),
    ("predicted_robust_acc.*.first_order", _PERCENT),
    ("predicted_robust_acc.*.refined", _PERCENT),
    ("predicted_robust_acc.*.proven_first_order", _PERCENT),
    ("predicted_robust_acc.*.proven_refined", _PERCENT),
    ("predicted_robust_acc.*.eps", (0.0, 1e6, False)),
    ("fisher.*.mean_log10", _LOG10_SCORE),
    ("fisher.*.*", _NON_NEGATIVE_SCORE),
    ("seconds.*", _SECONDS),
    ("images_per_second", (0.0, math.inf, True)),
    ("baselines.clever.*.median", _NON_NEGATIVE_SCORE),
    ("baselines.clever.*.seconds_per_image", _SECONDS),
    ("baselines.clever.*.seconds", _SECONDS),
    ("baselines.logit_margin.median", _SIGNED_SCORE),
    ("baselines.logit_margin.score", _SIGNED_SCORE),
    ("baselines.*.median", _NON_NEGATIVE_SCORE),
    ("baselines.*.score", _NON_NEGATIVE_SCORE),
    ("baselines.*.seconds_per_image", _SECONDS),
    ("baselines.*.seconds", _SECONDS),
)

def visible(text: str) -> str:
    """``text`` with each format or control character (but newline and tab) shown as ``⟨U+XXXX⟩``.

    Bidirectional overrides and isolates, zero-width characters and C0/C1 controls change how the
    text around them displays without being seen; shown as codes, they cannot.
    """
    if text.isprintable():
        return text
    return "".join(
        f"⟨U+{ord(c):04X}⟩" if unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t"
        else c for c in text
    )


def _cut(text: str, keep_end: bool) -> str:
    if len(text) <= MAX_TEXT:
        return text
    cut = f" … ({len(text) - MAX_TEXT:,} characters cut) … "
    return cut + text[-MAX_TEXT:] if keep_end else text[:MAX_TEXT] + cut


def _depth_problem(record: dict[str, Any]) -> str | None:
    """Where ``record`` nests deeper than :data:`MAX_DEPTH`, walked without recursion."""
    stack: list[tuple[Any, int, str]] = [(record, 0, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            return f"field '{where}' is nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((v, depth + 1, f"{where}.{k}" if where else str(k))
                         for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(value))
    return None


def _range_of(where: str) -> tuple[float, float, bool] | None:
    return next((bounds for pattern, bounds in RANGES if fnmatchcase(where, pattern)), None)


def _range_problems(value: Any, where: str = "") -> list[str]:
    """Numbers at the places of :data:`RANGES` that lie outside their range."""
    if isinstance(value, dict):
        return [p for k, v in value.items()
                for p in _range_problems(v, f"{where}.{k}" if where else str(k))]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return []
    try:
        value = float(value)
    except OverflowError:  # an integer beyond any float (JSON allows 10**400)
        value = math.inf if value > 0 else -math.inf
    bounds = _range_of(where)
    if bounds is None or math.isnan(value):
        return []
    low, high, infinite_ok = bounds
    if math.isinf(value) and infinite_ok:
        return []
    if low <= value <= high:
        return []
    return [f"field '{where}' is {value:.6g}, outside [{low:g}, {high:g}]"]


def _clean(value: Any, key: str = "") -> Any:
    """A copy with every string cut and its hidden characters shown (depth already checked)."""
    if isinstance(value, dict):
        return {visible(_cut(str(k), False)): _clean(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, key) for v in value]
    if isinstance(value, str):
        return visible(_cut(value, keep_end=key == "error"))
    return value


def displayable(record: dict[str, Any]) -> dict[str, Any] | str:
    """``record`` made safe to show, or the reason its file must be skipped.

    Args:
        record: a result JSON that passed the type checks of :mod:`leaderboard.read_results`.

    Returns:
        A cleaned copy (strings cut to :data:`MAX_TEXT`, hidden characters made visible), or one
        message naming the first problem (and how many more there are).
    """
    depth = _depth_problem(record)
    if depth:
        return depth
    problems = [
        f"its {key} is {len(str(record.get(key)))} characters long, over {limit}"
        for key, limit in (("model", MAX_MODEL_NAME), ("dataset", MAX_GROUP_NAME),
                           ("threat_model", MAX_GROUP_NAME))
        if len(str(record.get(key))) > limit
    ]
    problems += _range_problems(record)
    if record.get("status") == "ok" and record.get("n_examples") == 0:
        problems.append("it is scored on 0 images")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"{problems[0]}{more}"
    return _clean(record)
