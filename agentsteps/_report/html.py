"""
The visual run report: one self-contained HTML file with a waterfall of the run's spans.

Everything is inline (styles, script, data); the file fetches nothing, so it opens from
disk, from an email attachment or from a CI artifact alike. The script draws one bar
per span, coloured by status; hovering a bar shows its figures, clicking a row shows
every attribute in the side panel. The plain-text report is included for readers
without JavaScript.
"""

from __future__ import annotations

import html
import json
from typing import Any

from .render import format_cost, format_duration, render_text, summary
from .tree import ReportNode, RunReport

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
    "other span": "#a9b4c2",
}


def _span_data(depth: int, node: ReportNode, t0: int) -> dict[str, Any]:
    usage = node.usage
    pct = node.budget_pct
    color_key = node.status if node.status in STATUS_COLORS else node.kind
    if color_key not in STATUS_COLORS:
        color_key = "other span"
    return {
        "id": node.span_id,
        "parent": node.parent_span_id,
        "depth": depth,
        "kind": node.kind,
        "name": node.name,
        "status": node.status,
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
        "budget_pct": None if pct is None or pct == float("inf") else round(pct, 1),
        "error": node.error,
        "trace_id": node.trace_id,
        "attributes": node.attributes,
    }


def _script_json(data: object) -> str:
    # Inside <script>, "</script>" or "<!--" in a span name would end or change the
    # element: escape the characters HTML cares about as JSON unicode escapes.
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(report: RunReport, *, title: str = "agentsteps run") -> str:
    """
    The report as a standalone HTML page with a waterfall of every span.

    Args:
        report: The run to draw.
        title: The page title (e.g. the trace file's name).
    """
    t0 = report.start_ns
    spans = [_span_data(depth, node, t0) for depth, node in report.spans]
    data = {
        "title": title,
        "summary": summary(report),
        "total_ms": report.duration * 1000,
        "spans": spans,
    }
    legend = "".join(
        f'<span class="key"><i style="background:{color}"></i>{html.escape(name)}</span>'
        for name, color in STATUS_COLORS.items()
    )
    text = html.escape(render_text(report, ascii_only=False))
    total = report.total
    totals = (
        f"{total.llm_calls:,} LLM calls · {total.input_tokens:,} in / "
        f"{total.output_tokens:,} out / {total.cache_read_tokens:,} cached tokens · "
        f"{format_cost(total.cost_usd)} · {format_duration(report.duration)}"
    )
    return (
        _PAGE.replace("{{TITLE}}", html.escape(title))
        .replace("{{SUMMARY}}", html.escape(summary(report)))
        .replace("{{TOTALS}}", html.escape(totals))
        .replace("{{LEGEND}}", legend)
        .replace("{{TEXT}}", text)
        .replace("{{DATA}}", _script_json(data))
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
  content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{{TITLE}}</title>
<style>
  :root { --fg:#1f2328; --muted:#656d76; --line:#d8dee4; --bg:#ffffff; --hi:#f3f6fa; }
  * { box-sizing: border-box; }
  body { margin:0; font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;
         color:var(--fg); background:var(--bg); }
  header { padding:12px 16px; border-bottom:1px solid var(--line); }
  h1 { font-size:16px; margin:0 0 4px; }
  .muted { color:var(--muted); }
  .legend { margin-top:6px; }
  .key { margin-right:12px; white-space:nowrap; }
  .key i { display:inline-block; width:10px; height:10px; border-radius:2px;
           margin-right:4px; vertical-align:-1px; }
  main { display:flex; align-items:flex-start; }
  #waterfall { flex:1; min-width:0; padding:8px 16px; }
  #panel { width:340px; flex:none; border-left:1px solid var(--line); padding:8px 12px;
           position:sticky; top:0; max-height:100vh; overflow:auto; }
  .axis, .row { display:flex; align-items:center; }
  .axis { height:20px; border-bottom:1px solid var(--line); color:var(--muted); }
  .label { width:34%; min-width:180px; flex:none; overflow:hidden; text-overflow:ellipsis;
           white-space:nowrap; padding-right:8px; }
  .track { position:relative; flex:1; height:18px; }
  .axis .track { height:20px; }
  .tick { position:absolute; top:3px; font-size:11px; transform:translateX(-50%); }
  .row { height:22px; cursor:pointer; border-bottom:1px solid #f0f2f4; }
  .row:hover, .row.selected { background:var(--hi); }
  .bar { position:absolute; top:3px; height:12px; min-width:2px; border-radius:2px; }
  .kind { font-size:10px; color:var(--muted); margin-left:4px; }
  .figs { font-size:11px; color:var(--muted); margin-left:6px; }
  table.kv { border-collapse:collapse; width:100%; }
  table.kv td { border-top:1px solid #f0f2f4; padding:2px 4px; vertical-align:top;
                word-break:break-all; }
  table.kv td:first-child { color:var(--muted); white-space:nowrap; word-break:normal; }
  pre { font-size:12px; overflow:auto; }
  details { padding:8px 16px; }
</style>
</head>
<body>
<header>
  <h1>{{TITLE}}</h1>
  <div>{{SUMMARY}}</div>
  <div class="muted">{{TOTALS}}</div>
  <div class="legend">{{LEGEND}}</div>
</header>
<main>
  <section id="waterfall" aria-label="waterfall">
    <noscript>The waterfall needs JavaScript; the text report is below.</noscript>
  </section>
  <aside id="panel"><p class="muted">Click a row for its details.</p></aside>
</main>
<details><summary>Text report</summary><pre>{{TEXT}}</pre></details>
<script type="application/json" id="agentsteps-data">{{DATA}}</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("agentsteps-data").textContent);
  var total = data.total_ms > 0 ? data.total_ms : 1;
  var root = document.getElementById("waterfall");
  var panel = document.getElementById("panel");
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
  function figures(s) {
    var parts = [];
    if (s.llm_calls) { parts.push(s.llm_calls + (s.llm_calls === 1 ? " call" : " calls")); }
    if (s.input_tokens || s.output_tokens) {
      parts.push(s.input_tokens + " in / " + s.output_tokens + " out tok");
    }
    if (s.cost) { parts.push(s.cost); }
    if (s.budget_pct !== null) { parts.push(s.budget_pct + "% of budget"); }
    return parts.join(" · ");
  }
  function tooltip(s) {
    var lines = [s.name + " (" + s.kind + ")", "status: " + (s.status || "-"),
                 "time: " + s.duration];
    if (s.model) { lines.push("model: " + s.model); }
    var f = figures(s);
    if (f) { lines.push(f); }
    if (s.budget) {
      var b = [];
      for (var k in s.budget) { if (s.budget[k] !== null) { b.push(k + "=" + s.budget[k]); } }
      lines.push("budget: " + b.join(", "));
    }
    if (s.error) { lines.push(s.error); }
    return lines.join("\\n");
  }
  function show(s, row) {
    var prev = root.querySelector(".row.selected");
    if (prev) { prev.classList.remove("selected"); }
    row.classList.add("selected");
    panel.textContent = "";
    panel.appendChild(el("h2", null, s.name));
    var t = el("table", "kv");
    function add(k, v) {
      if (v === null || v === undefined || v === "") { return; }
      var tr = el("tr");
      tr.appendChild(el("td", null, k));
      tr.appendChild(el("td", null, typeof v === "object" ? JSON.stringify(v) : v));
      t.appendChild(tr);
    }
    add("kind", s.kind); add("status", s.status); add("model", s.model);
    add("start", "+" + fmtMs(s.start_ms)); add("duration", s.duration);
    add("input tokens", s.input_tokens); add("output tokens", s.output_tokens);
    add("cached tokens", s.cache_read_tokens); add("LLM calls", s.llm_calls);
    add("cost", s.cost); add("budget", s.budget);
    add("budget used", s.budget_pct === null ? null : s.budget_pct + "%");
    add("error", s.error); add("trace id", s.trace_id); add("span id", s.id);
    var keys = Object.keys(s.attributes).sort();
    for (var i = 0; i < keys.length; i++) { add(keys[i], s.attributes[keys[i]]); }
    panel.appendChild(t);
  }
  var axis = el("div", "axis");
  axis.appendChild(el("div", "label", data.spans.length + " spans"));
  var axisTrack = el("div", "track");
  for (var q = 0; q <= 4; q++) {
    var tick = el("span", "tick", fmtMs(total * q / 4));
    tick.style.left = (q * 25) + "%";
    axisTrack.appendChild(tick);
  }
  axis.appendChild(axisTrack);
  root.appendChild(axis);
  var first = null;
  data.spans.forEach(function (s) {
    var row = el("div", "row");
    row.setAttribute("data-span-id", s.id || "");
    var label = el("div", "label");
    label.style.paddingLeft = (s.depth * 14) + "px";
    label.appendChild(el("span", null, s.name));
    if (s.kind !== "step") { label.appendChild(el("span", "kind", s.kind)); }
    var f = figures(s);
    if (f) { label.appendChild(el("span", "figs", f)); }
    var track = el("div", "track");
    var bar = el("div", "bar");
    bar.setAttribute("data-status", s.status || s.kind);
    bar.style.left = (100 * s.start_ms / total) + "%";
    bar.style.width = (100 * s.duration_ms / total) + "%";
    bar.style.background = s.color;
    bar.title = tooltip(s);
    row.title = bar.title;
    track.appendChild(bar);
    row.appendChild(label);
    row.appendChild(track);
    row.addEventListener("click", function () { show(s, row); });
    root.appendChild(row);
    if (first === null) { first = function () { show(s, row); }; }
  });
  if (first !== null) { first(); }
}());
</script>
</body>
</html>
"""
