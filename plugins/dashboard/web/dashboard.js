// The tradepipe dashboard: one page, two sources of data.
//
// "live": served by `tradepipe serve`; every panel reads the REST API with the
// bearer token the user signs in with (kept in sessionStorage, so it leaves
// with the tab). "snapshot": written by `tradepipe snapshot --html` beside the
// snapshot files; the files are embedded in the page, and re-read when the page
// is served over HTTP.
//
// Everything shown is inserted as text, never as HTML: symbols, reasons and
// broker messages come from outside.
"use strict";

const SNAPSHOT_FILES = [
  "portfolio.json", "market-data.json", "scanner-results.json", "token-status.json",
];
const TOKEN_KEY = "tradepipe-api-token";
const REFRESH_MS = 15000;

// -- building blocks --------------------------------------------------------------

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function isNumber(value) {
  return typeof value === "number"
    || (typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value));
}

function cell(value) {
  if (value instanceof Node) {
    const td = el("td");
    td.appendChild(value);
    return td;
  }
  return el("td", value === null || value === undefined ? "" : value,
            isNumber(value) ? "num" : "");
}

// columns: [label, key or function(row)]
function table(columns, rows) {
  const t = el("table"), body = t.createTBody();
  if (columns.some(([label]) => label)) {
    const head = t.createTHead().insertRow();
    for (const [label] of columns) head.appendChild(el("th", label));
  }
  for (const row of rows) {
    const tr = body.insertRow();
    for (const [, key] of columns) {
      tr.appendChild(cell(typeof key === "function" ? key(row) : row[key]));
    }
  }
  return t;
}

// Keys whose false is a problem worth colouring.
const HEALTH = new Set(["connected", "authenticated", "valid"]);

function pairs(object, keys) {
  const shown = keys.filter((k) => k in object);
  const t = table([["", "k"], ["", "v"]],
    shown.map((k) => ({ k: k.replaceAll("_", " "), v: object[k] })));
  t.className = "pairs";
  t.querySelectorAll("tbody tr").forEach((tr, i) => {
    const value = object[shown[i]];
    if (HEALTH.has(shown[i]) && typeof value === "boolean") {
      tr.cells[1].className = value ? "good" : "bad";
    }
  });
  return t;
}

function card(id, title, wide) {
  let box = document.getElementById(id);
  if (!box) {
    box = el("section", null, wide ? "card wide" : "card");
    box.id = id;
    document.getElementById("main").appendChild(box);
  }
  box.replaceChildren(el("h2", title));
  return box;
}

function empty(box, text) {
  box.appendChild(el("p", text, "empty"));
}

// "2026-03-02T14:30:00.123+00:00" → "2026-03-02 14:30:00Z"
function short(ts) {
  if (!ts) return "";
  return String(ts).replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, "Z");
}

function when(ts) {
  const td = el("span", short(ts));
  td.className = "nowrap";
  return td;
}

// An SVG line of equity over time.
function chart(points) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 600, H = 200, L = 64, R = 8, T = 10, B = 24;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  const xs = points.map((p) => Date.parse(p.ts));
  const ys = points.map((p) => Number(p.equity));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node);
    return node;
  };
  add("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" });
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" });
  const money = (v) => v.toLocaleString(undefined, { maximumFractionDigits: 0 });
  add("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, money(y1));
  add("text", { x: L - 4, y: H - B, "text-anchor": "end" }, money(y0));
  add("text", { x: L, y: H - 6 }, short(points[0].ts).slice(0, 16));
  add("text", { x: W - R, y: H - 6, "text-anchor": "end" },
      short(points[points.length - 1].ts).slice(0, 16));
  const d = xs.map((x, i) => `${i ? "L" : "M"}${px(x).toFixed(1)},${py(ys[i]).toFixed(1)}`);
  add("path", { d: d.join(" "), class: "line" });
  if (points.length === 1) add("circle", { cx: px(xs[0]), cy: py(ys[0]), r: 3, class: "line" });
  add("title", {}, `equity from ${money(ys[0])} to ${money(ys[ys.length - 1])}`);
  return svg;
}

// -- snapshot files (both modes) --------------------------------------------------

function snapshotMeta(docs) {
  const any = SNAPSHOT_FILES.map((f) => docs[f]).find(Boolean);
  return any ? `snapshot · broker ${any.broker} · account ${any.account ?? "unknown"} · `
    + `${any.generated_at}` : "";
}

function snapshotSection(id, title, doc, build) {
  const box = card(id, title);
  if (!doc) {
    empty(box, "Not written yet.");
    return;
  }
  box.appendChild(el("p", "as of " + doc.generated_at, "meta"));
  if (doc.note) box.appendChild(el("p", doc.note, "note"));
  build(box, doc);
}

function positionsTable(rows) {
  return table([["symbol", "symbol"], ["quantity", "quantity"], ["avg cost", "avg_cost"],
    ["mark", "mark_price"], ["market value", "market_value"],
    ["unrealized P&L", "unrealized_pnl"], ["realized P&L", "realized_pnl"]], rows);
}

// A run's metrics as the dashboard shows them: [key, how] (percent or ratio).
const PERFORMANCE = [["run_id", ""], ["total_return", "%"], ["annual_return", "%"],
  ["volatility", "%"], ["sharpe", "x"], ["sortino", "x"], ["max_drawdown", "%"],
  ["trades", ""], ["win_rate", "%"], ["profit_factor", "x"], ["exposure", "%"]];

function performance(m) {
  const out = {};
  for (const [key, how] of PERFORMANCE) {
    const v = m[key];
    out[key] = v === null || v === undefined ? "-"
      : how === "%" ? (v * 100).toFixed(2) + " %"
      : how === "x" ? Number(v).toFixed(2) : String(v);
  }
  return out;
}

const ACCOUNT_KEYS = ["account_id", "currency", "cash", "equity", "buying_power",
  "gross_position_value", "realized_pnl", "unrealized_pnl", "ts"];

function renderSnapshots(docs, live) {
  const demo = SNAPSHOT_FILES.map((f) => docs[f]).find((d) => d && d.demo);
  if (demo) banner("Demo data from the paper simulator: " + demo.demo_reason, "");
  if (!live) {
    snapshotSection("snap-account", "Account", docs["portfolio.json"], (box, doc) => {
      box.appendChild(pairs(doc.summary, ACCOUNT_KEYS));
    });
    snapshotSection("snap-positions", "Positions", docs["portfolio.json"], (box, doc) => {
      if (!doc.positions.length) empty(box, "No open positions.");
      else box.appendChild(positionsTable(doc.positions));
    });
  }
  snapshotSection("snap-quotes", "Quotes", docs["market-data.json"], (box, doc) => {
    if (doc.quotes.length) {
      box.appendChild(table([["symbol", "symbol"], ["bid", "bid"], ["ask", "ask"],
        ["last", "last"], ["volume", "volume"], ["time", "ts"]], doc.quotes));
    }
    if (doc.missing.length) box.appendChild(el("p", "No quote for " + doc.missing.join(", "), "note"));
  });
  snapshotSection("snap-scanner", "Scanner", docs["scanner-results.json"], (box, doc) => {
    const s = doc.scanner;
    box.appendChild(el("p", `${s.type} · ${s.instrument} · ${s.location}`, "meta"));
    const keys = [...new Set(doc.results.flatMap((r) => Object.keys(r)))];
    if (doc.results.length) box.appendChild(table(keys.map((k) => [k, k]), doc.results));
    else if (!doc.note) empty(box, "No results.");
  });
  snapshotSection("snap-auth", live ? "Snapshot authentication" : "Authentication",
    docs["token-status.json"], (box, doc) => {
      box.appendChild(pairs(doc, ["method", "valid", "expires_at", "last_refresh", "message"]));
    });
}

function banner(text, cls) {
  const node = document.getElementById("banner");
  node.hidden = !text;
  node.textContent = text || "";
  node.className = "banner" + (cls ? " " + cls : "");
}

// A message about the user's last action; it stays until the next one.
function notice(text, cls) {
  const node = document.getElementById("notice");
  node.hidden = !text;
  node.textContent = text || "";
  node.className = "notice" + (cls ? " " + cls : "");
}

function startSnapshot() {
  const embedded = JSON.parse(document.getElementById("snapshot-data").textContent) || {};
  const show = (docs) => {
    document.getElementById("meta").textContent = snapshotMeta(docs) || "No snapshot files yet.";
    renderSnapshots(docs, false);
  };
  show(embedded);
  // Served over HTTP the files may be newer than this page: show those.
  if (location.protocol.startsWith("http")) {
    Promise.all(SNAPSHOT_FILES.map((f) => fetch(f, { cache: "no-store" })
      .then((r) => (r.ok ? r.json() : embedded[f])).catch(() => embedded[f])))
      .then((found) => show(Object.fromEntries(SNAPSHOT_FILES.map((f, i) => [f, found[i]]))));
  }
}

// -- the live dashboard -----------------------------------------------------------

class Unauthorized extends Error {}

let token = null;
let paper = true;

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + token }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const answer = await fetch(path, init);
  if (answer.status === 401) throw new Unauthorized("The API refused the token.");
  const text = await answer.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!answer.ok) {
    const why = data && (data.detail || data.title);
    throw new Error(typeof why === "string" ? why : `${method} ${path}: HTTP ${answer.status}`);
  }
  return data;
}

function failed(box, error) {
  if (error instanceof Unauthorized) throw error;
  box.appendChild(el("p", error.message, "bad"));
}

async function panel(id, title, path, build, wide) {
  let data, error;
  try { data = await api("GET", path); } catch (e) { error = e; }
  const box = card(id, title, wide);
  if (error) failed(box, error);
  else build(box, data);
}

function showSession(box, s) {
  paper = s.paper !== false;
  const chips = el("p");
  chips.appendChild(el("span", s.broker, "chip"));
  chips.appendChild(el("span", paper ? "paper account" : "LIVE account", paper ? "chip" : "chip bad"));
  chips.appendChild(el("span", s.ready ? "ready" : "not ready", s.ready ? "chip good" : "chip bad"));
  box.appendChild(chips);
  box.appendChild(pairs({ ...s, api_token: "accepted" },
    ["account_id", "connected", "authenticated", "held", "message", "problem", "api_token"]));
  document.getElementById("meta").textContent =
    `${s.broker} · ${paper ? "paper" : "live"} account ${s.account_id ?? "unknown"}`;
}

function showLive(box, s) {
  if (s.liveness === "none") {
    return empty(box, "No live run. Start one with: tradepipe run-pipeline --live");
  }
  const chips = el("p");
  const good = s.liveness === "running";
  chips.appendChild(el("span", s.liveness, good ? "chip good" : "chip bad"));
  if (s.state) chips.appendChild(el("span", s.state, "chip"));
  if (s.market) {
    chips.appendChild(el("span", s.market.open ? "market open" : "market closed",
                         s.market.open ? "chip good" : "chip"));
  }
  if (s.halt && s.halt.halted) chips.appendChild(el("span", "halted", "chip bad"));
  box.appendChild(chips);
  const feed = s.feed || {}, counts = s.counts || {}, pnl = s.pnl_today || {};
  const link = feed.stalled ? "stalled" : feed.connected ? "connected" : "not connected";
  box.appendChild(pairs({
    run: s.run_id,
    summary: s.summary,
    market: s.market ? `${s.market.calendar}: ${s.market.description}` : null,
    feed: `${feed.name ?? "?"}: ${link}, lag ${feed.lag_seconds ?? "-"} s, ${feed.gap_count ?? 0} gaps`,
    activity: `${counts.bars ?? 0} bars, ${counts.decisions ?? 0} decisions, `
      + `${counts.orders ?? 0} orders (${s.open_order_count ?? 0} open), ${counts.fills ?? 0} fills`,
    pnl_today: pnl.pnl ?? null,
    equity: s.equity ?? null,
    updated: s.updated_at ? `${short(s.updated_at)} (${s.age_seconds ?? "?"} s ago)` : null,
  }, ["run", "summary", "market", "feed", "activity", "pnl_today", "equity", "updated"]));
  const bars = Object.entries(feed.last_bars || {});
  if (bars.length) {
    box.appendChild(table(
      [["symbol", 0], ["last bar", (r) => short(r[1].ts)], ["close", (r) => r[1].close],
       ["age s", (r) => r[1].age_seconds]],
      bars));
  }
}

function showHalt(state) {
  const halted = Boolean(state && state.halted);
  document.getElementById("halt").hidden = halted;
  document.getElementById("resume").hidden = !(state && state.manual);
  if (!halted) {
    banner("", "");
    return;
  }
  const parts = [];
  if (state.manual) parts.push(`halted by hand at ${short(state.manual.at)}: ${state.manual.reason}`);
  if (state.daily) parts.push("halted for the day by the daily loss limit");
  banner("Trading is halted — " + parts.join("; "), "halted");
}

function showOrders(box, rows) {
  if (!rows.length) return empty(box, "No open orders.");
  box.appendChild(table([
    ["client order id", "client_order_id"], ["symbol", "symbol"], ["side", "side"],
    ["quantity", "quantity"], ["filled", "filled_quantity"], ["type", "order_type"],
    ["limit", "limit_price"], ["stop", "stop_price"], ["status", "status"],
    ["", (row) => {
      const b = el("button", "Cancel", "danger");
      b.dataset.cid = row.client_order_id;
      b.setAttribute("aria-label", "Cancel order " + row.client_order_id);
      b.addEventListener("click", () => cancelOrder(b, row.client_order_id));
      return b;
    }],
  ], rows));
}

function showApprovals(box, rows) {
  if (!rows.length) return empty(box, "Nothing waits for approval.");
  box.appendChild(table([
    ["approval", "approval_id"],
    ["order", (r) => `${r.side} ${r.quantity} ${r.symbol}`],
    ["source", "source"], ["why", "reason"], ["until", (r) => when(r.expires_at)],
    ["", (r) => {
      const span = el("span");
      const ok = el("button", "Approve");
      ok.setAttribute("aria-label", "Approve " + r.approval_id);
      ok.addEventListener("click", () => answerApproval(ok, r.approval_id, "approve"));
      const no = el("button", "Reject", "danger");
      no.setAttribute("aria-label", "Reject " + r.approval_id);
      no.addEventListener("click", () => answerApproval(no, r.approval_id, "reject"));
      span.append(ok, " ", no);
      return span;
    }],
  ], rows));
}

async function answerApproval(button, id, decision) {
  let reason = "";
  if (decision === "reject") {
    reason = (prompt(`Why reject ${id}?`) || "").trim();
    if (!reason) return;
  } else if (!confirm(`Send ${id}? Every risk filter judges it again first, at today's prices.`)) {
    return;
  }
  button.disabled = true;
  try {
    const a = await api("POST", "/approvals/" + encodeURIComponent(id), { decision, reason });
    if (a.sent_by_live_run && (a.status === "approved" || a.status === "sending")) {
      // The live run of its session sends it, at its next look while the market is open.
      notice(`Approval ${id}: approved; the live run ${a.sent_by_live_run} sends it`, "");
    } else if (a.asked) {
      notice(`Approval ${id}: sent, and the broker asked a question that waits as approval ` +
        `${a.asked.approval_id}: ${a.asked.reason}`, "bad");
    } else {
      notice(`Approval ${id}: ${a.status}${a.note ? " (" + a.note + ")" : ""}`,
        a.status === "sent" || a.status === "rejected" ? "" : "bad");
    }
  } catch (e) {
    if (e instanceof Unauthorized) return signOut(e.message);
    notice(`Approval ${id} failed: ${e.message}`, "bad");
  }
  refresh();
}

function verdictList(verdicts) {
  const ul = el("ul", null, "verdicts");
  for (const v of verdicts) {
    const li = el("li", `${v.filter}: ${v.outcome}${v.reason ? " — " + v.reason : ""}`);
    if (v.outcome === "deny") li.className = "bad";
    ul.appendChild(li);
  }
  return ul;
}

function showActivity(activity) {
  const box = card("decisions", "Recent decisions", true);
  if (!activity.decisions.length && !activity.rejected.length) {
    empty(box, "No decisions recorded yet.");
  } else {
    box.appendChild(table([
      ["time", (d) => when(d.created_at)], ["source", "source"], ["symbol", "symbol"],
      ["action", "action"], ["confidence", "confidence"],
      ["verdicts", (d) => verdictList(d.verdicts)],
      ["order", (d) => (d.order ? `${d.order.client_order_id} ${d.order.status}` : "none")],
      ["rationale", "rationale"],
    ], activity.decisions));
  }
  if (activity.rejected.length) {
    box.appendChild(el("h2", "Refused documents"));
    box.appendChild(table([["time", (r) => when(r.ts)], ["source", "source"],
      ["error", "error"]], activity.rejected));
  }
  const fills = card("fills", "Fills", true);
  if (!activity.fills.length) empty(fills, "No fills yet.");
  else {
    fills.appendChild(table([["time", (f) => when(f.ts)], ["order", "client_order_id"],
      ["symbol", "symbol"], ["side", "side"], ["quantity", "quantity"], ["price", "price"],
      ["commission", "commission"]], activity.fills));
  }
}

function orderForm(box) {
  const form = el("form", null, "order");
  form.id = "order-form";
  const field = (label, input) => {
    const l = el("label", label);
    l.appendChild(input);
    form.appendChild(l);
    return input;
  };
  const input = (name, type, attrs) => {
    const i = el("input");
    i.name = name;
    i.type = type;
    for (const [k, v] of Object.entries(attrs || {})) i.setAttribute(k, v);
    return i;
  };
  const select = (name, options) => {
    const s = el("select");
    s.name = name;
    for (const o of options) s.appendChild(el("option", o));
    return s;
  };
  field("symbol", input("symbol", "text", { required: "", pattern: "[A-Za-z0-9.]{1,12}" }));
  field("side", select("side", ["buy", "sell"]));
  field("quantity", input("quantity", "number", { required: "", min: "0", step: "any" }));
  field("type", select("order_type", ["limit", "market", "stop", "stop_limit"]));
  field("limit price", input("limit_price", "number", { min: "0", step: "any" }));
  field("stop price", input("stop_price", "number", { min: "0", step: "any" }));
  field("time in force", select("tif", ["day", "gtc"]));
  const dry = el("label", "dry run");
  const check = input("dry_run", "checkbox");
  dry.appendChild(check);
  form.appendChild(dry);
  const submit = el("button", "Place order", "primary");
  submit.type = "submit";
  form.appendChild(submit);
  const result = el("div", null, "result");
  result.id = "order-result";
  result.setAttribute("role", "status");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    placeOrder(form, submit, result);
  });
  box.appendChild(form);
  box.appendChild(result);
}

async function placeOrder(form, submit, result) {
  const f = new FormData(form);
  const body = {
    symbol: String(f.get("symbol")).trim().toUpperCase(),
    side: f.get("side"),
    quantity: String(f.get("quantity")),
    order_type: f.get("order_type"),
    tif: f.get("tif"),
    dry_run: f.get("dry_run") === "on",
    rationale: "manual order from the dashboard",
  };
  for (const key of ["limit_price", "stop_price"]) {
    if (f.get(key)) body[key] = String(f.get(key));
  }
  const what = `${body.side} ${body.quantity} ${body.symbol} ${body.order_type}`;
  if (!paper && !body.dry_run && !confirm(`Send to the LIVE account: ${what}?`)) return;
  submit.disabled = true;
  result.replaceChildren(el("p", "Sending…", "note"));
  try {
    const outcome = await api("POST", "/orders/stock", body);
    result.replaceChildren();
    const order = outcome.order;
    const line = outcome.ok
      ? `${body.dry_run ? "Dry run: would send" : "Order"} ${order.client_order_id}: ${what} — ${order.status}`
      : `Not sent: ${what}` + (order && order.reason ? ` — ${order.reason}` : "");
    result.appendChild(el("p", line, outcome.ok ? "good" : "bad"));
    if (outcome.verdicts.length) result.appendChild(verdictList(outcome.verdicts));
  } catch (e) {
    if (e instanceof Unauthorized) return signOut(e.message);
    result.replaceChildren(el("p", e.message, "bad"));
  } finally {
    submit.disabled = false;
  }
  refresh();
}

async function cancelOrder(button, cid) {
  button.disabled = true;
  try {
    const answer = await api("DELETE", "/orders/" + encodeURIComponent(cid));
    notice(`Cancel of ${cid}: ${answer.status}`
      + (answer.final ? "" : " (not final until the broker confirms)"), "");
  } catch (e) {
    if (e instanceof Unauthorized) return signOut(e.message);
    notice(`Cancel of ${cid} failed: ${e.message}`, "bad");
  }
  refresh();
}

async function setHalt(halt) {
  if (halt && !confirm("Halt trading? Orders are refused until you resume.")) return;
  try {
    await api("POST", halt ? "/halt" : "/resume",
              halt ? { reason: "halted from the dashboard" } : undefined);
    notice(halt ? "Trading halted." : "Trading resumed.", "");
  } catch (e) {
    if (e instanceof Unauthorized) return signOut(e.message);
    notice(e.message, "bad");
  }
  refresh();
}

let refreshing = null;

async function refresh() {
  if (!token) return;
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      await panel("session", "Session", "/broker/status", showSession);
      await panel("live", "Live run", "/status", showLive);
      await panel("account", "Account", "/account", (box, a) => {
        box.appendChild(pairs(a.summary, ACCOUNT_KEYS));
      });
      await panel("equity", "Equity", "/equity?limit=500", (box, e) => {
        const points = e.points.filter((p) => isNumber(p.equity));
        if (!points.length) return empty(box, "No account snapshots in the ledger yet.");
        box.appendChild(chart(points));
        const whose = e.account ? `, account ${e.account_label} (${e.account})` : "";
        box.appendChild(el("p", `${points.length} snapshot(s), ${e.currency ?? ""}${whose}`, "meta"));
      });
      await panel("performance", "Latest run", "/report?benchmark=", (box, m) => {
        box.appendChild(pairs(performance(m), PERFORMANCE.map(([k]) => k)));
      });
      await panel("positions", "Positions", "/positions", (box, rows) => {
        if (!rows.length) empty(box, "No open positions.");
        else box.appendChild(positionsTable(rows));
      });
      await panel("approvals", "Waiting for approval", "/approvals", showApprovals, true);
      await panel("orders", "Open orders", "/orders", showOrders, true);
      if (!document.getElementById("order-form")) orderForm(card("new-order", "New stock order", true));
      const halt = await api("GET", "/halt").catch((e) => {
        if (e instanceof Unauthorized) throw e;
        return null;
      });
      showHalt(halt);
      try {
        showActivity(await api("GET", "/ledger/recent?limit=25"));
      } catch (e) {
        failed(card("decisions", "Recent decisions", true), e);
      }
      const snaps = await api("GET", "/snapshots").catch((e) => {
        if (e instanceof Unauthorized) throw e;
        return null;
      });
      if (snaps && Object.values(snaps.files).some(Boolean)) renderSnapshots(snaps.files, true);
      document.body.dataset.loaded = String(Date.now());
    } catch (e) {
      if (e instanceof Unauthorized) signOut(e.message);
      else notice(e.message, "bad");
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function signOut(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("main").replaceChildren();
  document.getElementById("controls").hidden = true;
  document.getElementById("meta").textContent = "";
  banner("", "");
  notice("", "");
  document.getElementById("signin").hidden = false;
  document.getElementById("signin-error").textContent = message || "";
  document.getElementById("token").focus();
}

function signIn(given) {
  token = given;
  sessionStorage.setItem(TOKEN_KEY, given);
  document.getElementById("signin").hidden = true;
  document.getElementById("controls").hidden = false;
  refresh();
}

function startLive() {
  // An address with #token=… signs in once; the token is then dropped from the
  // address bar and history (a fragment never reaches the server or its logs).
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    sessionStorage.setItem(TOKEN_KEY, fragment.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  document.getElementById("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    const given = document.getElementById("token").value.trim();
    document.getElementById("token").value = "";
    if (given) signIn(given);
  });
  document.getElementById("refresh").addEventListener("click", () => refresh());
  document.getElementById("halt").addEventListener("click", () => setHalt(true));
  document.getElementById("resume").addEventListener("click", () => setHalt(false));
  document.getElementById("signout").addEventListener("click", () => signOut("Signed out."));
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
  else signOut("");
  setInterval(() => { if (token && !document.hidden) refresh(); }, REFRESH_MS);
}

if (document.body.dataset.mode === "snapshot") startSnapshot();
else startLive();
