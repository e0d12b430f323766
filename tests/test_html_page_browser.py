"""The rendered leaderboard page in a real (headless) browser, from the committed zoo results.

Needs Playwright and a system Chromium (``leaderboard.screenshot``). Without them the module is
skipped, unless ``ART_FIM_REQUIRE_BROWSER`` is set (as CI sets it): then it fails, so CI can
never pass without having opened the page.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from leaderboard.screenshot import browser_page, chromium_path

RESULTS = Path(__file__).resolve().parents[1] / "leaderboard" / "results" / "zoo"


def _require_browser() -> None:
    problem = None
    try:
        import playwright  # noqa: F401
    except ImportError:
        problem = "Playwright is not installed (pip install playwright)"
    if chromium_path() is None:
        problem = "no Chromium (apt-get install -y chromium, or ART_FIM_CHROMIUM)"
    if problem is None:
        return
    if os.environ.get("ART_FIM_REQUIRE_BROWSER"):
        pytest.fail(f"ART_FIM_REQUIRE_BROWSER is set but {problem}")
    pytest.skip(f"browser test: {problem}; set ART_FIM_REQUIRE_BROWSER=1 to make this a failure",
                allow_module_level=True)


_require_browser()


def _committed_models() -> dict[str, set[str]]:
    """``dataset/threat_model -> model names`` of the committed zoo result JSONs."""
    groups: dict[str, set[str]] = {}
    for path in RESULTS.glob("*/*/*.json"):
        record = json.loads(path.read_text())
        groups.setdefault(f"{record['dataset']}/{record['threat_model']}",
                          set()).add(record["model"])
    return groups


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The committed zoo results rendered afresh (few bootstrap resamples: the table is under test)
    and opened.
    """
    from leaderboard.render import render
    from leaderboard.zoo.weights import ZOO_DIR

    out = tmp_path_factory.mktemp("page")
    rendered = render(RESULTS, out, n_resamples=20, autoattack_curves=ZOO_DIR / "autoattack_curve")
    assert rendered["skipped"] == []
    with browser_page() as page:
        messages: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: messages.append(f"{m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: messages.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((out / "index.html").as_uri())
        page.wait_for_load_state("load")
        yield {"page": page, "messages": messages, "requests": requests, "out": out}


def _table(group: str) -> str:
    return "#table-" + "".join(c if c.isalnum() else "-" for c in group)


def _visible_models(page: Any, group: str) -> list[str]:
    return page.eval_on_selector_all(f"{_table(group)} tr.model",
                                     "rows => rows.filter(r => !r.hidden)"
                                     ".map(r => r.dataset.model)")


def _column(page: Any, group: str, header: str) -> int:
    headers = page.eval_on_selector_all(f"{_table(group)} thead th",
                                        "cells => cells.map(c => c.textContent)")
    return headers.index(header)


def test_every_committed_zoo_model_is_in_its_table(opened):
    """Each dataset/threat model of the committed results has a table with exactly its models."""
    groups = _committed_models()
    assert groups and sum(len(m) for m in groups.values()) >= 36
    for group, models in groups.items():
        assert sorted(_visible_models(opened["page"], group)) == sorted(models)


def test_sorting_by_autoattack_accuracy_orders_the_rows(opened):
    """A click on the heading sorts the rows ascending, a second one descending; details rows follow
    their model.
    """
    page = opened["page"]
    for group in _committed_models():
        header = page.locator(f"{_table(group)} thead th", has_text="AutoAttack %").first
        column = _column(page, group, "AutoAttack %")
        for direction in ("ascending", "descending"):
            header.click()
            assert header.get_attribute("aria-sort") == direction
            values = page.eval_on_selector_all(
                f"{_table(group)} tr.model", "rows => rows.map(r => "
                f"parseFloat(r.cells[{column}].dataset.v))")
            assert values == sorted(values, reverse=direction == "descending")
            assert len(set(values)) > 1
            paired = page.eval_on_selector_all(
                f"{_table(group)} > tbody > tr",
                "rows => rows.every((r, i) => i % 2 ? r.classList.contains('detail') : "
                "r.classList.contains('model'))")
            assert paired


def test_filter_hides_the_rows_that_do_not_match(opened):
    """Typing an architecture leaves exactly its models; clearing the box brings every row back."""
    page = opened["page"]
    group, models = min(_committed_models().items())
    box = page.locator(f'input.filter[data-table="{_table(group)[1:]}"]')
    box.fill("vit")
    assert sorted(_visible_models(page, group)) == sorted(m for m in models if "vit" in m)
    box.fill("pgd")
    assert sorted(_visible_models(page, group)) == sorted(m for m in models
                                                          if "pgd" in m)  # training "PGD ..."
    box.fill("")
    assert sorted(_visible_models(page, group)) == sorted(models)


def test_details_open_the_curve_and_the_provenance(opened):
    """A model's details button shows its accuracy-vs-ε curve and its checkpoint's SHA-256."""
    page = opened["page"]
    group = min(_committed_models())
    row = page.locator(f"{_table(group)} tr.model").first
    model = row.get_attribute("data-model")
    record = json.loads(
        (RESULTS / group.split("/")[0] / group.split("/")[1] / f"{model}.json").read_text()
    )
    detail = page.locator(f"{_table(group)} tr.detail").first
    assert detail.is_hidden()
    row.locator("button.toggle").click()
    assert detail.is_visible()
    assert detail.locator("img").first.get_attribute("src").startswith("data:image/png;base64,")
    assert record["checkpoints"][0]["sha256"] in detail.inner_text()


def test_no_console_errors_and_nothing_fetched(opened):
    """The page logs no error or warning and requests nothing but itself."""
    assert opened["messages"] == []
    assert opened["requests"] == [(opened["out"] / "index.html").as_uri()]
