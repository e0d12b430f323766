"""The leaderboard page's stylesheet and script, inlined by :mod:`leaderboard.html_page`.

One CSS rule per line, and no string literal in either spans a line: a line break inside a CSS
string ends that declaration and makes the browser drop or nest the rules after it, which once
left most of this stylesheet unapplied (tests check for it).

Layout, as a reader sees it:

* the page is never wider than the window: each wide table scrolls sideways in its own box
  (``.scroll``), whose header row sticks to the box's top and whose model column sticks to its
  left, so a phone shows the names while the numbers scroll;
* the "which score tracks AutoAttack" table keeps its score column in view the same way; the
  plain tables (that one, costs, correlations) break their words only between them;
* a model's name breaks only when it is longer than its column (12 rem), not at every
  character as the rest of the page may;
* a model's details open in the row under it, in a block that sticks to the visible part of the
  box (``position: sticky; left: 0``), and the script scrolls it into view;
* the sort arrow of a heading reads ▲ ascending, ▼ descending, ↕ not sorted.
"""

CSS = """
*, *::before, *::after { box-sizing: border-box; }
body {
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  margin: 0 auto;
  max-width: 1400px;
  padding: 0 1rem 3rem;
  color: #1b1f24;
  line-height: 1.45;
  overflow-wrap: anywhere;
}
h1 { margin: 1.2rem 0 .4rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #dde; padding-bottom: .2rem; }
nav { display: flex; flex-wrap: wrap; gap: .3rem 1rem; margin: .8rem 0; }
.stamp { color: #555; font-size: .9rem; }
.note { color: #555; font-size: .9rem; }
a.download { font-weight: 600; }
.controls {
  display: flex;
  flex-wrap: wrap;
  gap: .5rem 1.2rem;
  align-items: center;
  margin: .6rem 0;
}
input.filter { min-width: min(16rem, 80vw); font-size: 1rem; padding: .3rem .4rem; }
.scroll { overflow: auto; max-height: 80vh; max-width: 100%; border: 1px solid #dde; }
table { border-collapse: separate; border-spacing: 0; font-size: .86rem; }
th, td {
  padding: .3rem .55rem;
  border-bottom: 1px solid #e4e6ee;
  text-align: left;
  vertical-align: top;
}
td { white-space: nowrap; }
thead th { background: #f2f4f8; position: sticky; top: 0; z-index: 2; white-space: nowrap; }
th[data-sort] { cursor: pointer; user-select: none; }
th[data-sort]::after { content: " \\2195"; color: #99a; }
th[aria-sort="ascending"]::after { content: " \\25B2"; color: #333; }
th[aria-sort="descending"]::after { content: " \\25BC"; color: #333; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ci { display: block; font-size: .72rem; color: #667; }
table.board td.name, table.board th.name {
  position: sticky;
  left: 0;
  z-index: 1;
  background: #fff;
  min-width: 9rem;
  max-width: 16rem;
  white-space: normal;
}
table.board thead th.name { z-index: 3; background: #f2f4f8; }
tr.model:nth-child(4n+1) td { background: #f7f8fc; }
.sub { display: block; color: #667; font-size: .75rem; }
td.name bdi { display: inline-block; max-width: 12rem; overflow-wrap: break-word; }
button.toggle {
  font-size: .8rem;
  min-height: 2rem;
  min-width: 4.2rem;
  margin: .15rem 0 0;
  cursor: pointer;
}
table.board:not(.all-columns) .extra { display: none; }
tr.detail > td { background: #f4f6fa; white-space: normal; padding: 0; }
.detail-body {
  position: sticky;
  left: 0;
  width: max-content;
  max-width: min(1330px, calc(100vw - 3rem));
  display: flex;
  flex-wrap: wrap;
  gap: 1rem 2rem;
  align-items: flex-start;
  padding: .8rem;
}
.detail-body > div { min-width: 0; max-width: 100%; }
figure { margin: 0; }
figure.curve img { display: block; width: 640px; max-width: 100%; height: auto; }
table.prov { font-size: .75rem; }
table.prov th { position: static; background: none; font-weight: 600; white-space: normal; }
table.prov td { white-space: normal; }
table.prov code { word-break: break-all; }
table.plain td { white-space: normal; }
table.plain th, table.plain td { overflow-wrap: normal; }
table.tracking thead th { white-space: normal; vertical-align: bottom; min-width: 5.5rem; }
table.tracking td.num { white-space: nowrap; }
table.tracking tr > :first-child { position: sticky; left: 0; z-index: 1; background: #fff; }
table.tracking td:first-child { min-width: 8rem; }
table.tracking thead tr > :first-child { z-index: 3; background: #f2f4f8; }
figure.plot {
  display: inline-block;
  margin: 1rem 1rem 1rem 0;
  vertical-align: top;
  max-width: 100%;
}
figure.plot svg { max-width: 100%; height: auto; }
g.point:hover path, g.point:hover use { stroke: #000; stroke-width: 2; }
details.legend { margin: .5rem 0 1rem; font-size: .88rem; }
details.legend dt { font-weight: 600; }
details.legend dd { margin: 0 0 .4rem 1rem; }
"""

SCRIPT = """
(function () {
  "use strict";
  function value(row, col, numeric) {
    var cell = row.cells[col];
    var v = cell.getAttribute("data-v");
    if (numeric) { return v === null ? null : parseFloat(v); }
    return (v === null ? cell.textContent : v).trim().toLowerCase();
  }
  function sortTable(table, col, th) {
    var numeric = th.getAttribute("data-sort") === "num";
    var current = th.getAttribute("aria-sort");
    var direction = current ? (current === "ascending" ? "descending" : "ascending")
      : th.getAttribute("data-first");
    var ascending = direction === "ascending";
    var rows = Array.prototype.slice.call(table.tBodies[0].querySelectorAll("tr.model"));
    var pairs = rows.map(function (row) { return [row, row.nextElementSibling]; });
    pairs.sort(function (a, b) {
      var x = value(a[0], col, numeric), y = value(b[0], col, numeric);
      if (x === null || x === "") { return (y === null || y === "") ? 0 : 1; }
      if (y === null || y === "") { return -1; }
      var order = x < y ? -1 : (x > y ? 1 : 0);
      return ascending ? order : -order;
    });
    var body = table.tBodies[0];
    pairs.forEach(function (pair) { body.appendChild(pair[0]); body.appendChild(pair[1]); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
      cell.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", direction);
  }
  function filterTable(input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var query = input.value.trim().toLowerCase();
    var shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].querySelectorAll("tr.model"), function (row) {
      var match = row.getAttribute("data-search").indexOf(query) !== -1;
      row.hidden = !match;
      var open = row.querySelector("button.toggle").getAttribute("aria-expanded") === "true";
      row.nextElementSibling.hidden = !(match && open);
      if (match) { shown += 1; }
    });
    var count = document.getElementById(input.getAttribute("data-count"));
    if (count) { count.textContent = shown + (shown === 1 ? " model" : " models"); }
  }
  document.querySelectorAll("table.board").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      if (!th.hasAttribute("data-sort")) { return; }
      th.addEventListener("click", function () { sortTable(table, col, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortTable(table, col, th); }
      });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    input.addEventListener("input", function () { filterTable(input); });
  });
  document.querySelectorAll("input.all-columns").forEach(function (box) {
    box.addEventListener("change", function () {
      var table = document.getElementById(box.getAttribute("data-table"));
      table.classList.toggle("all-columns", box.checked);
    });
  });
  document.querySelectorAll("button.toggle").forEach(function (button) {
    button.addEventListener("click", function () {
      var detail = document.getElementById(button.getAttribute("aria-controls"));
      var open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", open ? "true" : "false");
      detail.hidden = !open;
      if (open) {
        detail.querySelector(".detail-body").scrollIntoView({block: "nearest", inline: "nearest"});
      }
    });
  });
}());
"""
