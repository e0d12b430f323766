"""The result store: one JSON and one compressed ``.npz`` per model, written atomically.

``<results>/<dataset>/<threat_model>/<model>.json`` holds a model's summary and provenance;
``<model>.npz`` beside it holds its per-image values (:data:`PER_IMAGE_ARRAYS`), so a table
can be recomputed or re-aggregated without rescoring: :func:`summarize_per_image` of the
arrays gives exactly the JSON's ``clean_acc`` and ``fisher`` summaries. Every file is
written to a temporary file in the same folder and moved into place with ``os.replace``,
so readers see the old file or the complete new one; the ``.npz`` is written before the
JSON that names it (with its SHA-256), so a run killed between the two leaves no result.

A result also records the settings that determine its numbers
(:class:`~leaderboard.record.Settings`). A rerun whose settings differ from a stored result raises
:class:`SettingsMismatchError` instead of mixing settings in one folder. Every file is written
with the permissions the umask gives a new file (``0644`` under the usual ``022``), so that
results can be shared, not with a temporary file's ``0600``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from art_fim.curve import robust_fraction
from art_fim.norms import norm_name
from art_fim.results import summarize
from leaderboard.record import SCHEMA_VERSION, InvalidRecord, ResultRecord, read_record

if TYPE_CHECKING:
    from leaderboard.registry import ZooEntry

logger = logging.getLogger(__name__)

#: The per-image arrays of every model's ``.npz``, all of length ``n_examples``; beside them,
#: ``radius_<norm>`` (``radius_linf``, ``radius_l2``): the first-order robust radius per image
#: for each threat model the dataset is scored at (0 where the prediction is wrong), with
#: ``radius_<norm>_refined`` where refined, and ``proven_<norm>`` / ``proven_<norm>_refined``:
#: whether each radius is proven to be the minimum over all classes (every one is where every
#: class was seen; a file written before the flags were stored has none, read as all proven, which
#: holds for the ten-class zoo).
PER_IMAGE_ARRAYS = (
    "index", "label", "prediction", "spectral_norm", "spectral_norm_stderr", "trace", "trace_stderr"
)

#: Per-image arrays renamed since results were first stored, ``old name -> current name``.
#: Files written with an old name are read under the current one (:func:`current_array_names`);
#: they are never rewritten.
RENAMED_ARRAYS = {"lambda_max": "spectral_norm", "lambda_max_stderr": "spectral_norm_stderr"}

class SettingsMismatchError(ValueError):
    """Stored results were scored with other settings than this run's."""


@dataclass
class RunSummary:
    """What a run did.

    Attributes:
        done: keys (``dataset/threat/name``) scored successfully in this run.
        skipped: keys whose results were already there.
        failed: ``key -> first line of the error``.
        seconds: wall time of the run.
    """

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, record: ResultRecord) -> None:
        """Count one freshly written result."""
        if record.ok:
            self.done.append(record.key)
        else:
            self.failed[record.key] = record.error.splitlines()[0] if record.error else "?"

    def table(self) -> str:
        """A plain-text summary for the end of ``run``: missing weights are counted, not listed."""
        missing = [key for key, error in self.failed.items()
                   if error.startswith("MissingWeightsError")]
        lines = [
            f"{'done':>8}  {len(self.done)}",
            f"{'skipped':>8}  {len(self.skipped)}  (already scored)",
            f"{'failed':>8}  {len(self.failed)}" + (f"  ({len(missing)} without weights)" if missing
                                                    else ""),
            f"{'time':>8}  {self.seconds:.1f} s",
        ]
        for key, error in self.failed.items():
            if key not in missing:
                lines.append(f"  failed {key}: {error}")
        return "\n".join(lines)


def result_path(results_dir: str | Path, entry: ZooEntry) -> Path:
    """``<results>/<dataset>/<threat_model>/<model>.json``."""
    return Path(results_dir) / entry.dataset / entry.threat_model / f"{entry.name}.json"


def read_result(path: Path) -> ResultRecord | None:
    """A stored result, or ``None`` if it is absent or not a valid record (then it is rescored)."""
    if not path.is_file():
        return None
    try:
        return read_record(path)
    except InvalidRecord as exc:
        logger.warning("%s; scoring the model again", exc)
        return None


def _new_file_mode() -> int:
    """The permissions ``open`` gives a new file under the current umask (``0o644`` for ``022``)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    The file gets the permissions of a newly created file (the temporary file's own are ``0600``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _new_file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, record: dict[str, Any]) -> None:
    """Write JSON so that readers see either the old file or the complete new one."""
    write_bytes_atomic(path, (json.dumps(record, indent=2) + "\n").encode())


def write_per_image(path: Path, arrays: Mapping[str, np.ndarray]) -> str:
    """Write the per-image arrays as a compressed ``.npz``, atomically; returns its SHA-256.

    The file is what ``np.savez_compressed`` writes, with a fixed timestamp on each member
    so that the same values always give the same bytes (and hash).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, values in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(member, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(values), allow_pickle=False)
    data = buffer.getvalue()
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def read_per_image(path: Path, sha256: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` written by :func:`write_per_image` (no pickled objects).

    Arrays stored under an old name (:data:`RENAMED_ARRAYS`) come back under the current one.

    Args:
        path: the ``.npz`` file.
        sha256: the hash its JSON records; a file that does not match is an error.

    Raises:
        ValueError: the file is not the one the JSON describes.
    """
    data = path.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path} is not the file its result JSON describes (SHA-256 differs): "
                         "rescore the model")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return current_array_names({name: npz[name] for name in npz.files})


def current_array_names(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` with every old name of :data:`RENAMED_ARRAYS` replaced by its current name.

    A file that holds both names keeps the array under the current one.
    """
    out = {RENAMED_ARRAYS.get(name, name): a for name, a in arrays.items()
           if name not in RENAMED_ARRAYS}
    for old, new in RENAMED_ARRAYS.items():
        if old in arrays and new not in out:
            out[new] = arrays[old]
    return out


def summarize_per_image(arrays: Mapping[str, np.ndarray],
                        budgets: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The summary fields of a result JSON, computed from its per-image values.

    Scoring fills the JSON with this very function, so applied to a stored ``.npz`` (with the
    result's ``eps`` per threat model as ``budgets``) it reproduces the JSON's ``n_examples``,
    ``clean_acc``, ``fisher`` and ``predicted_robust_acc`` exactly.

    Args:
        arrays: the per-image arrays (:data:`PER_IMAGE_ARRAYS` and any ``radius_<norm>`` and
            ``radius_<norm>_refined``).
        budgets: ``{threat_model: eps}``; the predicted robust accuracy is given for each whose
            radius array is present (``None`` where a radius is NaN: not computed), from the
            first-order radius and, when stored, the refined one; an input whose radius is not
            proven to be the minimum over all classes counts as not robust
            (:func:`art_fim.curve.robust_fraction`).

    Returns:
        ``{"n_examples", "clean_acc" (percent), "fisher": {"spectral_norm", "trace"},
        "predicted_robust_acc": {threat: {"eps", "first_order"[, "refined"], "proven_first_order"
        [, "proven_refined"]}}}`` (the ``proven_*`` entries: percent of inputs whose radius is
        proven, where the flags are stored), the summaries as in :func:`art_fim.summarize`.
    """
    label, prediction = arrays["label"], arrays["prediction"]
    predicted: dict[str, dict[str, float | None]] = {}
    for threat, eps in (budgets or {}).items():
        name = norm_name(threat)
        if f"radius_{name}" not in arrays:
            continue
        predicted[threat] = {"eps": eps}
        for suffix, key in (("", "first_order"), ("_refined", "refined")):
            radius = arrays.get(f"radius_{name}{suffix}")
            if radius is None:
                continue
            proven = arrays.get(f"proven_{name}{suffix}")
            predicted[threat][key] = _percent_predicted_robust(radius, eps, proven)
            if proven is not None:
                predicted[threat][f"proven_{key}"] = 100.0 * float(np.mean(proven))
    return {
        "n_examples": int(len(label)),
        "clean_acc": 100.0 * int((prediction == label).sum()) / len(label),
        "fisher": {"spectral_norm": summarize(arrays["spectral_norm"]),
                   "trace": summarize(arrays["trace"])},
        "predicted_robust_acc": predicted,
    }


def _percent_predicted_robust(radius: np.ndarray, eps: float,
                              proven: np.ndarray | None = None) -> float | None:
    """Percent of inputs predicted robust at ``eps`` (an unproven radius counts as not robust).

    ``None`` when a radius is NaN (not computed).
    """
    return None if np.isnan(radius).any() else 100.0 * robust_fraction(radius, eps, proven)


def write_result(
    results_dir: str | Path, entry: ZooEntry, record: ResultRecord,
    per_image: Mapping[str, np.ndarray] | None
) -> ResultRecord:
    """Store one model's result: the ``.npz`` first (when scored), then the JSON naming it.

    A failed result removes the model's earlier ``.npz``, so no file outlives its JSON.

    Returns:
        The record as written.
    """
    path = result_path(results_dir, entry)
    npz = path.with_suffix(".npz")
    if per_image is None:
        npz.unlink(missing_ok=True)
    else:
        record.per_image = {"file": npz.name, "sha256": write_per_image(npz, per_image)}
    # Written by this code, so in its layout, also when it refiles a record read from an older one.
    record.schema_version = SCHEMA_VERSION
    write_atomic(path, record.to_json())
    return record


def mismatch_message(
    results_dir: str | Path, mismatched: list[tuple[str, dict[str, tuple[Any, Any]]]]
) -> str:
    """What :class:`SettingsMismatchError` says: which results, which settings, what to do."""
    def described(diff: dict[str, tuple[Any, Any]]) -> str:
        if all(old is None for old, _ in diff.values()):
            return "no settings recorded (scored by an earlier version)"
        return ", ".join(f"{name} {old!r} (this run: {new!r})" for name, (old, new) in diff.items())

    shown = "; ".join(f"{key}: {described(diff)}" for key, diff in mismatched[:3])
    more = f"; and {len(mismatched) - 3} more" if len(mismatched) > 3 else ""
    return (
        f"{len(mismatched)} result(s) under {results_dir} were scored with other settings "
        f"({shown}{more}). One results folder holds one set of settings: rerun with --overwrite to "
        "rescore them with this run's settings, or give this run its own folder with --results."
    )


def check_uniform_settings(records: list[ResultRecord], results_dir: str | Path) -> None:
    """Refuse a set of results whose scored models differ in settings within a dataset/threat model.

    Raises:
        SettingsMismatchError: naming the group, the settings and which models have which.
    """
    groups: dict[str, dict[str, list[str]]] = {}
    for record in records:
        if record.ok:
            group = groups.setdefault(f"{record.dataset}/{record.threat_model}", {})
            key = json.dumps(dataclasses.asdict(record.settings), sort_keys=True)
            group.setdefault(key, []).append(record.model)
    for group, variants in sorted(groups.items()):
        if len(variants) > 1:
            shown = "; ".join(
                f"{settings} for {', '.join(models[:3])}{' and others' if len(models) > 3 else ''}"
                for settings, models in variants.items()
            )
            raise SettingsMismatchError(
                f"the results under {results_dir} mix settings within {group} ({shown}): one table "
                "compares models scored alike. Rescore them with one set of settings (`python -m "
                "leaderboard run ... --overwrite`) or keep each set in its own --results folder."
            )
