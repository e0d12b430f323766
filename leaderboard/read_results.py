"""Read result files without trusting them.

Each file is checked, and one that fails is named and skipped. ``render`` reads files that other
runs, other versions, other machines (or a failed copy) wrote. Every result JSON must be UTF-8 text
holding one JSON object whose fields have the types :data:`RECORD_SPEC` gives, filed where its
content says it belongs (``<dataset>/<threat_model>/<model>.json``); every per-image ``.npz`` a
scored result names must exist, hash to the SHA-256 its JSON records and hold per-image arrays of
one length. A file that fails any check is a :class:`Skipped` entry that names it and says why, and
the model it belongs to is left out of the tables; nothing raises on a bad file.

The same holds for the zoo's further AutoAttack budgets
(``<dir>/<dataset>/<threat_model>/<model>_eps<label>.json``, fields ``eps``, ``autoattack_acc``
in percent and ``n_examples``): :func:`read_autoattack_points`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leaderboard.store import current_array_names

_NONE = type(None)
_NUMBER = (int, float)


@dataclass(frozen=True)
class EachValue:
    """A JSON object (or ``null``) whose every value matches ``spec``."""

    spec: Any


@dataclass(frozen=True)
class ListOf:
    """A JSON list (or ``null``) whose every item matches ``spec``."""

    spec: Any


_OPT_NUMBER = (*_NUMBER, _NONE)
_OPT_STR = (str, _NONE)
_SUMMARY = EachValue(_OPT_NUMBER)
_BASELINE = {"n": (int, _NONE), "median": _OPT_NUMBER, "seconds": _OPT_NUMBER,
             "seconds_per_image": _OPT_NUMBER, "values": ListOf(_OPT_NUMBER)}

#: The fields of a result JSON that ``render`` reads, and the types each may have. A dict is a
#: nested object (or ``null``) of which only the keys listed are checked; a tuple of types is a
#: leaf (numbers are ``int`` or ``float``, never ``bool``). Absent keys are allowed.
RECORD_SPEC: dict[str, Any] = {
    "model": (str,), "dataset": (str,), "threat_model": (str,), "status": (str,), "error": _OPT_STR,
    "reported": {
        "clean_acc": _OPT_NUMBER, "autoattack_acc": _OPT_NUMBER, "architecture": _OPT_STR,
        "additional_data": (bool, _NONE), "venue": _OPT_STR, "eps": (str, *_OPT_NUMBER),
        "attack_seconds": _OPT_NUMBER, "attack_n_examples": (int, _NONE), "aa_source": _OPT_STR,
    },
    "n_examples": (int, _NONE), "clean_acc": _OPT_NUMBER, "method": _OPT_STR, "device": _OPT_STR,
    "fisher": {"spectral_norm": _SUMMARY, "trace": _SUMMARY},
    "predicted_robust_acc": EachValue({"eps": _OPT_NUMBER, "first_order": _OPT_NUMBER,
                                       "refined": _OPT_NUMBER}),
    "seconds": EachValue(_OPT_NUMBER),
    "baselines": {"blackbox": _BASELINE, "reference_whitebox": _BASELINE,
                  "clever": EachValue(_BASELINE)},
    "per_image": {"file": (str,), "sha256": (str,)},
    "versions": EachValue(_OPT_STR), "settings": EachValue(object),
    "route": EachValue(EachValue(object)),
    "images": EachValue(object), "checkpoints": ListOf({"file": _OPT_STR, "sha256": _OPT_STR,
                                                        "bytes": (int, _NONE)}),
    "checkpoint_load": _OPT_STR, "shared_from": _OPT_STR,
}
REQUIRED = ("model", "dataset", "threat_model", "status")

#: The fields of one further AutoAttack budget of a zoo model (all required).
AUTOATTACK_POINT_SPEC: dict[str, Any] = {"eps": _NUMBER, "autoattack_acc": _NUMBER,
                                         "n_examples": (int,)}


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
        record: the JSON's content.
        per_image: the arrays of its ``.npz`` (``None`` for a result without one: failed, or older).
    """

    path: Path
    record: dict[str, Any]
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


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
               _NONE: "null",
               dict: "an object", list: "a list"}


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types
                       if not (t is int and float in types))


def _json_type(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def type_problems(value: Any, spec: Any, where: str = "") -> list[str]:
    """Where ``value`` does not have the types ``spec`` describes (see :data:`RECORD_SPEC`).

    Args:
        value: parsed JSON.
        spec: a tuple of types, a dict of nested specs, :class:`EachValue` or :class:`ListOf`.
        where: the dotted field name of ``value``, for the messages.

    Returns:
        One message per mismatch, e.g. ``"field 'reported' is a list, expected an object or null"``.
    """
    if isinstance(spec, tuple):
        ok = (
            isinstance(value, spec) and not (isinstance(value, bool) and bool not in spec
                                             and object not in spec)
        )
        return [] if ok else [f"field '{where}' is {_json_type(value)}, expected "
                              f"{_type_names(spec)}"]
    if isinstance(spec, ListOf):
        if value is None:
            return []
        if not isinstance(value, list):
            return [f"field '{where}' is {_json_type(value)}, expected a list or null"]
        return [
            p
            for i, item in enumerate(value)
            for p in type_problems(item, spec.spec, f"{where}[{i}]")
        ]
    if value is None and where:
        return []
    if not isinstance(value, dict):
        return [f"field '{where}' is {_json_type(value)}, expected an object or null" if where
                else f"it holds {_json_type(value)}, not a JSON object"]
    if spec is object:
        return []
    prefix = f"{where}." if where else ""
    if isinstance(spec, EachValue):
        if spec.spec is object:
            return []
        return [p for key, item in value.items() for p in type_problems(item, spec.spec,
                                                                        f"{prefix}{key}")]
    return [p for key, sub in spec.items() if key in value
            for p in type_problems(value[key], sub, f"{prefix}{key}")]


def finite_number(value: Any) -> bool:
    """Whether ``value`` is an ``int`` or ``float`` (not ``bool``) and finite."""
    return isinstance(value, _NUMBER) and not isinstance(value, bool) and math.isfinite(value)


def read_json(path: Path, spec: Mapping[str, Any],
              required: tuple[str, ...] = ()) -> dict[str, Any] | str:
    """A JSON object checked against ``spec``, or the reason it cannot be used.

    Returns:
        The object, or a message: not readable, not UTF-8, not JSON, not an object, a required
        field missing, or a field of the wrong type.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    problems = type_problems(content, dict(spec))
    if not problems:
        problems = [f"field '{key}' is missing" for key in required if key not in content]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"{problems[0]}{more}"
    return content


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
        record = read_json(path, RECORD_SPEC, REQUIRED)
        if isinstance(record, str):
            out.skipped.append(Skipped(name, record))
            continue
        filed = (path.parent.parent.name, path.parent.name, path.stem)
        says = (record["dataset"], record["threat_model"], record["model"])
        if filed != says:
            out.skipped.append(
                Skipped(name, f"its content is {'/'.join(says)}, not what its path says")
            )
            continue
        per_image = None
        stored = record.get("per_image")
        if record["status"] == "ok" and stored:
            npz = path.parent / stored["file"]
            if npz.parent != path.parent:
                out.skipped.append(Skipped(name, f"its per_image file {stored['file']!r} is "
                                           "outside its folder"))
                continue
            arrays = read_npz(npz, stored["sha256"], path.name)
            if isinstance(arrays, str):
                out.skipped.append(Skipped(npz.relative_to(results).as_posix(),
                                           f"{arrays}; {record['model']} left out"))
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
        content = read_json(path, AUTOATTACK_POINT_SPEC, tuple(AUTOATTACK_POINT_SPEC))
        if isinstance(content, str):
            skipped.append(Skipped(name, content))
        elif not (finite_number(content["eps"]) and content["eps"] > 0
                  and finite_number(content["autoattack_acc"])
                  and 0 <= content["autoattack_acc"] <= 100):
            skipped.append(
                Skipped(name, "eps must be a positive number and autoattack_acc a percentage")
            )
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
    content = read_json(path, {"link": _OPT_STR})
    link = content.get("link") if isinstance(content, dict) else None
    return link if isinstance(link, str) and link.startswith(("https://", "http://")) else None
