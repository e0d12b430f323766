"""``render`` on hostile or odd result files: each is named and skipped, or shown harmlessly.

Every case the leaderboard's review found, one test each: numbers out of range, a 10 MB string,
JSON nested 100,000 deep, a provenance field nested 950 deep, a 240-character dataset folder, a
model named like matplotlib math text, a crash late in the render, a file scored with other
settings, Markdown and spreadsheet injection, a right-to-left override in a name, names that
differ only in punctuation, failures without provenance; then the command's output and a
property: no JSON at all makes ``render`` raise.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from render_cases import write_result

from leaderboard import html_page
from leaderboard.__main__ import main
from leaderboard.render import render


def _good(root: Path, count: int = 3) -> list[str]:
    """``count`` well-formed scored results (AutoAttack 10, 30, 60 …)."""
    names = [f"Good{i}" for i in range(count)]
    for i, name in enumerate(names):
        write_result(root, name, 10.0 + 25 * i, 50.0 / (i + 1), predicted=11.0 + 25 * i)
    return names


def _render(root: Path, out: Path, **options: Any) -> dict[str, Any]:
    return render(root, out, n_resamples=20, **options)


def _skipped(rendered: dict[str, Any]) -> dict[str, str]:
    return {s.file: s.reason for s in rendered["skipped"]}


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("autoattack_acc", 150.0, "field 'reported.autoattack_acc' is 150.0, outside [0, 100]"),
    ("autoattack_acc", -25.0, "field 'reported.autoattack_acc' is -25.0, outside [0, 100]"),
    ("clean_acc", 1e308, "field 'reported.clean_acc' is 1e+308, outside [0, 100]"),
])
def test_an_accuracy_out_of_range_is_skipped_by_name(tmp_path, field, value, reason):
    """AutoAttack 150% would rank first, −25% would get a rank, 1e308 would print 309 digits:
    each such file is skipped with the field, its value and the range, and nothing of it shows.
    """
    _good(tmp_path / "results")
    path = write_result(tmp_path / "results", "Odd", 40.0, 2.0)
    record = json.loads(path.read_text())
    record["reported"][field] = value
    path.write_text(json.dumps(record))
    rendered = _render(tmp_path / "results", tmp_path / "out")
    assert _skipped(rendered) == {"cifar10/Linf/Odd.json": reason}
    assert {r["model"] for r in rendered["rows"]} == {"Good0", "Good1", "Good2"}
    page = (tmp_path / "out" / "index.html").read_text()
    assert 'data-model="Odd"' not in page and "1e+308" not in page.split("Files skipped")[0]
    assert max(len(n) for n in re.findall(r"\d+", page.split("<svg")[0])) < 100


def test_a_ten_megabyte_string_is_skipped_by_name_and_copied_nowhere(tmp_path):
    """A 10 MB architecture name exceeds the record's cap: that file is named and skipped, and no
    output carries the string (it was once copied 15 times into a 169 MB page).
    """
    _good(tmp_path / "results")
    write_result(tmp_path / "results", "Long", 40.0, 2.0,
                 reported={"architecture": "x" * 10_000_000, "autoattack_acc": 40.0})
    rendered = _render(tmp_path / "results", tmp_path / "out")
    assert _skipped(rendered) == {"cifar10/Linf/Long.json": "field 'reported.architecture' is "
                                  "10000000 characters long, more than 1000"}
    assert len(rendered["rows"]) == 3
    for name in ("index.html", "leaderboard.md", "leaderboard.csv"):
        text = (tmp_path / "out" / name).read_text()
        assert len(text) < 2_000_000 and "x" * 1001 not in text


def test_json_nested_100000_deep_is_skipped_by_name(tmp_path):
    """JSON too deep for any recursive parser: that file alone is skipped, and named."""
    _good(tmp_path / "results")
    deep = tmp_path / "results" / "cifar10" / "Linf" / "Deep.json"
    deep.write_text('{"model": "Deep", "settings": ' + "[" * 100_000 + "]" * 100_000 + "}")
    rendered = _render(tmp_path / "results", tmp_path / "out")
    reason = _skipped(rendered)["cifar10/Linf/Deep.json"]
    assert reason == "nests too deep to parse"
    assert len(rendered["rows"]) == 3


@pytest.mark.parametrize("depth", [100, 950])
def test_provenance_nested_deep_is_skipped_by_name(tmp_path, depth):
    """A provenance field nested 100 or 950 levels deep is skipped with its field; at 950 the
    parser itself may run out of stack first (it depends on the caller's depth), and then the
    reader's failure names the file.
    """
    _good(tmp_path / "results")
    nested: Any = "leaf"
    for _ in range(depth):
        nested = {"a": nested}
    write_result(tmp_path / "results", "Nested", 40.0, 2.0, route={"spectral_norm": nested})
    rendered = _render(tmp_path / "results", tmp_path / "out")
    reason = _skipped(rendered)["cifar10/Linf/Nested.json"]
    assert len(rendered["rows"]) == 3
    if not (depth == 950 and reason == "nests too deep to parse"):
        assert reason == "field 'route.spectral_norm.a.a' nests deeper than 3 levels"


def test_a_240_character_dataset_folder_is_skipped_by_name(tmp_path):
    """A dataset name that would make a file name too long for the system is skipped."""
    _good(tmp_path / "results")
    write_result(tmp_path / "results", "Wide", 40.0, 2.0, dataset="d" * 240)
    rendered = _render(tmp_path / "results", tmp_path / "out")
    assert _skipped(rendered) == {
        f"{'d' * 240}/Linf/Wide.json": "field 'dataset' is 240 characters long, more than 128"}


def test_a_model_named_like_math_text_renders(tmp_path):
    r"""``bad$\foo$`` is a name, not matplotlib math: it is drawn and listed as written."""
    _good(tmp_path / "results")
    write_result(tmp_path / "results", "bad$\\foo$", 40.0, 2.0, predicted=41.0)
    rendered = _render(tmp_path / "results", tmp_path / "out")
    assert rendered["skipped"] == [] and "bad$\\foo$" in {r["model"] for r in rendered["rows"]}
    assert 'data-model="bad$\\foo$"' in (tmp_path / "out" / "index.html").read_text()


def test_a_late_crash_leaves_every_previous_output_as_it_was(tmp_path, monkeypatch):
    """Outputs are written aside and moved in only when all are written: a crash while making the
    page changes no file in the output folder and leaves no temporary folder behind.
    """
    _good(tmp_path / "results")
    out = tmp_path / "out"
    _render(tmp_path / "results", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write_result(tmp_path / "results", "New", 70.0, 0.1)

    def crash(data: html_page.PageData) -> str:
        raise RuntimeError("late crash")

    monkeypatch.setattr(html_page, "page", crash)
    with pytest.raises(RuntimeError, match="late crash"):
        _render(tmp_path / "results", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_file_scored_with_other_settings_is_skipped_naming_the_settings(tmp_path, capsys):
    """The other files still render; the skipped one's reason names each differing setting with
    both values; the command exits 1, or 0 with --allow-partial.
    """
    root = tmp_path / "results"
    usual = {"n_examples": 8, "seed": 0, "method": "auto"}
    for i in range(3):
        write_result(root, f"Good{i}", 10.0 + 20 * i, 9.0 / (i + 1), settings=usual)
    write_result(root, "Other", 40.0, 2.0, settings={**usual, "n_examples": 4, "seed": 1})
    rendered = _render(root, tmp_path / "out")
    assert _skipped(rendered) == {"cifar10/Linf/Other.json": (
        "scored with other settings than the 3 other scored model(s) of cifar10/Linf: n_examples "
        "4 (theirs: 8), seed 1 (theirs: 0); left out of its table (rescore it with their "
        "settings, or keep it in its own --results folder)")}
    assert {r["model"] for r in rendered["rows"]} == {"Good0", "Good1", "Good2"}
    args = ["render", "--results", str(root), "--out", str(tmp_path / "cli"), "--n-resamples", "9"]
    assert main(args) == 1
    assert "n_examples 4 (theirs: 8)" in capsys.readouterr().err
    assert main([*args, "--allow-partial"]) == 0


def test_markdown_and_csv_injection_is_neutralised(tmp_path):
    """Raw HTML and ``|`` in a name stay text in the Markdown; a formula stays text in the CSV."""
    root = tmp_path / "results"
    _good(root)
    write_result(root, "x|y<img src=q onerror=alert(1)>", 40.0, 2.0,
                 reported={"architecture": '=HYPERLINK("http://evil","click")',
                           "autoattack_acc": 40.0})
    _render(root, tmp_path / "out")
    text = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "x\\|y\\<img src=q onerror=alert(1)\\>" in text
    assert not re.search(r"(?<!\\)<img", text)
    row = next(r for r in text.splitlines() if "onerror" in r)
    assert row.count(" | ") == text.splitlines()[text.splitlines().index(row) - 1].count(" | ")
    with open(tmp_path / "out" / "leaderboard.csv", newline="") as handle:
        rows = {r["model"]: r for r in csv.DictReader(handle)}
    assert rows["x|y<img src=q onerror=alert(1)>"]["architecture"] == \
        '\'=HYPERLINK("http://evil","click")'


def test_names_are_isolated_and_hidden_characters_shown(tmp_path):
    """A right-to-left override cannot make a name display as another's: it shows as a code, in a
    ``<bdi>``; names that differ only in punctuation get details ids of their own.
    """
    root = tmp_path / "results"
    _good(root)
    write_result(root, "vgg-standard", 40.0, 2.0)
    write_result(root, "vgg_standard", 45.0, 1.0)
    write_result(root, "\u202edrabnats_ggv", 50.0, 0.5)
    rendered = _render(root, tmp_path / "out")
    assert "⟨U+202E⟩drabnats_ggv" in {r["model"] for r in rendered["rows"]}
    page = (tmp_path / "out" / "index.html").read_text()
    assert "\u202e" not in page and "<bdi>⟨U+202E⟩drabnats_ggv</bdi>" in page
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    controls = re.findall(r'aria-controls="([^"]+)"', page)
    assert len(controls) == len(set(controls)) == 6


def test_a_failure_without_provenance_is_not_called_an_earlier_version(tmp_path):
    """A failed run that recorded nothing says so; it is not blamed on an older version."""
    root = tmp_path / "results"
    _good(root)
    path = root / "cifar10" / "Linf" / "Failed.json"
    path.write_text(json.dumps({"model": "Failed", "dataset": "cifar10", "threat_model": "Linf",
                                "status": "failed", "error": "RuntimeError: CUDA out of memory"}))
    _render(root, tmp_path / "out")
    page = (tmp_path / "out" / "index.html").read_text()
    assert "The run recorded no provenance with this failure." in page
    assert "earlier version" not in page


def test_the_command_prints_a_summary_and_progress_not_the_markdown(tmp_path, capsys):
    """``render`` prints each table's title and model count, not the whole Markdown and no NaN rows
    for two models; the progress bar goes to stderr.
    """
    root = tmp_path / "results"
    _good(root, count=2)
    assert main(["render", "--results", str(root), "--out", str(tmp_path / "out"),
                 "--n-resamples", "10"]) == 0
    printed = capsys.readouterr()
    assert "CIFAR-10, ℓ∞, ε = 8/255: 2 scored model(s)" in printed.out
    assert "rank correlations need at least 3 models with AutoAttack accuracy; 2 so far" in (
        printed.out)
    assert "nan" not in printed.out.lower() and "| model |" not in printed.out
    assert "render" in printed.err


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
_FIELDS = ("status", "error", "reported", "n_examples", "clean_acc", "method", "fisher",
           "predicted_robust_acc", "seconds", "baselines", "settings", "route", "images",
           "checkpoints", "versions", "per_image", "model")


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(whole=_JSON, replaced=st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=4),
       number=st.floats(allow_nan=True) | st.integers(min_value=-10**400, max_value=10**400))
def test_no_json_makes_render_raise(tmp_path_factory, whole, replaced, number):
    """Beside two good results, a file holding any JSON, and one whose fields hold any JSON, never
    make ``render`` raise: each is shown or named as skipped.
    """
    root = tmp_path_factory.mktemp("hostile")
    _good(root, count=2)
    folder = root / "cifar10" / "Linf"
    (folder / "Any.json").write_text(json.dumps(whole))
    path = write_result(root, "Fields", number, 3.0, predicted=number)
    record = json.loads(path.read_text())
    record.update(replaced)
    path.write_text(json.dumps(record))
    rendered = _render(root, root / "out")
    shown = {r["model"] for r in rendered["rows"]}
    skipped = {s.file for s in rendered["skipped"]}
    assert {"Good0", "Good1"} <= shown
    assert "cifar10/Linf/Any.json" in skipped
    assert "Fields" in shown or "cifar10/Linf/Fields.json" in skipped
    assert (root / "out" / "index.html").is_file()
