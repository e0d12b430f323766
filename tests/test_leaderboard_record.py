"""The result record: one typed layout, read back exactly, and a reader that trusts nothing.

The committed zoo results must read and write back to the same JSON, and a record of the
unversioned layout before them (version 1) must still read; every hostile file (wrong types,
accuracies outside [0, 100], negative or infinite timings, megabyte strings, deep nesting) must
raise :class:`InvalidRecord` naming the file and the field; and no JSON value at all may make the
reader raise anything else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard import store
from leaderboard.baselines import BASELINES, Baselines
from leaderboard.record import (
    SCHEMA_VERSION,
    InvalidRecord,
    Reported,
    ResultRecord,
    Settings,
    parse_record,
    read_record,
)
from leaderboard.scoring import ScoreConfig, deterministic_cudnn
from leaderboard.sources import SOURCES, RobustBenchSource, Source, ZooSource

COMMITTED = Path(__file__).resolve().parents[1] / "leaderboard" / "results" / "zoo"


def _committed() -> list[Path]:
    return sorted(COMMITTED.glob("*/*/*.json"))


def test_committed_records_read_and_write_back_unchanged() -> None:
    """Every committed record reads, and its JSON is the file's content, in the file's order."""
    paths = _committed()
    assert len(paths) == 36
    for path in paths:
        record = read_record(path)
        assert record.schema_version == SCHEMA_VERSION and record.ok
        written = record.to_json()
        assert written == json.loads(path.read_text()), path
        assert list(written) == list(json.loads(path.read_text())), path  # same key order


#: Keys a version-1 record (no ``schema_version``) was written without, and what they read as.
ADDED_SINCE_VERSION_1 = {"proof_failure": None}


def test_a_version_1_record_reads_with_the_later_fields_absent() -> None:
    """A record of the unversioned layout (a committed one without the keys added since) reads as
    version 1 and writes back as its content plus those keys' values for "not recorded".
    """
    for path in _committed():
        content = json.loads(path.read_text())
        del content["schema_version"]
        for key in ADDED_SINCE_VERSION_1:
            del content[key]
        record = ResultRecord.from_json(content, path.name)
        assert record.schema_version == 1 and record.ok
        written = record.to_json()
        assert written.pop("schema_version") == 1
        assert written == {**content, **ADDED_SINCE_VERSION_1}, path


def test_a_new_record_carries_the_schema_version_first() -> None:
    record = ResultRecord(model="m", dataset="cifar10", threat_model="Linf")
    assert list(record.to_json())[0] == "schema_version"
    assert record.to_json()["schema_version"] == SCHEMA_VERSION
    assert "baselines" not in record.to_json() and "shared_from" not in record.to_json()
    again = ResultRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again == record


def _good() -> dict[str, Any]:
    return json.loads((COMMITTED / "cifar10" / "L2" / "vgg_pgd8.json").read_text())


def _set(content: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = content
    for key in parents:
        node = node[key]
    node[last] = value
    return content


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


HOSTILE = {
    "AutoAttack 150 %": ("reported.autoattack_acc", 150.0, "outside [0, 100]"),
    "AutoAttack -25 %": ("reported.autoattack_acc", -25.0, "outside [0, 100]"),
    "clean accuracy 1e308": ("clean_acc", 1e308, "outside [0, 100]"),
    "clean accuracy NaN": ("clean_acc", math.nan, "expected a finite number"),
    "predicted 101 %": ("predicted_robust_acc.Linf.refined", 101.0, "outside [0, 100]"),
    "negative timing": ("seconds.fisher", -1.0, "outside [0, inf]"),
    "infinite timing": ("seconds.total", math.inf, "expected a finite number"),
    "a 10 MB model name": ("reported.architecture", "x" * 10_000_000, "10000000 characters long"),
    "a 10 MB error": ("error", "x" * 10_000_000, "characters long"),
    "provenance nested 950 deep": ("images", _nested(950), "nests deeper than"),
    "a string where a number belongs": ("reported.autoattack_acc", "40",
                                        "is a string, expected a number or null"),
    "true where a number belongs": ("clean_acc", True, "is true/false, expected a number or null"),
    "a float image count": ("n_examples", 2.5, "is a number, expected an integer or null"),
    "an unknown status": ("status", "done", "expected one of ok, failed"),
    "a baseline's values a string": ("baselines.clever.linf.values", "1,2",
                                     "is a string, expected a list or null"),
    "a newer schema": ("schema_version", SCHEMA_VERSION + 1, "written by a newer version"),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_fields_raise_invalid_record_naming_file_and_field(case: str) -> None:
    dotted, value, reason = HOSTILE[case]
    content = _set(_good(), dotted, value)
    data = json.dumps(content).encode()
    with pytest.raises(InvalidRecord) as caught:
        parse_record(data, "cifar10/L2/vgg_pgd8.json")
    error = caught.value
    assert error.file == "cifar10/L2/vgg_pgd8.json"
    assert error.field.startswith(dotted.split(".")[0]) and reason in error.reason, error
    assert len(str(error)) < 500  # the message never carries the hostile value itself


@pytest.mark.parametrize(("data", "reason"), [
    (b"\xff{}", "is not UTF-8 text"),
    (b'{"model": ', "is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nests too deep to parse"),
    (b"[1, 2]", "holds a list, not a JSON object"),
    (b'{"model": "m", "dataset": "cifar10", "status": "ok"}', "field 'threat_model' is missing"),
])
def test_unreadable_files_raise_invalid_record(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        parse_record(data, "f.json")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=30,
)
_KEYS = st.sampled_from([f.name for f in dataclasses.fields(ResultRecord)])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _JSON, max_size=8), st.booleans())
def test_random_json_gives_a_record_or_invalid_record_nothing_else(content: dict[str, Any],
                                                                  required: bool) -> None:
    """Whatever the JSON, the reader returns a record whose JSON reads back, or InvalidRecord."""
    if required:
        content = {"model": "m", "dataset": "cifar10", "threat_model": "Linf", "status": "ok",
                   **content}
    try:
        record = parse_record(json.dumps(content).encode(), "f.json")
    except InvalidRecord as error:
        assert error.file == "f.json"
        return
    assert ResultRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_settings_are_one_dataclass_compared_field_by_field() -> None:
    """The settings a run compares are Settings' fields; a record without them differs in each."""
    config = ScoreConfig(model_dir="m", n_examples=4, baselines=Baselines())
    current = config.settings("cifar10")
    assert current.to_json() == {"n_examples": 4, "seed": 0, "method": "auto",
                                 "images": "bundled", "precision": "float32", "refine": True,
                                 "baselines": Baselines().settings()}
    assert "baselines" not in dataclasses.replace(current, baselines=None).to_json()
    assert current.difference(dataclasses.replace(current, seed=1)) == {"seed": (0, 1)}
    assert set(Settings().difference(current)) == {f.name for f in dataclasses.fields(Settings)}


def test_committed_record_settings_match_a_default_zoo_run() -> None:
    """The committed zoo results were scored with the defaults of `run --source zoo`."""
    zoo = SOURCES["zoo"]
    config = ScoreConfig(model_dir=zoo.default_model_dir, n_examples=zoo.default_n_examples,
                         source="zoo", baselines=Baselines())
    for path in _committed():
        assert read_record(path).settings.difference(config.settings("cifar10")) == {}, path


def test_written_files_get_the_umask_permissions_not_0600(tmp_path: Path) -> None:
    """Result files are readable by others (0644 under umask 022), not the temporary file's 0600."""
    import os

    old = os.umask(0o022)
    try:
        path = tmp_path / "cifar10" / "Linf" / "m.json"
        store.write_atomic(path, {"status": "ok"})
        store.write_per_image(path.with_suffix(".npz"), {"label": torch.zeros(2).numpy()})
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644
    assert (path.with_suffix(".npz").stat().st_mode & 0o777) == 0o644


def test_every_source_implements_the_interface_and_config_checks_the_name() -> None:
    assert set(SOURCES) == {"robustbench", "zoo"}
    assert isinstance(SOURCES["robustbench"], RobustBenchSource)
    assert isinstance(SOURCES["zoo"], ZooSource)
    for source in SOURCES.values():
        assert isinstance(source, Source) and source.default_n_examples > 0
    assert SOURCES["zoo"].one_pass_per_model and not SOURCES["robustbench"].one_pass_per_model
    with pytest.raises(ValueError, match="source must be one of robustbench, zoo"):
        ScoreConfig(model_dir="m", source="Zoo")


def test_baselines_are_declared_once() -> None:
    """Each baseline's image count is a Baselines field, and its columns are distinct."""
    counts = Baselines()
    assert [b.name for b in BASELINES] == ["blackbox", "reference_whitebox", "clever",
                                           "great_score", "logit_margin", "gradient_norm"]
    assert all(b.count(counts) == getattr(counts, b.images) for b in BASELINES)
    assert len({b.column for b in BASELINES} | {b.cost_column for b in BASELINES}) == 12


@pytest.mark.parametrize("fails", [False, True], ids=["returns", "raises"])
@pytest.mark.parametrize("before", [(True, False), (False, True)], ids=["benchmark", "determ."])
def test_cudnn_flags_come_back_as_they_were(before: tuple[bool, bool], fails: bool) -> None:
    """Scoring on a GPU sets deterministic cuDNN; the caller's flags are restored after, always."""
    cudnn = torch.backends.cudnn
    saved = (cudnn.benchmark, cudnn.deterministic)
    cudnn.benchmark, cudnn.deterministic = before
    try:
        with pytest.raises(RuntimeError) if fails else contextlib.nullcontext():
            with deterministic_cudnn(torch.device("cuda")):
                assert (cudnn.benchmark, cudnn.deterministic) == (False, True)
                if fails:
                    raise RuntimeError("out of memory")
        assert (cudnn.benchmark, cudnn.deterministic) == before
        with deterministic_cudnn(torch.device("cpu")):
            assert (cudnn.benchmark, cudnn.deterministic) == before
    finally:
        cudnn.benchmark, cudnn.deterministic = saved


def test_reported_is_the_record_block_and_the_registry_type() -> None:
    from leaderboard.registry import ZooEntry

    entry = ZooEntry("m", "cifar10", "Linf", Reported(clean_acc=90.0))
    assert ResultRecord(model="m", dataset="cifar10", threat_model="Linf",
                        reported=entry.reported).to_json()["reported"]["clean_acc"] == 90.0
