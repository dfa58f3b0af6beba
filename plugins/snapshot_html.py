"""``index.html``: one static page that shows the snapshot files beside it.

The page carries the files' contents inside it, so opening it from disk works
offline; served over HTTP it fetches the JSON files again on load, so a page
published once keeps showing the latest files. No CDN, no build step: the CSS
and the script are inline, and every value is inserted as text, never as HTML
(scanner names and broker messages come from outside).
"""

from __future__ import annotations

import json
from typing import Any

from tradepipe.plugins.snapshot import FILES


def render(documents: dict[str, Any]) -> str:
    """The page for ``documents`` (file name → parsed JSON)."""
    data = json.dumps({name: documents.get(name) for name in FILES}, indent=1)
    # Inside <script>, "</" would end the element early; \u003c is the same
    # character to the JSON parser.
    data = data.replace("<", "\\u003c")
    return _PAGE.replace("__DATA__", data)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tradepipe snapshot</title>
<style>
  :root { color-scheme: light dark; --line: #8884; --muted: #777; --warn: #b45309; }
  body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 72rem;
         padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.1rem; margin: 1.75rem 0 .5rem; }
  .meta, .note, .empty { color: var(--muted); }
  .demo { border: 2px solid var(--warn); color: var(--warn); padding: .5rem .75rem;
          border-radius: 6px; margin: .75rem 0; font-weight: 600; }
  table { border-collapse: collapse; width: 100%; }
  table.pairs { width: auto; min-width: 24rem; }
  th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line);
           vertical-align: top; }
  th { font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .bad { color: #b91c1c; font-weight: 600; } .good { color: #15803d; font-weight: 600; }
</style>
</head>
<body>
<h1>tradepipe snapshot</h1>
<div id="meta" class="meta"></div>
<div id="demo" class="demo" hidden></div>
<main id="main"></main>
<script id="snapshot-data" type="application/json">
__DATA__
</script>
<script>
"use strict";
const FILES = ["portfolio.json", "market-data.json", "scanner-results.json", "token-status.json"];

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function isNumber(value) {
  return typeof value === "number"
    || (typeof value === "string" && /^-?\\d+(\\.\\d+)?$/.test(value));
}

function table(columns, rows) {
  const t = el("table"), body = t.createTBody();
  if (columns.some(([label]) => label)) {
    const head = t.createTHead().insertRow();
    for (const [label] of columns) head.appendChild(el("th", label));
  }
  for (const row of rows) {
    const tr = body.insertRow();
    for (const [, key] of columns) {
      const value = row[key];
      tr.appendChild(el("td", value === null || value === undefined ? "" : value,
                        isNumber(value) ? "num" : ""));
    }
  }
  return t;
}

function pairs(object, keys) {
  const t = table([["", "k"], ["", "v"]], keys.filter((k) => k in object)
    .map((k) => ({ k: k.replaceAll("_", " "), v: object[k] })));
  t.className = "pairs";
  return t;
}

function section(title, doc, build) {
  const box = el("section");
  box.appendChild(el("h2", title));
  if (!doc) {
    box.appendChild(el("p", "Not written yet.", "empty"));
    return box;
  }
  box.appendChild(el("p", "as of " + doc.generated_at, "meta"));
  if (doc.note) box.appendChild(el("p", doc.note, "note"));
  build(box, doc);
  return box;
}

function render(docs) {
  const main = document.getElementById("main");
  main.replaceChildren();
  const any = FILES.map((f) => docs[f]).find(Boolean);
  document.getElementById("meta").textContent = any
    ? `broker ${any.broker} · account ${any.account ?? "unknown"} · ${any.generated_at}`
    : "No snapshot files yet.";
  const demo = FILES.map((f) => docs[f]).find((d) => d && d.demo);
  const banner = document.getElementById("demo");
  banner.hidden = !demo;
  if (demo) banner.textContent = "Demo data from the paper simulator: " + demo.demo_reason;

  main.appendChild(section("Account", docs["portfolio.json"], (box, doc) => {
    box.appendChild(pairs(doc.summary, ["account_id", "currency", "cash", "equity",
      "buying_power", "gross_position_value", "realized_pnl", "unrealized_pnl", "ts"]));
    box.appendChild(el("h2", "Positions"));
    if (!doc.positions.length) box.appendChild(el("p", "No open positions.", "empty"));
    else box.appendChild(table([["symbol", "symbol"], ["quantity", "quantity"],
      ["avg cost", "avg_cost"], ["mark", "mark_price"], ["market value", "market_value"],
      ["unrealized P&L", "unrealized_pnl"], ["realized P&L", "realized_pnl"]], doc.positions));
  }));
  main.appendChild(section("Quotes", docs["market-data.json"], (box, doc) => {
    if (doc.quotes.length) box.appendChild(table([["symbol", "symbol"], ["bid", "bid"],
      ["ask", "ask"], ["last", "last"], ["volume", "volume"], ["time", "ts"]], doc.quotes));
    if (doc.missing.length) {
      box.appendChild(el("p", "No quote for " + doc.missing.join(", "), "note"));
    }
  }));
  main.appendChild(section("Scanner", docs["scanner-results.json"], (box, doc) => {
    const s = doc.scanner;
    box.appendChild(el("p", `${s.type} · ${s.instrument} · ${s.location}`, "meta"));
    const keys = [...new Set(doc.results.flatMap((r) => Object.keys(r)))];
    if (doc.results.length) box.appendChild(table(keys.map((k) => [k, k]), doc.results));
    else if (!doc.note) box.appendChild(el("p", "No results.", "empty"));
  }));
  main.appendChild(section("Authentication", docs["token-status.json"], (box, doc) => {
    const t = pairs(doc, ["method", "valid", "expires_at", "last_refresh", "message"]);
    box.appendChild(t);
    for (const cell of t.querySelectorAll("td")) {
      if (cell.textContent === "true") cell.className = "good";
      if (cell.textContent === "false") cell.className = "bad";
    }
  }));
}

const embedded = JSON.parse(document.getElementById("snapshot-data").textContent);
render(embedded);
// Served over HTTP the files may be newer than this page: show those.
if (location.protocol.startsWith("http")) {
  Promise.all(FILES.map((f) => fetch(f, { cache: "no-store" })
    .then((r) => (r.ok ? r.json() : embedded[f])).catch(() => embedded[f])))
    .then((found) => render(Object.fromEntries(FILES.map((f, i) => [f, found[i]]))));
}
</script>
</body>
</html>
"""
