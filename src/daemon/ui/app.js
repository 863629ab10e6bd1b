// The execution browser of durable-exporter. Plain JavaScript, no dependencies: everything it
// reads comes from the listener that served it (relative URLs; the CSP forbids anything else).
// Text from the daemon is only ever set with textContent, never parsed as HTML.
"use strict";

const REFRESH_MS = 2000;
const MAX_ROWS = 500;
const SVG_NS = "http://www.w3.org/2000/svg";
const STATUSES = ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED", "PENDING"];

const $ = (sel, root = document) => root.querySelector(sel);
let uiConfig = { TraceUrlTemplate: null, DashboardUrl: null, IncludePayloads: false };
let executions = [];
let lastHeard = 0;
let busy = false;

// ---- small helpers -----------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, String(v));
  }
  return e;
}

async function getJson(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  lastHeard = Date.now();
  return body;
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "";
  const neg = ms < 0; ms = Math.abs(ms);
  let s;
  if (ms < 1000) s = `${Math.round(ms)}ms`;
  else if (ms < 60e3) s = `${(ms / 1000).toFixed(ms < 10e3 ? 2 : 1)}s`;
  else if (ms < 3600e3) s = `${Math.floor(ms / 60e3)}m ${Math.round((ms % 60e3) / 1000)}s`;
  else if (ms < 86400e3) s = `${Math.floor(ms / 3600e3)}h ${Math.round((ms % 3600e3) / 60e3)}m`;
  else s = `${Math.floor(ms / 86400e3)}d ${Math.round((ms % 86400e3) / 3600e3)}h`;
  return neg ? `-${s}` : s;
}

function fmtTime(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return d.toDateString() === today.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

const parseTs = (s) => (s ? Date.parse(s) : null);
// OTLP/JSON times are nanoseconds as strings: milliseconds, exact to the microsecond.
const nanosToMs = (s) => (s ? Number(BigInt(s) / 1000n) / 1000 : null);

function shortArn(arn) {
  const parts = arn.split("/");
  return parts.length > 1 ? parts.slice(-2).join("/") : arn;
}

function badge(status) {
  return el("span", { class: `badge ${status}`, text: status });
}

function fill(template, values) {
  let out = template;
  for (const [k, v] of Object.entries(values)) out = out.split(`{${k}}`).join(encodeURIComponent(v));
  return out;
}

function outLink(href, text) {
  return el("a", { href, text, target: "_blank", rel: "noopener noreferrer" });
}

// ---- routing -----------------------------------------------------------------------------

function route() {
  const h = location.hash || "#/";
  if (h.startsWith("#/execution/")) return { view: "execution", arn: decodeURIComponent(h.slice(12)) };
  if (h.startsWith("#/aggregates")) return { view: "aggregates" };
  return { view: "list" };
}

function show() {
  const r = route();
  for (const v of ["list", "execution", "aggregates"]) $(`#view-${v}`).hidden = v !== r.view;
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === r.view || (r.view === "execution" && a.dataset.nav === "list"));
  }
  if (r.view === "execution") openExecution(r.arn);
  refresh(true);
}

// ---- the list ----------------------------------------------------------------------------

function filters() {
  const f = new FormData($("#filters"));
  return {
    q: (f.get("q") || "").trim().toLowerCase(),
    fn: f.get("function") || "",
    status: f.get("status") || "",
    since: Number(f.get("since") || 0),
  };
}

function startMs(x) { return parseTs(x.StartTimestamp); }

function matches(x, f, now) {
  if (f.fn && x.FunctionName !== f.fn) return false;
  if (f.status && x.Status !== f.status) return false;
  if (f.since) {
    const s = startMs(x);
    if (s === null || s < now - f.since * 1000) return false;
  }
  if (f.q) {
    const hay = `${x.Name || ""} ${x.DurableExecutionArn}`.toLowerCase();
    if (!hay.includes(f.q)) return false;
  }
  return true;
}

function setOptions(select, values, allLabel) {
  const current = select.value;
  const want = [""].concat(values);
  const have = [...select.options].map((o) => o.value);
  if (want.join("\n") === have.join("\n")) return;
  select.replaceChildren(...want.map((v) => el("option", { value: v, text: v || allLabel })));
  select.value = want.includes(current) ? current : "";
}

function renderCounts() {
  const f = filters();
  const by = {};
  for (const x of executions) by[x.Status] = (by[x.Status] || 0) + 1;
  const cards = [el("button", {
    type: "button", class: `count${f.status ? "" : " selected"}`, "data-status": "",
    onclick: () => setStatus(""),
  }, el("b", { text: String(executions.length) }), "tracked")];
  for (const s of STATUSES) {
    if (!by[s] && s === "PENDING") continue;
    cards.push(el("button", {
      type: "button", class: `count${f.status === s ? " selected" : ""}`, "data-status": s,
      onclick: () => setStatus(f.status === s ? "" : s),
    }, el("b", { text: String(by[s] || 0) }),
    el("span", { class: `dot ${s}` }), s.toLowerCase().replace("_", " ")));
  }
  $("#counts").replaceChildren(...cards);
}

function setStatus(s) {
  $("#filters").elements.status.value = s;
  renderList();
}

function renderList() {
  const now = Date.now();
  const f = filters();
  setOptions($("#filters").elements.function, [...new Set(executions.map((x) => x.FunctionName))].sort(), "All functions");
  renderCounts();
  const rows = executions.filter((x) => matches(x, f, now));
  // Newest first; an execution whose start is not known yet is newest of all.
  rows.sort((a, b) => (startMs(b) ?? Infinity) - (startMs(a) ?? Infinity) || a.DurableExecutionArn.localeCompare(b.DurableExecutionArn));
  const shown = rows.slice(0, MAX_ROWS);
  const tbody = $("#executions tbody");
  tbody.replaceChildren(...shown.map((x) => {
    const s = startMs(x);
    const e = parseTs(x.EndTimestamp);
    const dur = s === null ? null : (e ?? now) - s;
    const failure = x.LastFailure ? `${x.LastFailure.Operation}: ${x.LastFailure.Error}` : (x.LastError || "");
    return el("tr", { "data-arn": x.DurableExecutionArn, "data-status": x.Status, onclick: () => { location.hash = `#/execution/${encodeURIComponent(x.DurableExecutionArn)}`; } },
      el("td", { text: x.FunctionName }),
      el("td", { class: "mono", title: x.DurableExecutionArn }, el("a", { href: `#/execution/${encodeURIComponent(x.DurableExecutionArn)}`, text: x.Name || shortArn(x.DurableExecutionArn) })),
      el("td", {}, badge(x.Status)),
      el("td", { text: fmtTime(s), title: x.StartTimestamp || "" }),
      el("td", { class: "num", text: fmtDuration(dur) + (e === null && s !== null && x.Status === "RUNNING" ? " …" : "") }),
      el("td", { class: "num", text: String(x.Operations ?? "") }),
      el("td", { class: "num", text: x.Retries ? String(x.Retries) : "" }),
      el("td", { class: "err", title: failure, text: failure }));
  }));
  const note = rows.length > shown.length
    ? `Showing the newest ${shown.length} of ${rows.length} matching executions; narrow the filters to see others.`
    : `${rows.length} of ${executions.length} executions.`;
  $("#list-note").textContent = `${note} Counts and durations are what the daemon has read; the list costs no API call.`;
}

async function refreshList() {
  const body = await getJson("v1/executions");
  executions = body.Executions || [];
  renderList();
}

// ---- one execution -----------------------------------------------------------------------

const detail = { arn: null, data: null, spans: [], rows: [], view: null, selected: null, timer: null };

function openExecution(arn) {
  if (detail.arn !== arn) {
    Object.assign(detail, { arn, data: null, spans: [], rows: [], view: null, selected: null });
    $("#exec-title").textContent = arn;
    $("#exec-status").replaceChildren();
    $("#exec-meta").textContent = "Reading its history…";
    $("#exec-error").hidden = true;
    $("#timeline").replaceChildren();
    $("#operations tbody").replaceChildren();
    $("#detail").replaceChildren(el("p", { class: "note", text: "Select a bar." }));
  }
}

function attrValue(v) {
  if (!v) return "";
  if ("stringValue" in v) return v.stringValue;
  if ("intValue" in v) return String(v.intValue);
  if ("doubleValue" in v) return String(v.doubleValue);
  if ("boolValue" in v) return String(v.boolValue);
  if ("arrayValue" in v) return (v.arrayValue.values || []).map(attrValue).join(", ");
  return JSON.stringify(v);
}

function spansOf(trace) {
  const out = [];
  for (const rs of trace.resourceSpans || []) {
    for (const ss of rs.scopeSpans || []) {
      for (const s of ss.spans || []) {
        const attrs = {};
        for (const a of s.attributes || []) attrs[a.key] = attrValue(a.value);
        out.push({
          id: s.spanId, parent: s.parentSpanId || null, name: s.name, traceId: s.traceId,
          start: nanosToMs(s.startTimeUnixNano), end: nanosToMs(s.endTimeUnixNano),
          code: (s.status && s.status.code) || 0, message: (s.status && s.status.message) || "",
          attrs, events: s.events || [], links: s.links || [],
        });
      }
    }
  }
  return out;
}

// Depth-first, children by start time (as `convert --format tree` lists them).
function layout(spans) {
  const byId = new Map(spans.map((s, i) => [s.id, { s, i }]));
  const children = new Map();
  const roots = [];
  spans.forEach((s, i) => {
    if (s.parent && byId.has(s.parent)) {
      if (!children.has(s.parent)) children.set(s.parent, []);
      children.get(s.parent).push({ s, i });
    } else roots.push({ s, i });
  });
  const order = (a, b) => a.s.start - b.s.start || a.i - b.i;
  const rows = [];
  const walk = (n, depth) => {
    rows.push({ span: n.s, depth });
    for (const c of (children.get(n.s.id) || []).sort(order)) walk(c, depth + 1);
  };
  for (const r of roots.sort(order)) walk(r, 0);
  return rows;
}

function state(s) {
  const a = s.attrs;
  return a["durable.execution.status"] || a["durable.operation.status"] || a["durable.attempt.outcome"] || a["durable.invocation.status"] || "";
}

function barClass(s) {
  const a = s.attrs;
  if ("durable.suspension.after_invocation" in a) return "suspended";
  if ("durable.backoff.scheduled_seconds" in a || "durable.backoff.lateness_seconds" in a || / back-off \d+$/.test(s.name)) return "backoff";
  if (s.code === 2) return "error";
  // An invocation's status says how it left the execution (PENDING: suspended), not that it
  // still runs: only executions, operations and attempts are open by their status.
  const st = a["durable.execution.status"] || a["durable.operation.status"] || a["durable.attempt.outcome"] || "";
  if (["STARTED", "RUNNING", "PENDING", "READY"].includes(st) || a["durable.operation.unfinished"] === "true" || s.end === null) return "open";
  if (s.code === 1) return "ok";
  return "unset";
}

function renderExecution() {
  const d = detail.data;
  if (!d) return;
  const info = executions.find((x) => x.DurableExecutionArn === detail.arn);
  $("#exec-title").textContent = (info && info.Name) || shortArn(detail.arn);
  $("#exec-title").title = detail.arn;
  $("#exec-status").replaceWith(Object.assign(badge(d.Status), { id: "exec-status" }));
  const s = parseTs(d.StartTimestamp);
  const e = parseTs(d.EndTimestamp);
  const bits = [];
  if (info) bits.push(info.FunctionName + (info.Qualifier && info.Qualifier !== "$LATEST" ? `:${info.Qualifier}` : ""));
  if (s) bits.push(`started ${fmtTime(s)}`);
  if (s) bits.push(e ? `took ${fmtDuration(e - s)}` : `running for ${fmtDuration(Date.now() - s)}`);
  bits.push(`${detail.spans.length} spans`, `${d.Events} events read`);
  if (!d.Complete) bits.push("more history to read…");
  $("#exec-meta").textContent = bits.join(" · ");
  const links = [];
  if (uiConfig.TraceUrlTemplate && d.TraceId) links.push(outLink(fill(uiConfig.TraceUrlTemplate, { trace_id: d.TraceId }), "Open trace ↗"));
  if (uiConfig.DashboardUrl && info) links.push(outLink(fill(uiConfig.DashboardUrl, { function: info.FunctionName }), "Dashboard ↗"));
  $("#exec-links").replaceChildren(...links);
  const failed = detail.spans.filter((x) => x.code === 2);
  const firstFailure = failed.find((x) => x.name !== "Workflow" && !/^Invocation /.test(x.name)) || failed[0];
  const box = $("#exec-error");
  box.hidden = !firstFailure;
  if (firstFailure) box.textContent = `${firstFailure.name} failed: ${firstFailure.message || "error"}`;
  drawTimeline();
  renderOperations(d.State.Operations || []);
}

function niceStep(span, target) {
  const raw = span / target;
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

function drawTimeline() {
  const host = $("#timeline");
  const rows = detail.rows;
  if (!rows.length) {
    host.replaceChildren(el("p", { class: "note", text: "No spans yet: the execution has not started." }));
    return;
  }
  const W = Math.max(640, host.clientWidth || 900);
  const labelW = Math.min(340, Math.round(W * 0.3));
  const axisH = 26, rowH = 22, right = 14;
  const H = axisH + rows.length * rowH + 6;
  const t0 = Math.min(...detail.spans.map((s) => s.start));
  const t1 = Math.max(...detail.spans.map((s) => s.end ?? s.start), t0 + 1);
  const [v0, v1] = detail.view || [t0, t1];
  const areaW = W - labelW - right;
  const x = (t) => labelW + ((t - v0) / (v1 - v0)) * areaW;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "Timeline of the execution's spans" });
  const step = niceStep(v1 - v0, 8);
  for (let t = Math.ceil((v0 - t0) / step) * step + t0; t <= v1; t += step) {
    const px = x(t);
    root.append(svg("line", { class: "tick", x1: px, x2: px, y1: axisH - 6, y2: H }));
    root.append(svg("text", { class: "ticktext", x: px + 3, y: 14, text: `+${fmtDuration(t - t0)}` }));
  }
  rows.forEach((r, i) => {
    const s = r.span;
    const y = axisH + i * rowH;
    const g = svg("g", { class: `row${detail.selected === s.id ? " selected" : ""}` });
    g.append(svg("rect", { class: "rowbg", x: 0, y, width: W, height: rowH }));
    const label = svg("text", { class: `label${barClass(s) === "suspended" || barClass(s) === "backoff" ? " dim" : ""}`, x: 8 + r.depth * 14, y: y + 15, text: s.name });
    const maxChars = Math.max(4, Math.floor((labelW - 12 - r.depth * 14) / 6.6));
    if (s.name.length > maxChars) label.textContent = `${s.name.slice(0, maxChars - 1)}…`;
    g.append(label);
    const end = s.end ?? s.start;
    if (end >= v0 && s.start <= v1) {
      const bx0 = Math.max(labelW, x(s.start));
      const bx1 = Math.min(labelW + areaW, x(end));
      const bar = svg("rect", {
        class: `bar ${barClass(s)}${s.name === "Workflow" ? " workflow" : ""}`,
        x: bx0, y: y + 4, width: Math.max(2, bx1 - bx0), height: rowH - 8,
        "data-span-id": s.id, "data-span-name": s.name,
      });
      g.append(bar);
    }
    g.addEventListener("mousemove", (ev) => tooltip(ev, s));
    g.addEventListener("mouseleave", () => { $("#tooltip").hidden = true; });
    g.addEventListener("click", () => { if (!brush.moved) select(s.id); });
    root.append(g);
  });
  root.append(svg("line", { class: "tick", x1: labelW, x2: labelW, y1: 0, y2: H }));
  attachBrush(root, { labelW, areaW, v0, v1, H });
  host.replaceChildren(root);
}

const brush = { start: null, moved: false, rect: null };

function attachBrush(root, g) {
  const toTime = (ev) => {
    const box = root.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * root.viewBox.baseVal.width;
    return { px, t: g.v0 + ((px - g.labelW) / g.areaW) * (g.v1 - g.v0) };
  };
  root.addEventListener("mousedown", (ev) => {
    const p = toTime(ev);
    if (p.px < g.labelW) return;
    brush.start = p; brush.moved = false;
    brush.rect = svg("rect", { class: "brush", x: p.px, y: 0, width: 0, height: g.H });
    root.append(brush.rect);
  });
  root.addEventListener("mousemove", (ev) => {
    if (!brush.start) return;
    const p = toTime(ev);
    if (Math.abs(p.px - brush.start.px) > 4) brush.moved = true;
    brush.rect.setAttribute("x", Math.min(p.px, brush.start.px));
    brush.rect.setAttribute("width", Math.abs(p.px - brush.start.px));
  });
  const finish = (ev) => {
    if (!brush.start) return;
    const p = toTime(ev);
    const a = Math.min(p.t, brush.start.t), b = Math.max(p.t, brush.start.t);
    const moved = brush.moved;
    brush.start = null;
    if (moved && b - a > 0.5) { detail.view = [a, b]; drawTimeline(); }
    else if (brush.rect) brush.rect.remove();
    setTimeout(() => { brush.moved = false; }, 0);
  };
  root.addEventListener("mouseup", finish);
  root.addEventListener("mouseleave", (ev) => { if (brush.start) finish(ev); });
}

function tooltip(ev, s) {
  const t = $("#tooltip");
  const st = state(s);
  const dur = s.end !== null ? fmtDuration(s.end - s.start) : "";
  t.replaceChildren(el("b", { text: s.name }), el("br"), `${st ? st + " · " : ""}${dur}`);
  if (s.code === 2 && s.message) t.append(el("br"), s.message);
  t.hidden = false;
  t.style.left = `${Math.min(ev.clientX + 14, window.innerWidth - 440)}px`;
  t.style.top = `${ev.clientY + 14}px`;
}

function select(id) {
  detail.selected = id;
  const s = detail.spans.find((x) => x.id === id);
  if (!s) return;
  const dl = el("dl");
  const add = (k, v) => { dl.append(el("dt", { text: k }), el("dd", { text: v })); };
  add("status", `${["UNSET", "OK", "ERROR"][s.code] || s.code}${s.message ? `: ${s.message}` : ""}`);
  add("start", new Date(s.start).toISOString());
  if (s.end !== null) add("duration", fmtDuration(s.end - s.start));
  add("span id", s.id);
  if (s.parent) add("parent", s.parent);
  for (const k of Object.keys(s.attrs).sort()) add(k, s.attrs[k]);
  const parts = [el("h3", { text: s.name }), dl];
  for (const ev of s.events) {
    const a = {};
    for (const kv of ev.attributes || []) a[kv.key] = attrValue(kv.value);
    if (ev.name === "exception") {
      parts.push(el("div", { class: "exception" }, el("b", { text: a["exception.type"] || "exception" }), el("br"),
        a["exception.message"] || "", a["exception.stacktrace"] ? `\n${a["exception.stacktrace"]}` : ""));
    } else {
      parts.push(el("p", { class: "note", text: `${ev.name} at ${new Date(nanosToMs(ev.timeUnixNano)).toISOString()}` }));
    }
  }
  if (s.links.length) {
    parts.push(el("h3", { text: "Links" }));
    for (const l of s.links) {
      const target = detail.spans.find((x) => x.id === l.spanId);
      parts.push(el("p", { class: "mono" }, target
        ? el("a", { href: "#", text: target.name, onclick: (ev) => { ev.preventDefault(); select(target.id); } })
        : `${l.traceId}/${l.spanId}`));
    }
  }
  const child = s.attrs["durable.chained_invoke.execution_arn"];
  if (child && executions.some((x) => x.DurableExecutionArn === child)) {
    parts.push(el("p", {}, el("a", { href: `#/execution/${encodeURIComponent(child)}`, text: "Open the invoked execution →" })));
  }
  $("#detail").replaceChildren(...parts);
  drawTimeline();
}

function renderOperations(ops) {
  $("#operations tbody").replaceChildren(...ops.map((o) => {
    const s = o.StartTimestamp ? o.StartTimestamp * 1000 : null;
    const e = o.EndTimestamp ? o.EndTimestamp * 1000 : null;
    const details = o.StepDetails || o.WaitDetails || o.CallbackDetails || o.ContextDetails || o.ChainedInvokeDetails || o.ExecutionDetails || {};
    const err = details.Error ? `${details.Error.ErrorType || ""}${details.Error.ErrorMessage ? `: ${details.Error.ErrorMessage}` : ""}` : "";
    const rest = Object.entries(details).filter(([k]) => k !== "Error").map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
    return el("tr", { "data-operation-id": o.Id },
      el("td", { class: "mono", title: o.Id, text: o.Id.slice(0, 12) }),
      el("td", { class: "mono", title: o.ParentId || "", text: (o.ParentId || "").slice(0, 12) }),
      el("td", { text: o.Name || "" }),
      el("td", { text: `${o.Type}${o.SubType ? `/${o.SubType}` : ""}` }),
      el("td", {}, badge(o.Status)),
      el("td", { text: fmtTime(s) }),
      el("td", { class: "num", text: s ? fmtDuration((e ?? Date.now()) - s) : "" }),
      el("td", { class: err ? "err" : "", title: err || rest, text: err || rest }));
  }));
}

async function refreshExecution() {
  if (!detail.arn) return;
  // A finished execution's view is final: the daemon would answer the same bytes.
  if (detail.data && detail.data.Finished) return;
  try {
    const d = await getJson(`v1/ui/executions/${encodeURIComponent(detail.arn)}`);
    detail.data = d;
    detail.spans = spansOf(d.Trace);
    detail.rows = layout(detail.spans);
    renderExecution();
    if (detail.selected) select(detail.selected);
  } catch (e) {
    $("#exec-meta").textContent = `Cannot read it: ${e.message}`;
  }
}

// ---- aggregates --------------------------------------------------------------------------

async function refreshAggregates() {
  const f = new FormData($("#agg-filters"));
  const fn = f.get("function") || "";
  const q = new URLSearchParams({ window: f.get("window") || "1h" });
  if (fn) q.set("function", fn);
  const body = await getJson(`v1/ui/aggregates?${q}`);
  const a = body.Aggregate;
  setOptions($("#agg-filters").elements.function, body.Functions || [], "All functions");
  const total = Object.values(a.Executions).reduce((x, y) => x + y, 0);
  const card = (value, label, key) => el("div", { class: "card", "data-key": key }, el("b", { text: value }), el("span", { text: label }));
  const cards = [card(String(total), "executions ended", "total")];
  for (const [s, n] of Object.entries(a.Executions)) cards.push(card(String(n), s.toLowerCase().replace("_", " "), `status-${s}`));
  if (a.Duration) {
    for (const p of ["P50", "P90", "P99", "Max"]) cards.push(card(fmtDuration(a.Duration[p] * 1000), `duration ${p.toLowerCase()}`, `duration-${p}`));
  }
  $("#agg-cards").replaceChildren(...cards);
  $("#agg-failures tbody").replaceChildren(...(a.FailuresByOperation.length ? a.FailuresByOperation.map((r) => el("tr", {},
    el("td", { text: r.Type }), el("td", { text: r.Name }), el("td", {}, badge(r.Status)), el("td", { class: "num", text: String(r.Count) })))
    : [el("tr", {}, el("td", { colspan: 4, class: "note", text: "No failed operations in this window." }))]));
  $("#agg-retries tbody").replaceChildren(...(a.RetriesByStep.length ? a.RetriesByStep.map((r) => el("tr", {},
    el("td", { text: r.Name }), el("td", { class: "num", text: String(r.Count) })))
    : [el("tr", {}, el("td", { colspan: 2, class: "note", text: "No retries in this window." }))]));
  const links = [];
  if (uiConfig.DashboardUrl && fn) links.push(outLink(fill(uiConfig.DashboardUrl, { function: fn }), "Dashboard ↗"));
  $("#agg-links").replaceChildren(...links);
  $("#agg-note").textContent = (a.Complete ? "" : "Older records of this window were dropped for room: the counts cover only the newest ones. ")
    + "From the same fold as /metrics: over the whole run these counts equal durable_executions_finished_total, durable_operations_finished_total (not SUCCEEDED) and durable_step_retries_total.";
}

// ---- the refresh loop --------------------------------------------------------------------

async function refresh(force) {
  if (busy && !force) return;
  if (document.hidden && !force) return;
  busy = true;
  try {
    const r = route();
    await refreshList();
    if (r.view === "execution") await refreshExecution();
    if (r.view === "aggregates") await refreshAggregates();
  } catch (e) {
    $("#live").textContent = `daemon unreachable: ${e.message}`;
    $("#live").classList.add("stale");
    return;
  } finally {
    busy = false;
  }
  $("#live").classList.remove("stale");
  $("#live").textContent = `live · updated ${new Date(lastHeard).toLocaleTimeString()}`;
}

async function start() {
  try { uiConfig = await getJson("v1/ui/config"); } catch (_) { /* defaults */ }
  $("#filters").addEventListener("input", renderList);
  $("#filters").addEventListener("submit", (e) => e.preventDefault());
  $("#agg-filters").addEventListener("change", () => refresh(true));
  $("#zoom-reset").addEventListener("click", () => { detail.view = null; drawTimeline(); });
  $("#zoom-out").addEventListener("click", () => {
    if (!detail.view) return;
    const [a, b] = detail.view;
    const t0 = Math.min(...detail.spans.map((s) => s.start));
    const t1 = Math.max(...detail.spans.map((s) => s.end ?? s.start));
    const w = (b - a) * 2;
    const na = Math.max(t0, a - w / 4), nb = Math.min(t1, b + w / 4);
    detail.view = na <= t0 && nb >= t1 ? null : [na, nb];
    drawTimeline();
  });
  window.addEventListener("hashchange", show);
  window.addEventListener("resize", () => { if (route().view === "execution") drawTimeline(); });
  setInterval(() => refresh(false), REFRESH_MS);
  show();
}

document.addEventListener("DOMContentLoaded", start);
