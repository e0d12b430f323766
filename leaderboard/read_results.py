"""Read result files without trusting them.

Each file is checked, and one that fails is named and skipped. ``render`` reads files that other
runs, other versions, other machines (or a failed copy) wrote. Every result JSON must be UTF-8 text
holding a valid :class:`~leaderboard.record.ResultRecord` (its fields' types, ranges, string
lengths and nesting depth checked; :class:`~leaderboard.record.InvalidRecord` names the first bad
field), filed where its content says it belongs (``<dataset>/<threat_model>/<model>.json``);
every per-image ``.npz`` a scored result names must exist, hash to the SHA-256 its JSON records
and hold per-image arrays of one length. A file that fails any check is a :class:`Skipped` entry
that names it and says why, and the model it belongs to is left out of the tables; nothing raises
on a bad file.

The same holds for the zoo's further AutoAttack budgets
(``<dir>/<dataset>/<threat_model>/<model>_eps<label>.json``, fields ``eps``, ``autoattack_acc``
in percent and ``n_examples``): :func:`read_autoattack_points`.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leaderboard.json_checks import Fields, Number, Optional, Text, finite_number
from leaderboard.record import InvalidRecord, ResultRecord, read_checked, read_record
from leaderboard.store import current_array_names

__all__ = ["AutoAttackPoint", "ReadResults", "ResultFile", "Skipped", "finite_number",
           "paper_link", "read_autoattack_points", "read_npz", "read_results"]

#: The fields of one further AutoAttack budget of a zoo model (all required).
AUTOATTACK_POINT = Fields(
    {"eps": Number(0, positive=True), "autoattack_acc": Number(0, 100),
     "n_examples": Number(1, integer=True)},
    ("eps", "autoattack_acc", "n_examples"),
)
#: The one field of a RobustBench model-info file that is read (the paper's address).
MODEL_INFO_LINK = Fields({"link": Optional(Text(2_000))})


@dataclass(frozen=True)
class Skipped:
    """A file that was not used, and why.

    Attributes:
        file: the file, relative to the folder that was read.
        reason: what is wrong with it.
    """

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


@dataclass
class ResultFile:
    """One model's result as read and checked.

    Attributes:
        path: its JSON.
        record: the JSON's content, checked.
        per_image: the arrays of its ``.npz`` (``None`` for a result without one: failed, or older).
    """

    path: Path
    record: ResultRecord
    per_image: dict[str, np.ndarray] | None = None


@dataclass
class ReadResults:
    """Every result under a folder that passed the checks, and every file that did not.

    Attributes:
        results: the usable results, sorted by path.
        skipped: the files left out, each with its reason.
    """

    results: list[ResultFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def read_npz(path: Path, sha256: str, json_name: str) -> dict[str, np.ndarray] | str:
    """The arrays of a per-image ``.npz`` that hashes to ``sha256``, or why it cannot be used.

    Arrays stored under an old name (:data:`leaderboard.store.RENAMED_ARRAYS`) come back under
    the current one.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return f"is missing ({json_name} names it)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = current_array_names({name: npz[name] for name in npz.files})
        readable = True
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
        arrays, readable = {}, False
    if hashlib.sha256(data).hexdigest() != sha256:
        if not readable:
            return (f"is truncated or corrupt ({len(data)} bytes, not a readable .npz; its "
                    f"SHA-256 differs from {json_name}'s)")
        return (f"is not the file {json_name} describes (SHA-256 differs): rescore the model "
                "or restore the .npz it was scored with")
    if not readable:
        return f"is not a readable .npz ({len(data)} bytes)"
    lengths = {name: len(a) for name, a in arrays.items() if a.ndim == 1}
    if "label" not in arrays or "prediction" not in arrays or len(set(lengths.values())) != 1:
        return ("does not hold per-image arrays of one length with 'label' and 'prediction' "
                f"(has {lengths})")
    return arrays


def read_results(results: Path) -> ReadResults:
    """Every ``<dataset>/<threat_model>/<model>.json`` under ``results`` and its ``.npz``, checked.

    A scored result whose ``.npz`` is missing, altered or truncated is skipped as a whole (its
    summaries can no longer be traced to per-image values); the skipped entry names the ``.npz``.

    Args:
        results: the folder ``run`` wrote into.

    Returns:
        The results that passed, sorted by path, and the files that did not.
    """
    out = ReadResults()
    for path in sorted(results.glob("*/*/*.json")):
        name = path.relative_to(results).as_posix()
        try:
            record = read_record(path, name)
        except InvalidRecord as exc:
            out.skipped.append(Skipped(name, exc.reason))
            continue
        filed = (path.parent.parent.name, path.parent.name, path.stem)
        says = (record.dataset, record.threat_model, record.model)
        if filed != says:
            out.skipped.append(
                Skipped(name, f"its content is {'/'.join(says)}, not what its path says")
            )
            continue
        per_image = None
        stored = record.per_image
        if record.ok and stored:
            npz = path.parent / stored["file"]
            if npz.parent != path.parent:
                out.skipped.append(Skipped(name, f"its per_image file {stored['file']!r} is "
                                           "outside its folder"))
                continue
            arrays = read_npz(npz, stored["sha256"], path.name)
            if isinstance(arrays, str):
                out.skipped.append(Skipped(npz.relative_to(results).as_posix(),
                                           f"{arrays}; {record.model} left out"))
                continue
            per_image = arrays
        out.results.append(ResultFile(path, record, per_image))
    return out


@dataclass(frozen=True)
class AutoAttackPoint:
    """AutoAttack accuracy measured at one budget.

    Attributes:
        eps: the budget.
        accuracy: robust accuracy in percent.
        n_examples: images attacked.
        source: the file it was read from (or ``"model info"`` for the main budget).
    """

    eps: float
    accuracy: float
    n_examples: int | None
    source: str


def read_autoattack_points(directory: Path | None, dataset: str, threat_model: str, model: str,
                           skipped: list[Skipped]) -> list[AutoAttackPoint]:
    """The further AutoAttack budgets of one model.

    They are read from ``<directory>/<dataset>/<threat>/<model>_eps*.json``.

    Args:
        directory: the folder of the curve files (``None`` or absent: none).
        dataset: the model's dataset.
        threat_model: ``"Linf"`` or ``"L2"``.
        model: the model's name.
        skipped: where a malformed file is recorded (and left out).

    Returns:
        The points, by budget.
    """
    if directory is None or not directory.is_dir():
        return []
    points = []
    for path in sorted((directory / dataset / threat_model).glob(f"{model}_eps*.json")):
        name = path.relative_to(directory).as_posix()
        try:
            content = read_checked(path, AUTOATTACK_POINT, name)
        except InvalidRecord as exc:
            skipped.append(Skipped(name, exc.reason))
        else:
            points.append(AutoAttackPoint(float(content["eps"]), float(content["autoattack_acc"]),
                                          content["n_examples"], name))
    return sorted(points, key=lambda p: p.eps)


def paper_link(model_info: Path, dataset: str, threat_model: str, model: str) -> str | None:
    """The ``link`` of a model's RobustBench model-info file, when it is an ``http(s)`` URL.

    Args:
        model_info: RobustBench's ``model_info`` folder (``<dataset>/<threat_model>/<model>.json``).
        dataset: the model's dataset.
        threat_model: its threat model.
        model: its name.

    Returns:
        The URL, or ``None`` (no file, no link, or not a web address).
    """
    path = model_info / dataset / threat_model / f"{model}.json"
    if not path.is_file():
        return None
    try:
        link = read_checked(path, MODEL_INFO_LINK).get("link")
    except InvalidRecord:
        return None
    return link if isinstance(link, str) and link.startswith(("https://", "http://")) else None
