/// The web console's page: HTML, CSS and plain JavaScript in one document, with nothing loaded
/// from elsewhere (it works offline). It polls the JSON under `/console/api/` and draws its
/// charts as SVG itself.
enum ConsolePage {
    static let html = ##"""
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>MiniZK console</title>
<link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { --fg:#1d2330; --muted:#667085; --line:#d0d5dd; --bg:#f6f7f9; --card:#fff; --accent:#2f6feb; --leader:#0e7c3a; --bad:#b42318; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; align-items:baseline; gap:16px; padding:10px 18px; background:#101828; color:#fff; }
  header h1 { font-size:18px; margin:0; }
  header .status { color:#98a2b3; font-size:12px; }
  main { display:grid; grid-template-columns: 1fr 1fr; gap:14px; padding:14px 18px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 14px; min-width:0; }
  section.wide { grid-column: 1 / span 2; }
  h2 { font-size:15px; margin:2px 0 8px; }
  table { border-collapse:collapse; width:100%; font-size:13px; }
  th, td { text-align:left; padding:3px 8px; border-bottom:1px solid #eaecf0; white-space:nowrap; }
  th { color:var(--muted); font-weight:600; }
  tr.leader td { background:#ecfdf3; }
  tr.down td { color:var(--bad); }
  .role { font-weight:600; }
  .role.leader { color:var(--leader); }
  .muted { color:var(--muted); }
  .charts { display:grid; grid-template-columns: repeat(3, 1fr); gap:10px; }
  .chart h3 { font-size:13px; margin:0 0 4px; }
  .chart svg { width:100%; height:170px; background:#fcfcfd; border:1px solid #eaecf0; border-radius:4px; }
  .legend { font-size:12px; color:var(--muted); }
  .legend span { margin-right:10px; }
  .legend i { display:inline-block; width:10px; height:3px; margin-right:4px; vertical-align:middle; }
  #sessions td:nth-child(n+5) { white-space:normal; word-break:break-all; }
  #events { list-style:none; margin:0; padding:0; max-height:220px; overflow:auto; font-size:13px; }
  #events li { padding:3px 0; border-bottom:1px solid #eaecf0; }
  #events li.leader b { color:var(--leader); }
  #events li.no-leader b, #events li.member-down b { color:var(--bad); }
  .tree { display:grid; grid-template-columns: 260px 1fr; gap:14px; }
  .crumbs a, .children a { color:var(--accent); text-decoration:none; cursor:pointer; }
  .children { list-style:none; margin:0; padding:0; max-height:330px; overflow:auto; font-family:ui-monospace, "DejaVu Sans Mono", monospace; font-size:13px; }
  .children li { padding:2px 0; }
  .children .count { color:var(--muted); font-size:11px; }
  .tabs button { border:1px solid var(--line); background:#fff; padding:2px 10px; cursor:pointer; border-radius:4px; }
  .tabs button.on { background:var(--accent); color:#fff; border-color:var(--accent); }
  pre { background:#f2f4f7; padding:8px; border-radius:4px; max-height:240px; overflow:auto; margin:6px 0; font-size:12px; }
  .kv { display:grid; grid-template-columns: repeat(4, auto 1fr); gap:2px 10px; font-size:12px; }
  .kv b { color:var(--muted); font-weight:600; }
  select { font:inherit; }
  .pager button { font-size:12px; }
</style>
</head>
<body>
<header>
  <h1>MiniZK console</h1>
  <span>leader: <b id="leader">?</b></span>
  <span class="status" id="status">connecting…</span>
</header>
<main>
  <section class="wide">
    <h2>Ensemble</h2>
    <table id="members">
      <thead><tr><th>id</th><th>address</th><th>role</th><th>serving</th><th>epoch</th><th>last zxid</th><th>lag (txns)</th>
        <th>znodes</th><th>sessions</th><th>connections</th><th>watches</th><th>outstanding</th><th>followers</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section class="wide">
    <h2>Activity <span class="muted" style="font-weight:normal;font-size:12px">(last 2 minutes, per member)</span></h2>
    <div class="charts">
      <div class="chart"><h3>requests / s</h3><svg id="chart-rate" viewBox="0 0 400 170" preserveAspectRatio="none"></svg></div>
      <div class="chart"><h3>latency, ms (update solid, read dashed)</h3><svg id="chart-latency" viewBox="0 0 400 170" preserveAspectRatio="none"></svg></div>
      <div class="chart"><h3>fsync time, ms</h3><svg id="chart-fsync" viewBox="0 0 400 170" preserveAspectRatio="none"></svg></div>
    </div>
    <div class="legend" id="legend"></div>
  </section>
  <section class="wide">
    <h2>Tree <span class="muted" style="font-weight:normal;font-size:12px">read from member <select id="tree-member"><option value="">leader</option></select></span></h2>
    <div class="crumbs" id="crumbs"></div>
    <div class="tree">
      <div>
        <ul class="children" id="children"></ul>
        <div class="pager"><button id="prev">◀</button> <span id="page" class="muted"></span> <button id="next">▶</button></div>
      </div>
      <div id="node">
        <div class="tabs"><button data-view="text" class="on">text</button> <button data-view="json">JSON</button> <button data-view="hex">hex</button>
          <span class="muted" id="data-size"></span></div>
        <pre id="data-view"></pre>
        <h3 style="font-size:13px;margin:8px 0 4px">Stat</h3>
        <div class="kv" id="stat"></div>
        <h3 style="font-size:13px;margin:8px 0 4px">ACL</h3>
        <table id="acl"><thead><tr><th>scheme</th><th>id</th><th>perms</th></tr></thead><tbody></tbody></table>
      </div>
    </div>
  </section>
  <section>
    <h2>Sessions</h2>
    <table id="sessions">
      <thead><tr><th>session</th><th>timeout</th><th>member</th><th>client</th><th>ephemerals</th><th>watches</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Leader changes and events</h2>
    <ul id="events"></ul>
  </section>
</main>
<script>
"use strict";
const COLORS = ["#2f6feb", "#e8590c", "#0e7c3a", "#9c36b5", "#c92a2a", "#1098ad", "#5c940d"];
const WINDOW_MS = 120000;
const state = { path: "/", offset: 0, limit: 100, view: "text", node: null, samples: [], lastT: 0, members: [] };

function $(id) { return document.getElementById(id); }
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const kid of kids) e.append(kid instanceof Node ? kid : document.createTextNode(kid == null ? "" : String(kid)));
  return e;
}
function color(id) { return COLORS[(Number(id) - 1) % COLORS.length]; }
async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function clock(t) { return new Date(t).toLocaleTimeString(); }

// ---- ensemble ----
async function pollEnsemble() {
  const e = await getJSON("/console/api/ensemble");
  state.members = e.members;
  $("leader").textContent = e.leader == null ? "none" : "member " + e.leader;
  $("leader").dataset.leader = e.leader == null ? "" : e.leader;
  const body = $("members").tBodies[0];
  body.replaceChildren(...e.members.map(m => {
    const row = el("tr", { "class": "member" + (m.mode === "leader" ? " leader" : "") + (m.running ? "" : " down"),
                           "data-id": m.id, "data-mode": m.mode },
      el("td", {}, m.id + (e.self === m.id ? " (this)" : "")), el("td", {}, m.address),
      el("td", { "class": "role " + m.mode }, m.mode), el("td", {}, m.running ? (m.serving ? "yes" : "no") : "—"),
      el("td", {}, m.epoch ?? "—"), el("td", {}, m.lastZxid ?? "—"),
      el("td", {}, m.lagTransactions == null ? "—" : m.lagTransactions),
      el("td", {}, m.nodeCount ?? "—"), el("td", {}, m.sessions ?? "—"), el("td", {}, m.connections ?? "—"),
      el("td", {}, m.watches ?? "—"), el("td", {}, m.outstandingRequests ?? "—"),
      el("td", {}, m.mode === "leader" ? m.syncedFollowers + "/" + m.followers : ""));
    return row;
  }));
  const select = $("tree-member");
  const wanted = ["", ...e.members.map(m => String(m.id))];
  const have = Array.from(select.options).map(o => o.value);
  if (wanted.join(",") !== have.join(",")) {
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "" }, "leader"), ...e.members.map(m => el("option", { value: m.id }, "member " + m.id)));
    select.value = chosen;
  }
  $("legend").replaceChildren(...e.members.map(m => el("span", {}, el("i", { style: "background:" + color(m.id) }), "member " + m.id)));
}

// ---- events ----
async function pollEvents() {
  const e = await getJSON("/console/api/events");
  $("events").replaceChildren(...e.events.slice().reverse().map(ev =>
    el("li", { "class": "event " + ev.kind, "data-kind": ev.kind, "data-member": ev.member ?? "", "data-previous": ev.previous ?? "" },
      el("span", { "class": "muted" }, clock(ev.t) + " "), el("b", {}, ev.text))));
}

// ---- charts ----
async function pollSeries() {
  const s = await getJSON("/console/api/series?since=" + state.lastT);
  for (const sample of s.samples) { state.samples.push(sample); state.lastT = Math.max(state.lastT, sample.t); }
  const cutoff = state.lastT - WINDOW_MS;
  state.samples = state.samples.filter(x => x.t >= cutoff);
  drawChart($("chart-rate"), lines("requestsPerSecond"), "/s");
  drawChart($("chart-latency"), lines("updateLatencyMs").concat(lines("readLatencyMs", true)), "ms");
  drawChart($("chart-fsync"), lines("fsyncMs"), "ms");
}
function lines(key, dashed) {
  const byMember = new Map();
  for (const sample of state.samples) for (const m of sample.members) {
    if (!byMember.has(m.id)) byMember.set(m.id, []);
    byMember.get(m.id).push([sample.t, m[key]]);
  }
  return Array.from(byMember, ([id, points]) => ({ id, points, dashed: !!dashed }));
}
function drawChart(svg, series, unit) {
  const W = 400, H = 170, L = 40, R = 6, T = 8, B = 18;
  const NS = "http://www.w3.org/2000/svg";
  // The last two minutes, or since the first sample when there is less (at least 20 s).
  const now = state.lastT || Date.now();
  const first = state.samples.length ? state.samples[0].t : now;
  const span = Math.max(20000, Math.min(WINDOW_MS, now - first)), t0 = now - span;
  let max = 0;
  for (const s of series) for (const [, v] of s.points) if (v != null && v > max) max = v;
  max = max <= 0 ? 1 : niceCeil(max * 1.1);
  const x = t => L + (t - t0) / span * (W - L - R), y = v => T + (1 - v / max) * (H - T - B);
  const kids = [];
  const mk = (tag, attrs, text) => { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text != null) e.textContent = text; return e; };
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4, yy = y(v);
    kids.push(mk("line", { x1: L, x2: W - R, y1: yy, y2: yy, stroke: "#eaecf0" }));
    kids.push(mk("text", { x: L - 4, y: yy + 4, "text-anchor": "end", "font-size": 10, fill: "#667085" }, fmt(v)));
  }
  kids.push(mk("text", { x: L, y: H - 4, "font-size": 10, fill: "#667085" }, "-" + Math.round(span / 1000) + " s"));
  kids.push(mk("text", { x: W - R, y: H - 4, "font-size": 10, fill: "#667085", "text-anchor": "end" }, "now (" + unit + ")"));
  for (const s of series) {
    let d = "", pen = false;
    for (const [t, v] of s.points) {
      if (v == null || t < t0) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(t).toFixed(1) + "," + y(v).toFixed(1);
      pen = true;
    }
    if (d) kids.push(mk("path", { d, fill: "none", stroke: color(s.id), "stroke-width": 1.6, "stroke-dasharray": s.dashed ? "4 3" : "none", "data-member": s.id }));
  }
  svg.replaceChildren(...kids);
}
function niceCeil(v) { const p = Math.pow(10, Math.floor(Math.log10(v))); for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p; return 10 * p; }
function fmt(v) { return v === 0 ? "0" : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : String(+v.toPrecision(2)); }

// ---- tree ----
function decode(b64) { const s = atob(b64); const bytes = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i); return bytes; }
function hexDump(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.slice(i, i + 16);
    const hex = Array.from(row, b => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, b => b >= 32 && b < 127 ? String.fromCharCode(b) : ".").join("");
    out += i.toString(16).padStart(8, "0") + "  " + hex.padEnd(48) + "  " + ascii + "\n";
  }
  return out || "(no data)";
}
function renderData() {
  const n = state.node;
  const view = $("data-view");
  if (!n || !n.found) { view.textContent = n ? "no such znode: " + n.path : ""; return; }
  const bytes = decode(n.dataBase64);
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  if (!n.hasData) view.textContent = "null";
  else if (state.view === "hex") view.textContent = hexDump(bytes);
  else if (state.view === "json") {
    try { view.textContent = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { view.textContent = "(not JSON: " + e.message + ")\n" + text; }
  } else view.textContent = text;
  $("data-size").textContent = n.stat.dataLength + " bytes" + (n.dataTruncated ? " (first 64 KiB shown)" : "");
}
function childPath(name) { return state.path === "/" ? "/" + name : state.path + "/" + name; }
function go(path) { state.path = path; state.offset = 0; location.hash = "#" + path; pollTree(); }
async function pollTree() {
  const member = $("tree-member").value;
  const url = "/console/api/tree?path=" + encodeURIComponent(state.path) + "&offset=" + state.offset + "&limit=" + state.limit + (member ? "&member=" + member : "");
  const n = await getJSON(url);
  if (n.path !== state.path) return;
  state.node = n;
  const parts = state.path.split("/").filter(Boolean);
  const crumbs = [el("a", { onclick: () => go("/") }, "/")];
  parts.forEach((p, i) => { const target = "/" + parts.slice(0, i + 1).join("/"); crumbs.push(el("a", { onclick: () => go(target) }, p), " / "); });
  crumbs.push(el("span", { "class": "muted" }, "  (member " + n.member + ", zxid " + n.treeZxid + ")"));
  $("crumbs").replaceChildren(...crumbs);
  if (!n.found) { $("children").replaceChildren(); $("stat").replaceChildren(); $("acl").tBodies[0].replaceChildren(); $("page").textContent = ""; renderData(); return; }
  $("children").replaceChildren(...n.children.map(c => el("li", { "data-path": childPath(c.name) },
    el("a", { onclick: () => go(childPath(c.name)) }, c.name), " ",
    el("span", { "class": "count" }, (c.numChildren ? c.numChildren + " children " : "") + c.dataLength + " B" + (c.ephemeral ? " ephemeral" : "")))));
  const last = Math.min(n.offset + n.limit, n.totalChildren);
  $("page").textContent = n.totalChildren ? (n.offset + 1) + "–" + last + " of " + n.totalChildren : "no children";
  $("prev").disabled = n.offset === 0; $("next").disabled = last >= n.totalChildren;
  $("stat").replaceChildren(...Object.entries(n.stat).flatMap(([k, v]) => [el("b", {}, k), el("span", {}, k.endsWith("time") ? v + " (" + new Date(v).toISOString() + ")" : v)]));
  $("acl").tBodies[0].replaceChildren(...n.acl.map(a => el("tr", {}, el("td", {}, a.scheme), el("td", {}, a.id), el("td", {}, a.perms))));
  renderData();
}

// ---- sessions ----
async function pollSessions() {
  const s = await getJSON("/console/api/sessions");
  $("sessions").tBodies[0].replaceChildren(...s.sessions.map(x => el("tr", { "data-session": x.id },
    el("td", {}, x.id), el("td", {}, x.timeoutMs + " ms"), el("td", {}, x.member ?? "—"), el("td", {}, x.address ?? "—"),
    el("td", {}, x.ephemerals.join(", ")), el("td", {}, x.watches.join(", ")))));
}

// ---- loop ----
async function safely(name, f) {
  try { await f(); return null; } catch (e) { return name + ": " + e.message; }
}
let tick = 0;
async function loop() {
  const errors = (await Promise.all([safely("ensemble", pollEnsemble), safely("events", pollEvents), safely("series", pollSeries),
    tick % 2 === 0 ? safely("tree", pollTree) : null, tick % 2 === 0 ? safely("sessions", pollSessions) : null])).filter(Boolean);
  tick++;
  $("status").textContent = (errors.length ? "error: " + errors.join("; ") + " — " : "") + "updated " + new Date().toLocaleTimeString();
  document.body.dataset.polls = tick;
  setTimeout(loop, 1000);
}
document.querySelectorAll(".tabs button").forEach(b => b.addEventListener("click", () => {
  state.view = b.dataset.view;
  document.querySelectorAll(".tabs button").forEach(o => o.classList.toggle("on", o === b));
  renderData();
}));
$("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); pollTree(); });
$("next").addEventListener("click", () => { state.offset += state.limit; pollTree(); });
$("tree-member").addEventListener("change", () => pollTree());
window.addEventListener("hashchange", () => { const p = decodeURIComponent(location.hash.slice(1)) || "/"; if (p !== state.path) { state.path = p; state.offset = 0; pollTree(); } });
if (location.hash.length > 1) state.path = decodeURIComponent(location.hash.slice(1));
loop();
</script>
</body>
</html>
"""##
}
