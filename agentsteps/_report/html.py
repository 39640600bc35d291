"""
The visual run report: one self-contained HTML file with a waterfall of the run's spans.

Everything is inline (styles, script, data); the file fetches nothing (its content
security policy forbids it), so it opens from disk, from an email attachment or from a CI
artifact alike. The page reads like a trace viewer: names in a resizable left column, bars
on the run's time axis to their right, the failures listed at the top with links to their
rows, and a side panel with every figure of the row you click. Repeated siblings are
folded into one counted row, as in the text report, so the page stays small for a run of
any length. The plain-text report is included for readers without JavaScript.

Cohesive: one HTML page template (styles, script, markup) and the code that fills its
slots; the template's slot names and the JSON keys its script reads are written here, so
splitting it would scatter the page.
"""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

from .._accounting.budget import percent_used, usd_to_nanos
from .formats import format_cost, format_duration
from .node import ReportNode
from .render import render_text
from .table import breakdown_rows, summary
from .tree import RunReport

__all__ = ["render_html"]

# The colours of the legend and bars, by status (llm calls and foreign spans by kind).
STATUS_COLORS = {
    "completed": "#3a9d5d",
    "skipped": "#d99a00",
    "escalated": "#8e5cc4",
    "failed": "#d64541",
    "denied": "#a33a3a",
    "cancelled": "#8d939b",
    "abandoned": "#b5b9be",
    "llm_call": "#3b82c4",
    "stopped": "#9ec3e6",
    "other span": "#a9b4c2",
}
LEGEND = {
    "completed": "completed",
    "skipped": "skipped (budget, error boundary)",
    "escalated": "escalated",
    "failed": "failed",
    "denied": "denied by a hook",
    "cancelled": "cancelled",
    "abandoned": "abandoned",
    "llm_call": "model call",
    "stopped": "model call, its step stopped by budget",
    "other span": "other span",
}


def _budget_rows(node: ReportNode) -> list[list[str]] | None:
    """The budget as rows of (limit, allowed, used, share used); a fold shows no use."""
    budget = node.budget
    if budget is None or budget.is_unlimited:
        return None
    single = node.count == 1
    usage = node.usage
    rows: list[tuple[str, str, str, float]] = []
    if budget.max_tokens is not None:
        rows.append(("tokens", f"{budget.max_tokens:,}", f"{usage.total_tokens:,}",
                     percent_used(usage.total_tokens, budget.max_tokens)))  # fmt: skip
    if budget.max_usd is not None:
        rows.append(("cost", format_cost(budget.max_usd), format_cost(usage.cost_usd),
                     percent_used(usage.cost_nano_usd, usd_to_nanos(budget.max_usd))))  # fmt: skip
    if budget.max_llm_calls is not None:
        rows.append(("LLM calls", f"{budget.max_llm_calls:,}", f"{usage.llm_calls:,}",
                     percent_used(usage.llm_calls, budget.max_llm_calls)))  # fmt: skip
    if not single:
        return [[name, allowed, "-", "-"] for name, allowed, _, _ in rows]
    return [[name, allowed, used, f"{pct:.0f}%"] for name, allowed, used, pct in rows]


def _span_data(index: int, depth: int, node: ReportNode, t0: int) -> dict[str, Any]:
    usage = node.usage
    pct = node.budget_pct
    color_key = node.status if node.status in STATUS_COLORS else node.kind
    if color_key not in STATUS_COLORS:
        color_key = "other span"
    return {
        "row": index,
        "id": node.span_id,
        "parent": node.parent_span_id,
        "depth": depth,
        "kind": node.kind,
        "name": node.name,
        "count": node.count,
        "status": node.status,
        "color_key": color_key,
        "color": STATUS_COLORS[color_key],
        "model": node.model,
        "start_ms": (node.start_ns - t0) / 1e6,
        "duration_ms": max(0, node.end_ns - node.start_ns) / 1e6,
        "duration": format_duration(node.duration),
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "llm_calls": usage.llm_calls,
        "cost": format_cost(usage.cost_usd) if usage.llm_calls or usage.cost_nano_usd else "",
        "budget": None if node.budget is None else node.budget.to_dict(),
        "budget_rows": _budget_rows(node),
        "budget_pct": None if pct is None or pct == float("inf") else round(pct, 1),
        "error": node.error,
        "trace_id": node.trace_id,
        "attributes": {str(k): _shown(v) for k, v in node.attributes.items()},
    }


def _shown(value: object) -> object:
    """An attribute value as the page's JSON can carry it (no NaN, no nesting surprises)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    try:
        return json.dumps(value, default=str)
    except (ValueError, RecursionError):  # pragma: no cover - json.loads refuses these first
        return repr(type(value))


def _script_json(data: object) -> str:
    # Inside <script>, "</script>" or "<!--" in a span name would end or change the
    # element: escape the characters HTML cares about as JSON unicode escapes.
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _breakdown_html(report: RunReport) -> str:
    parts = []
    for title, cells in breakdown_rows(report):
        if not cells:
            continue
        head = "".join(f"<th>{c}</th>" for c in ("steps", "calls", "tokens", "cached", "cost"))
        body = "".join(
            f"<tr><td>{html.escape(row['name'])}</td>"
            + "".join(
                f"<td>{html.escape(row[c])}</td>"
                for c in ("steps", "calls", "tokens", "cached", "cost")
            )
            + "</tr>"
            for row in cells
        )
        parts.append(
            f'<table class="breakdown"><thead><tr><th>by {title}</th>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
    return "".join(parts)


def _warnings_html(report: RunReport) -> str:
    if not report.warnings:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in report.warnings)
    n = len(report.warnings)
    return (
        f'<details class="warnings"><summary>{n} warning{"" if n == 1 else "s"} about the '
        f"trace file</summary><ul>{items}</ul></details>"
    )


_SLOT = re.compile(r"\{\{([A-Z]+)\}\}")


def render_html(report: RunReport, *, title: str = "agentsteps run") -> str:
    """
    The report as a standalone HTML page with a waterfall of every span.

    Args:
        report: The run to draw.
        title: The page title (e.g. the trace file's name).
    """
    t0 = report.start_ns
    spans = [_span_data(i, depth, node, t0) for i, (depth, node) in enumerate(report.spans)]
    top = [
        {"name": n.name, "status": n.status, "model": n.model,
         "duration": format_duration(n.duration), "cost": format_cost(n.self_usage.cost_usd),
         "tokens": n.self_usage.total_tokens, "span_id": n.span_id}
        for n in report.top
    ]  # fmt: skip
    data = {
        "title": title,
        "total_ms": report.duration * 1000,
        "spans": spans,
        "top": top,
    }
    legend = "".join(
        f'<span class="key"><i class="sw-{html.escape(key).replace(" ", "-")}" '
        f'style="background:{color}"></i>{html.escape(LEGEND[key])}</span>'
        for key, color in STATUS_COLORS.items()
    )
    values = {
        "TITLE": html.escape(title),
        "SUMMARY": html.escape(summary(report).removeprefix("agentsteps report: ")),
        "BREAKDOWN": _breakdown_html(report),
        "WARNINGS": _warnings_html(report),
        "LEGEND": legend,
        "TEXT": html.escape(render_text(report, ascii_only=False)),
        "DATA": _script_json(data),
    }
    # One pass over the template: a value is never searched for placeholders again, so a
    # step named "{{DATA}}" stays that text instead of multiplying the page.
    return _SLOT.sub(lambda m: values[m.group(1)], _PAGE)


_PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
  content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{{TITLE}}</title>
<style>
  :root { --fg:#1f2328; --muted:#59636e; --line:#d8dee4; --bg:#ffffff; --hi:#eef3fa;
          --label-w:300px; }
  * { box-sizing:border-box; }
  body { margin:0; font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;
         color:var(--fg); background:var(--bg); }
  header { padding:10px 16px; border-bottom:1px solid var(--line); }
  h1 { font-size:16px; margin:0 0 4px; overflow-wrap:anywhere; }
  h2 { font-size:14px; margin:4px 0 8px; overflow-wrap:anywhere; }
  .muted { color:var(--muted); }
  .tables { display:flex; flex-wrap:wrap; gap:8px 24px; margin-top:8px; align-items:flex-start; }
  #top table.breakdown td:nth-child(-n+3), #top table.breakdown th:nth-child(-n+3) {
    text-align:left; }
  table.breakdown { border-collapse:collapse; font-size:12px; }
  table.breakdown th, table.breakdown td { padding:1px 8px 1px 0; text-align:right;
                                           white-space:nowrap; }
  table.breakdown th:first-child, table.breakdown td:first-child { text-align:left; }
  table.breakdown th { color:var(--muted); font-weight:600; }
  .legend { margin-top:8px; font-size:12px; }
  .key { margin-right:12px; white-space:nowrap; display:inline-block; }
  .key i { display:inline-block; width:10px; height:10px; border-radius:2px;
           margin-right:4px; vertical-align:-1px; }
  .sw-stopped, .bar.stopped { background-image:repeating-linear-gradient(135deg,
      rgba(255,255,255,.55) 0 3px, transparent 3px 6px) !important; }
  #errors { margin:8px 0 0; padding:6px 10px; border:1px solid #f1c0bf; background:#fff6f6;
            border-radius:4px; }
  #errors[hidden] { display:none; }
  #errors h2 { color:#a33a3a; margin:0 0 4px; }
  #errors ol { margin:0; padding-left:20px; }
  #errors li { margin:2px 0; overflow-wrap:anywhere; }
  #errors a { color:inherit; font-weight:600; }
  .badge { display:inline-block; padding:0 5px; border-radius:3px; color:#fff;
           font-size:11px; margin-right:4px; }
  .warnings { margin-top:6px; color:#7a4b00; }
  main { display:flex; align-items:flex-start; }
  #waterfall { flex:1; min-width:0; padding:8px 16px 16px; }
  #panel { width:340px; flex:none; border-left:1px solid var(--line); padding:8px 12px;
           position:sticky; top:0; max-height:100vh; overflow:auto; }
  .axis, .row { display:grid; grid-template-columns:var(--label-w) minmax(120px,1fr) 72px;
                align-items:center; }
  .axis { height:22px; border-bottom:1px solid var(--line); color:var(--muted);
          position:sticky; top:0; background:var(--bg); z-index:1; }
  .axis .label { position:relative; }
  #resizer { position:absolute; right:0; top:0; bottom:0; width:7px; cursor:col-resize;
             border-right:2px solid var(--line); }
  #resizer:hover { border-right-color:#3b82c4; }
  .label { overflow:hidden; text-overflow:ellipsis; white-space:nowrap; padding-right:8px;
           min-width:0; }
  .track { position:relative; height:18px; min-width:0; }
  .tick { position:absolute; top:3px; font-size:11px; transform:translateX(-50%);
          white-space:nowrap; }
  .tick:first-child { transform:none; }
  .row { height:22px; cursor:pointer; border-bottom:1px solid #f0f2f4; }
  .row:hover { background:#f6f8fa; }
  .row.selected { background:var(--hi); }
  .row.bad .name { color:#a33a3a; font-weight:600; }
  /* A bidi override in a name from the run must not reorder the text around it. */
  .name, dd, dt, #errors a, h2, td { unicode-bidi:isolate; }
  .bar { position:absolute; top:3px; height:12px; min-width:2px; border-radius:2px; }
  .bar.fold { opacity:.75; }
  .kind { font-size:10px; color:var(--muted); margin-left:4px; }
  .count { font-size:11px; color:var(--muted); margin-left:4px; }
  .cost { text-align:right; font-size:11px; color:var(--muted); white-space:nowrap; }
  dl.kv { display:grid; grid-template-columns:minmax(7em, 38%) minmax(0, 1fr);
          gap:2px 8px; margin:0; }
  dl.kv dt { color:var(--muted); overflow-wrap:break-word; min-width:0; }
  dl.kv dd { margin:0; overflow-wrap:anywhere; white-space:pre-wrap; min-width:0; }
  dl.kv dt, dl.kv dd { border-top:1px solid #f0f2f4; padding:2px 0; }
  dl.kv dd.wide { grid-column:1 / -1; border-top:none; padding-left:12px; }
  table.budget { border-collapse:collapse; font-size:12px; margin:2px 0; }
  table.budget th, table.budget td { padding:0 6px 0 0; text-align:right; white-space:nowrap;
                                     overflow-wrap:normal; }
  table.budget th { color:var(--muted); font-weight:600; }
  table.budget td:first-child, table.budget th:first-child { text-align:left; }
  .over { color:#c0392b; font-weight:700; }
  h3 { font-size:12px; margin:10px 0 4px; color:var(--muted); }
  pre { font-size:12px; overflow:auto; }
  details.text { padding:8px 16px; }
  #top { margin-top:8px; }
  #top[hidden] { display:none; }
</style>
</head>
<body>
<header>
  <h1>{{TITLE}}</h1>
  <div id="summary">{{SUMMARY}}</div>
  <div class="tables">{{BREAKDOWN}}</div>
  <section id="errors" aria-label="failures" hidden></section>
  <section id="top" aria-label="most expensive steps" hidden></section>
  {{WARNINGS}}
  <div class="legend">{{LEGEND}}</div>
</header>
<main>
  <section id="waterfall" aria-label="waterfall">
    <noscript>The waterfall needs JavaScript; the text report is below.</noscript>
  </section>
  <aside id="panel" aria-label="details"><p class="muted">Click a row for its details.</p></aside>
</main>
<details class="text"><summary>Text report</summary><pre>{{TEXT}}</pre></details>
<script type="application/json" id="agentsteps-data">{{DATA}}</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("agentsteps-data").textContent);
  var total = data.total_ms > 0 ? data.total_ms : 1;
  var root = document.getElementById("waterfall");
  var panel = document.getElementById("panel");
  var rows = [];
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function fmtMs(ms) {
    if (ms < 10) { return ms.toFixed(2) + "ms"; }
    if (ms < 1000) { return ms.toFixed(0) + "ms"; }
    return (ms / 1000).toFixed(2) + "s";
  }
  function num(n) { return Number(n).toLocaleString("en-US"); }
  function isBad(s) {
    return s.status !== null && s.status !== "completed" && s.status !== "stopped";
  }
  function label(s) { return s.count > 1 ? s.name + " \u00d7" + num(s.count) : s.name; }
  function tooltip(s) {
    var lines = [label(s) + " (" + s.kind + ")", "status: " + (s.status || "-"),
                 "time: " + s.duration];
    if (s.model) { lines.push("model: " + s.model); }
    if (s.cost) { lines.push("cost: " + s.cost); }
    if (s.error) { lines.push(s.error); }
    return lines.join("\n");
  }
  function show(i, scroll) {
    var s = data.spans[i];
    var row = rows[i];
    var prev = root.querySelector(".row.selected");
    if (prev) { prev.classList.remove("selected"); }
    row.classList.add("selected");
    if (scroll) { row.scrollIntoView({block: "center"}); }
    panel.textContent = "";
    panel.appendChild(el("h2", null, label(s)));
    var dl = el("dl", "kv");
    function add(k, v) {
      if (v === null || v === undefined || v === "") { return; }
      dl.appendChild(el("dt", null, k));
      var dd = el("dd");
      if (v instanceof Node) { dd.className = "wide"; dd.appendChild(v); }
      else { dd.textContent = typeof v === "object" ? JSON.stringify(v) : String(v); }
      dl.appendChild(dd);
    }
    add("kind", s.kind);
    if (s.count > 1) { add("spans folded", num(s.count)); }
    add("status", s.status); add("model", s.model);
    add("start", "+" + fmtMs(s.start_ms));
    add(s.count > 1 ? "time (summed)" : "duration", s.duration);
    add("input tokens", num(s.input_tokens)); add("output tokens", num(s.output_tokens));
    add("cached tokens", num(s.cache_read_tokens)); add("LLM calls", num(s.llm_calls));
    add("cost", s.cost);
    if (s.budget_rows) {
      var t = el("table", "budget");
      var head = el("tr");
      ["limit", "allowed", "used", "%"].forEach(function (h) {
        head.appendChild(el("th", null, h));
      });
      t.appendChild(head);
      s.budget_rows.forEach(function (r) {
        var tr = el("tr");
        r.forEach(function (c) { tr.appendChild(el("td", null, c)); });
        if (parseFloat(r[3]) > 100) { tr.lastChild.className = "over"; }
        t.appendChild(tr);
      });
      add("budget", t);
      if (s.count > 1 && s.budget_pct !== null) {
        add("budget used", "up to " + s.budget_pct + "% (the highest of the " +
            num(s.count) + " spans)");
      }
    }
    add("error", s.error); add("trace id", s.trace_id); add("span id", s.id);
    panel.appendChild(dl);
    var keys = Object.keys(s.attributes || {}).sort();
    if (keys.length) {
      panel.appendChild(el("h3", null, "attributes" + (s.count > 1 ? " (first span)" : "")));
      var attrs = el("dl", "kv");
      keys.forEach(function (k) {
        var v = s.attributes[k];
        // Long dotted keys break after a dot, not inside a word.
        var dt = el("dt");
        k.split(".").forEach(function (part, n, parts) {
          dt.appendChild(document.createTextNode(part + (n < parts.length - 1 ? "." : "")));
          if (n < parts.length - 1) { dt.appendChild(document.createElement("wbr")); }
        });
        attrs.appendChild(dt);
        attrs.appendChild(el("dd", null, typeof v === "object" ? JSON.stringify(v) : v));
      });
      panel.appendChild(attrs);
    }
  }
  // The axis, with a handle to resize the names' column.
  var axis = el("div", "axis");
  var axisLabel = el("div", "label", num(data.spans.length) + " rows");
  var resizer = el("div");
  resizer.id = "resizer";
  resizer.title = "drag to resize the names' column";
  axisLabel.appendChild(resizer);
  axis.appendChild(axisLabel);
  var axisTrack = el("div", "track");
  for (var q = 0; q <= 4; q++) {
    var tick = el("span", "tick", fmtMs(total * q / 4));
    tick.style.left = (q * 25) + "%";
    if (q === 4) { tick.style.transform = "translateX(-100%)"; }
    axisTrack.appendChild(tick);
  }
  axis.appendChild(axisTrack);
  axis.appendChild(el("div", "cost", "cost"));
  root.appendChild(axis);
  resizer.addEventListener("pointerdown", function (ev) {
    ev.preventDefault();
    var startX = ev.clientX;
    var startW = axisLabel.getBoundingClientRect().width;
    function move(e) {
      var w = Math.max(120, Math.min(root.clientWidth - 200, startW + e.clientX - startX));
      root.style.setProperty("--label-w", w + "px");
    }
    function up() {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
    }
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  });
  var fragment = document.createDocumentFragment();
  data.spans.forEach(function (s, i) {
    var row = el("div", "row" + (isBad(s) ? " bad" : ""));
    row.id = "row-" + i;
    row.setAttribute("data-span-id", s.id || "");
    row.title = tooltip(s);
    var lab = el("div", "label");
    lab.style.paddingLeft = (s.depth * 14) + "px";
    lab.appendChild(el("span", "name", s.name));
    if (s.count > 1) { lab.appendChild(el("span", "count", "\u00d7" + num(s.count))); }
    if (s.kind !== "step") { lab.appendChild(el("span", "kind", s.kind)); }
    var track = el("div", "track");
    var bar = el("div", "bar" + (s.count > 1 ? " fold" : "") +
                 (s.status === "stopped" ? " stopped" : ""));
    bar.setAttribute("data-status", s.status || s.kind);
    bar.style.left = (100 * s.start_ms / total) + "%";
    bar.style.width = (100 * s.duration_ms / total) + "%";
    bar.style.background = s.color;
    track.appendChild(bar);
    row.appendChild(lab);
    row.appendChild(track);
    row.appendChild(el("div", "cost", s.cost));
    row.addEventListener("click", function () { show(i, false); });
    rows.push(row);
    fragment.appendChild(row);
  });
  root.appendChild(fragment);
  // Failures first, without hover: every row that did not complete, linked to its row.
  var bad = data.spans.filter(isBad);
  if (bad.length) {
    var box = document.getElementById("errors");
    box.appendChild(el("h2", null, bad.length + (bad.length === 1 ? " failure" : " failures")));
    var list = el("ol");
    bad.forEach(function (s) {
      var li = el("li");
      var badge = el("span", "badge", s.status);
      badge.style.background = s.color;
      li.appendChild(badge);
      li.appendChild(document.createTextNode(" "));
      var a = el("a", null, label(s));
      a.setAttribute("href", "#row-" + s.row);
      a.addEventListener("click", function (ev) { ev.preventDefault(); show(s.row, true); });
      li.appendChild(a);
      li.appendChild(document.createTextNode(s.kind === "step" ? "" : " (" + s.kind + ")"));
      if (s.error) { li.appendChild(document.createTextNode(": " + s.error)); }
      list.appendChild(li);
    });
    box.appendChild(list);
    box.hidden = false;
  }
  if (data.top.length) {
    var topBox = document.getElementById("top");
    topBox.appendChild(el("h2", null, "Most expensive steps (their own cost)"));
    var tt = el("table", "breakdown");
    var th = el("tr");
    ["step", "status", "model", "tokens", "cost", "time"].forEach(function (h) {
      th.appendChild(el("th", null, h));
    });
    tt.appendChild(th);
    data.top.forEach(function (t) {
      var tr = el("tr");
      [t.name, t.status, t.model || "", num(t.tokens), t.cost, t.duration].forEach(function (c) {
        tr.appendChild(el("td", null, c));
      });
      tt.appendChild(tr);
    });
    topBox.appendChild(tt);
    topBox.hidden = false;
  }
  var wanted = /^#row-(\d+)$/.exec(window.location.hash);
  if (wanted && rows[Number(wanted[1])]) { show(Number(wanted[1]), true); }
  else if (rows.length) { show(0, false); }
}());
</script>
</body>
</html>
"""
