"""The results ``render`` shows: read, checked for display, and scored alike within each table.

:func:`read_checked` never raises on a bad file; it names and skips it. Three layers decide:

1. :func:`leaderboard.read_results.read_results` (types, SHA-256 of each ``.npz``). Should the
   reader raise on some file instead of skipping it (JSON nested 100,000 deep overflows any
   recursive parser), each file is read again on its own, through a folder that holds only it
   and the ``.npz`` files beside it, so that the one that raises is named and the others are kept.
2. :func:`leaderboard.display_checks.displayable` (ranges, lengths, depth, hidden characters).
3. Settings: a scored result whose settings (:class:`leaderboard.record.Settings`) differ from
   those most of its dataset/threat model share is left out, and its reason names each setting
   that differs, with both values.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from leaderboard.display_checks import displayable
from leaderboard.read_results import ReadResults, ResultFile, Skipped, read_results
from leaderboard.record import InvalidRecord, ResultRecord

logger = logging.getLogger(__name__)

#: Longest reason quoted from an exception the reader raised.
_MAX_REASON = 300


def _read_one(results: Path, path: Path) -> ReadResults:
    """:func:`read_results` on a folder that holds ``path`` and the ``.npz`` files beside it."""
    relative = path.relative_to(results)
    with tempfile.TemporaryDirectory(prefix="render-one-") as view:
        folder = Path(view) / relative.parent
        folder.mkdir(parents=True)
        os.symlink(path.resolve(), folder / path.name)
        for npz in path.parent.glob("*.npz"):
            os.symlink(npz.resolve(), folder / npz.name)
        read = read_results(Path(view))
    for result in read.results:
        result.path = path
    return read


def _read_each(results: Path) -> ReadResults:
    """Every result file read on its own; one on which the reader raises is skipped by name."""
    out = ReadResults()
    for path in sorted(results.glob("*/*/*.json")):
        try:
            read = _read_one(results, path)
        except Exception as exc:  # any failure on one file skips that file, never the render
            reason = f"{type(exc).__name__}: {exc}"
            if len(reason) > _MAX_REASON:
                reason = reason[:_MAX_REASON] + " …"
            out.skipped.append(Skipped(path.relative_to(results).as_posix(),
                                       f"cannot be read ({reason})"))
            continue
        out.results += read.results
        out.skipped += read.skipped
    return out


def _settings_key(record: ResultRecord) -> str:
    return json.dumps(record.settings.to_json(), sort_keys=True, default=str)


def _described(difference: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{name} {json.dumps(mine, default=str)} (theirs: "
                     f"{json.dumps(theirs, default=str)})"
                     for name, (mine, theirs) in difference.items())


def settings_outliers(results: list[ResultFile], root: Path) -> tuple[list[ResultFile],
                                                                       list[Skipped]]:
    """Split off the scored results whose settings differ from their table's usual ones.

    Within each dataset/threat model, the settings most scored results share (the first in file
    order on a tie) are the table's; a result with others is skipped with a reason naming each
    setting that differs.

    Args:
        results: the readable results.
        root: the folder they were read from (file names are relative to it).

    Returns:
        The results kept, and one :class:`Skipped` per result left out.
    """
    groups: dict[str, list[ResultFile]] = defaultdict(list)
    for result in results:
        if result.record.ok:
            groups[f"{result.record.dataset}/{result.record.threat_model}"].append(result)
    outliers: dict[int, Skipped] = {}
    for group, members in groups.items():
        counts = Counter(_settings_key(m.record) for m in members)
        usual_key, usual_count = counts.most_common(1)[0]
        usual = next(m.record.settings for m in members if _settings_key(m.record) == usual_key)
        for member in members:
            if _settings_key(member.record) != usual_key:
                difference = member.record.settings.difference(usual)
                outliers[id(member)] = Skipped(
                    member.path.relative_to(root).as_posix(),
                    f"scored with other settings than the {usual_count} other scored model(s) of "
                    f"{group}: {_described(difference)}; left out of its table (rescore it with "
                    "their settings, or keep it in its own --results folder)")
    return ([r for r in results if id(r) not in outliers],
            [outliers[id(r)] for r in results if id(r) in outliers])


def read_checked(results: Path) -> ReadResults:
    """The results under ``results`` that can be shown, and every file left out with its reason.

    Each kept result's ``record`` is the typed record of the cleaned content that
    :func:`leaderboard.display_checks.displayable` returns.
    """
    try:
        read = read_results(results)
    except Exception as exc:  # some file makes the reader raise: find it by reading each alone
        logger.warning("reading %s failed (%s: %s); reading each file on its own",
                       results, type(exc).__name__, str(exc)[:_MAX_REASON])
        read = _read_each(results)
    out = ReadResults(skipped=list(read.skipped))
    shown = []
    for result in read.results:
        name = result.path.relative_to(results).as_posix()
        cleaned = displayable(result.record.to_json())
        if isinstance(cleaned, str):
            out.skipped.append(Skipped(name, cleaned))
            continue
        try:
            record = ResultRecord.from_json(cleaned, name)
        except InvalidRecord as exc:  # what display cleaned no longer reads as a record
            out.skipped.append(Skipped(name, str(exc)))
            continue
        shown.append(ResultFile(result.path, record, result.per_image))
    out.results, outliers = settings_outliers(shown, results)
    out.skipped += outliers
    return out
