"""The result record: one model's scores and provenance, the leaderboard's one file format.

``run`` writes one :class:`ResultRecord` per model as ``<results>/<dataset>/<threat_model>/
<model>.json`` (:mod:`leaderboard.store`), and ``render`` reads them back
(:mod:`leaderboard.read_results`). The dataclasses below are the only description of that
file: each field's type, its default in a record that failed before it was filled, and the check
(:mod:`leaderboard.json_checks`) its JSON value must pass to be read back. A file that fails a
check raises :class:`InvalidRecord` naming the file and the field, so that a reader can name and
skip it; accuracies must be percentages in ``[0, 100]``, timings finite and non-negative, strings
short, provenance blocks shallow.

Files carry ``schema_version`` (:data:`SCHEMA_VERSION`); files written before it was recorded
are version 1 and have the same fields, so they are read as they are.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from leaderboard.json_checks import (
    AnyJson,
    Check,
    Either,
    Fields,
    Flag,
    ListOf,
    MapOf,
    Number,
    Optional,
    Problem,
    Text,
    json_type,
)

#: The version of the record's layout this code writes; 1 is the unversioned layout before it.
SCHEMA_VERSION = 2
#: Longest error message kept (a traceback's last 20 lines fit many times over).
MAX_ERROR = 20_000
#: Longest model name, dataset or threat model: they become file names.
MAX_NAME = 128

_PERCENT = Optional(Number(0, 100))
_SECONDS = Optional(Number(0))
_COUNT = Optional(Number(0, integer=True))
_SHORT = Optional(Text())
_NAME = Text(MAX_NAME)


class InvalidRecord(ValueError):
    """A result file that cannot be used, naming the file and the field.

    Attributes:
        file: the file (as the reader names it).
        field: the dotted name of the bad field (``""`` when the file as a whole is bad).
        reason: what is wrong with it.
    """

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file, self.field = file, field
        self.reason = f"field '{field}' {reason}" if field else reason
        super().__init__(f"{file}: {self.reason}")


def checked(check: Check, default: Any = None, **kwargs: Any) -> Any:
    """A dataclass field whose JSON value must pass ``check`` (kept in the field's metadata)."""
    if "default_factory" in kwargs:
        return field(metadata={"check": check}, **kwargs)
    return field(default=default, metadata={"check": check}, **kwargs)


def field_checks(cls: type) -> dict[str, Check]:
    """``name -> check`` of a dataclass built with :func:`checked` fields."""
    return {f.name: f.metadata["check"] for f in dataclasses.fields(cls) if "check" in f.metadata}


_T = TypeVar("_T")


def _known(cls: type[_T], content: Mapping[str, Any]) -> _T:
    """``cls`` built from the keys of ``content`` that are its fields (others are dropped)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in content.items() if k in names})


@dataclass(frozen=True)
class Reported:
    """Published figures of one model (percent floats): RobustBench's, or the zoo's measurements.

    Attributes:
        clean_acc: reported clean accuracy.
        autoattack_acc: reported robust accuracy: ``external`` if present, else ``autoattack_acc``.
        aa_source: ``"external"``, ``"autoattack_acc"`` or ``None`` (no robust accuracy).
        architecture: e.g. ``"WideResNet-28-10"``.
        eps: perturbation budget as RobustBench writes it (``"8/255"``), ``None`` for corruptions.
        additional_data: trained with extra data.
        venue: publication venue (``""`` in the snapshot means unpublished).
        unreliable: RobustBench flags the evaluation as unreliable.
        attack_seconds: wall time of the AutoAttack run behind ``autoattack_acc``, where known
            (the project's zoo records it; RobustBench does not).
        attack_n_examples: images that AutoAttack run attacked, where known.
    """

    clean_acc: float | None = checked(_PERCENT)
    autoattack_acc: float | None = checked(_PERCENT)
    aa_source: str | None = checked(_SHORT)
    architecture: str | None = checked(_SHORT)
    eps: str | float | None = checked(Optional(Either((Text(64), Number(0)))))
    additional_data: bool | None = checked(Optional(Flag()))
    venue: str | None = checked(_SHORT)
    unreliable: bool | None = checked(Optional(Flag()))
    attack_seconds: float | None = checked(_SECONDS)
    attack_n_examples: int | None = checked(Optional(Number(1, integer=True)))

    def to_json(self) -> dict[str, Any]:
        """The ``reported`` block of a result file."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Settings:
    """The settings that decide a result's numbers; a rerun must share them to keep a result.

    The batch size and the device are not among them: with the exact route they change nothing,
    and the iterative routes adapt the batch to the machine's memory. A field a stored result
    does not record is ``None`` (results scored before it was recorded).

    Attributes:
        n_examples: test images per model.
        seed: seed of every random draw.
        method: the Fisher route asked for (``"auto"``, ``"exact"``, ``"lanczos"``).
        images: where the images came from (:func:`leaderboard.data.source_name`).
        precision: ``"float32"`` or ``"tf32"``.
        refine: whether the refined radii were computed.
        baselines: the baselines' image counts and settings
            (:meth:`leaderboard.baselines.Baselines.settings`), ``None`` without baselines.
    """

    n_examples: int | None = checked(Optional(Number(1, integer=True)))
    seed: int | None = checked(Optional(Number(integer=True)))
    method: str | None = checked(_SHORT)
    images: str | None = checked(_SHORT)
    precision: str | None = checked(_SHORT)
    refine: bool | None = checked(Optional(Flag()))
    baselines: dict[str, int] | None = checked(Optional(MapOf(Number(integer=True), 64)))

    def to_json(self) -> dict[str, Any]:
        """The ``settings`` block of a result file (``baselines`` only when there are some)."""
        out = dataclasses.asdict(self)
        if self.baselines is None:
            del out["baselines"]
        return out

    def difference(self, current: Settings) -> dict[str, tuple[Any, Any]]:
        """``name -> (these, current)`` for every setting that differs."""
        pairs = {f.name: (getattr(self, f.name), getattr(current, f.name))
                 for f in dataclasses.fields(self)}
        return {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}


def _baseline_entry(value: Any, where: str) -> None:
    """One baseline's summary, or (CLEVER's kind) one summary per threat model."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        MapOf(BASELINE_SUMMARY, 16)(value, where)
    else:
        BASELINE_SUMMARY(value, where)


#: One baseline's summary (:func:`leaderboard.baselines.score_baselines`).
BASELINE_SUMMARY = Fields({
    "n": _COUNT, "median": Optional(Number()), "seconds": _SECONDS,
    "seconds_per_image": _SECONDS, "values": Optional(ListOf(Optional(Number()))),
    "median_ratio_to_exact": Optional(Number()), "score": Optional(Number()),
    "higher_is_robust": Optional(Flag()), "provenance": Optional(AnyJson(2)),
})
#: A Fisher summary (:func:`art_fim.summarize`): ``n``, ``mean``, ``median``, quantiles, ...
FISHER_SUMMARY = MapOf(Optional(Number()), 64)
#: The attack-free prediction at one threat model's budget.
PREDICTION = Fields({"eps": Optional(Number(0)), "first_order": _PERCENT, "refined": _PERCENT,
                     "proven_first_order": _PERCENT, "proven_refined": _PERCENT})


@dataclass
class ResultRecord:
    """One model's result: what ``run`` writes and ``render`` reads (one JSON file per model).

    Attributes:
        model: zoo name.
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        threat_model: ``"Linf"``, ``"L2"`` or ``"corruptions"``.
        status: ``"ok"`` once scored, ``"failed"`` until then (and for good if scoring raised).
        error: the failure's first line and the traceback's tail.
        reported: the published (or, for the zoo, measured) accuracies.
        n_examples: test images scored.
        clean_acc: clean accuracy on them, in percent.
        fisher: ``{"spectral_norm": summary, "trace": summary}`` (:func:`art_fim.summarize`).
        predicted_robust_acc: attack-free robust accuracy in percent at the dataset's RobustBench
            budgets, per threat model: ``{"Linf": {"eps", "first_order", "refined",
            "proven_first_order", "proven_refined"}, ...}`` (``proven_*``: percent of inputs whose
            radius is proven to be the minimum over all classes; the others count as not robust).
        seconds: wall times ``load``, ``warmup``, ``fisher``, ``total`` (and ``baselines``).
        images_per_second: images per second of the timed Fisher pass.
        method: the route taken (``"exact"``, or λ_max's and the trace's when they differ).
        batch_size: largest batch asked for.
        device: the device, as :func:`leaderboard.scoring.device_name` writes it.
        precision: arithmetic of the products (``"float32"``, ``"tf32"``).
        competitors: classes each robust radius was computed against.
        proof_failure: where the radii came from a subset of classes, the probability per input
            that the proof that the omitted classes cannot set the minimum fails
            (:mod:`art_fim.competitor_proof`); ``None`` where every class was seen.
        seed: seed of every random draw.
        versions: Python's and the packages' versions.
        settings: what decides the numbers (compared on a rerun).
        route: method and batch size actually used per quantity.
        images: the images' source, indices and pixel hashes.
        checkpoints: file, SHA-256 and size of each checkpoint.
        checkpoint_load: ``"weights_only"`` or the trusted full unpickling.
        per_image: ``{"file", "sha256"}`` of the per-image ``.npz`` (:mod:`leaderboard.store`).
        baselines: each baseline's summary (:func:`leaderboard.baselines.score_baselines`), where
            the run computed baselines.
        shared_from: for a zoo model's second threat model, the one it was scored under (one pass
            serves both).
        schema_version: the layout of the file (:data:`SCHEMA_VERSION`).
    """

    model: str = checked(_NAME)
    dataset: str = checked(_NAME)
    threat_model: str = checked(_NAME)
    status: str = checked(Text(16, ("ok", "failed")), "failed")
    error: str | None = checked(Optional(Text(MAX_ERROR)))
    reported: Reported = checked(Optional(Fields(field_checks(Reported))),
                                 default_factory=Reported)
    n_examples: int | None = checked(Optional(Number(1, integer=True)))
    clean_acc: float | None = checked(_PERCENT)
    fisher: dict[str, dict[str, float | None]] | None = checked(Optional(MapOf(FISHER_SUMMARY, 16)))
    predicted_robust_acc: dict[str, dict[str, float | None]] | None = checked(
        Optional(MapOf(PREDICTION, 16)))
    seconds: dict[str, float | None] = checked(
        Optional(MapOf(_SECONDS, 16)),
        default_factory=lambda: dict.fromkeys(("load", "warmup", "fisher", "total")))
    images_per_second: float | None = checked(_SECONDS)
    method: str | None = checked(_SHORT)
    batch_size: int | None = checked(Optional(Number(1, integer=True)))
    device: str | None = checked(_SHORT)
    precision: str | None = checked(_SHORT)
    competitors: int | None = checked(_COUNT)
    proof_failure: float | None = checked(Optional(Number(0, 1)))
    seed: int | None = checked(Optional(Number(integer=True)))
    versions: dict[str, str] | None = checked(Optional(MapOf(_SHORT, 64)))
    settings: Settings = checked(Optional(Fields(field_checks(Settings))),
                                 default_factory=Settings)
    route: dict[str, dict[str, Any]] | None = checked(Optional(AnyJson(3)))
    images: dict[str, Any] | None = checked(Optional(AnyJson(3)))
    checkpoints: list[dict[str, Any]] | None = checked(Optional(ListOf(AnyJson(2), 1_000)))
    checkpoint_load: str | None = checked(_SHORT)
    per_image: dict[str, str] | None = checked(
        Optional(Fields({"file": Text(MAX_NAME + 8), "sha256": Text(64)}, ("file", "sha256"))))
    baselines: dict[str, Any] | None = checked(Optional(MapOf(_baseline_entry, 64)))
    shared_from: str | None = checked(Optional(_NAME))
    schema_version: int = checked(Number(1, SCHEMA_VERSION, integer=True), SCHEMA_VERSION)

    #: Keys written only when set (a result without baselines, one scored for its own threat model).
    OPTIONAL_KEYS = ("baselines", "shared_from")
    #: Keys that depend on the machine and the moment, not on the model, data and seed.
    TIMING_KEYS = ("seconds", "images_per_second", "device")

    @property
    def key(self) -> str:
        """``dataset/threat_model/model``."""
        return f"{self.dataset}/{self.threat_model}/{self.model}"

    @property
    def ok(self) -> bool:
        """Whether the model was scored."""
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        """The record as its JSON file holds it (``schema_version`` first)."""
        out: dict[str, Any] = {"schema_version": self.schema_version}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "schema_version" or (f.name in self.OPTIONAL_KEYS and value is None):
                continue
            out[f.name] = value.to_json() if hasattr(value, "to_json") else value
        return out

    @classmethod
    def from_json(cls, content: Any, file: str = "<record>") -> ResultRecord:
        """A record from a parsed JSON file, every field checked.

        Args:
            content: the parsed JSON.
            file: the file's name, for the error.

        Raises:
            InvalidRecord: naming ``file`` and the first field that fails its check (or saying
                that the content is no JSON object, or written by a newer version).
        """
        content = {"schema_version": 1, **json_object(content, file)}
        version = content["schema_version"]
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise InvalidRecord(file, "schema_version", f"is {version}: written by a newer version "
                                f"of the leaderboard (this one reads up to {SCHEMA_VERSION})")
        try:
            Fields(field_checks(cls), ("model", "dataset", "threat_model", "status"))(content, "")
        except Problem as problem:
            raise InvalidRecord(file, problem.field, problem.reason) from None
        record = _known(cls, content)
        record.reported = _known(Reported, content.get("reported") or {})
        record.settings = _known(Settings, content.get("settings") or {})
        if record.seconds is None:
            record.seconds = {}
        return record


def parse_record(data: bytes, file: str) -> ResultRecord:
    """A record from a result file's bytes.

    Raises:
        InvalidRecord: the bytes are not UTF-8, not JSON, nested too deep for the parser, or
            not a valid record (:meth:`ResultRecord.from_json`).
    """
    return ResultRecord.from_json(parse_json(data, file), file)


def parse_json(data: bytes, file: str) -> Any:
    """The JSON value of a file's bytes.

    Raises:
        InvalidRecord: the bytes are not UTF-8, not JSON, or nested too deep for the parser.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecord(file, "", f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                            f"offset {exc.start})") from None
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRecord(file, "", f"is not valid JSON ({exc.msg} at line {exc.lineno}, "
                            f"column {exc.colno})") from None
    except RecursionError:
        raise InvalidRecord(file, "", "nests too deep to parse") from None
    return content


def json_object(content: Any, file: str) -> dict[str, Any]:
    """``content`` if it is a JSON object.

    Raises:
        InvalidRecord: it is not (naming what it holds).
    """
    if not isinstance(content, dict):
        raise InvalidRecord(file, "", f"it holds {json_type(content)}, not a JSON object")
    return content


def read_json(path: Path, file: str | None = None) -> Any:
    """The JSON value in ``path``.

    Args:
        path: the JSON file.
        file: its name in messages (default: the path).

    Raises:
        InvalidRecord: the file cannot be read, is not UTF-8 or not JSON.
    """
    name = str(path) if file is None else file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidRecord(name, "", f"cannot be read ({exc.strerror or exc})") from None
    return parse_json(data, name)


def read_checked(path: Path, check: Check, file: str | None = None) -> dict[str, Any]:
    """The JSON object in ``path``, checked by ``check`` (a :class:`~json_checks.Fields`).

    Raises:
        InvalidRecord: the file cannot be read, is not a JSON object, or fails the check.
    """
    name = str(path) if file is None else file
    content = json_object(read_json(path, name), name)
    try:
        check(content, "")
    except Problem as problem:
        raise InvalidRecord(name, problem.field, problem.reason) from None
    return content


def read_record(path: Path, file: str | None = None) -> ResultRecord:
    """The record in ``path``.

    Args:
        path: the JSON file.
        file: its name in messages (default: the path).

    Raises:
        InvalidRecord: the file cannot be read or is not a valid record.
    """
    name = str(path) if file is None else file
    return ResultRecord.from_json(read_json(path, name), name)
