// The tapproxy report page. Everything it shows was recorded, so untrusted: recorded text
// reaches the document only as text nodes (textContent, append(string)) and attribute
// values it cannot escape from (title, numbers); never innerHTML, never a URL.
"use strict";
(async function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const ROW_H = 22;

  function el(tag, cls, ...kids) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function load(id) {
    const node = $(id);
    const text = node.textContent;
    if (node.dataset.encoding === "json") return JSON.parse(text);
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
    return JSON.parse(await new Response(stream).text());
  }

  const S = await load("tap-summary");
  const F = {};
  S.fields.forEach((name, i) => { F[name] = i; });
  const rows = S.rows, tests = S.tests, services = S.services;
  let detailsPromise = null;
  const details = () => (detailsPromise = detailsPromise || load("tap-details"));

  const state = { test: -1, service: "", status: "", query: "" };
  let visible = [];
  let hay = null;

  const ms = (v) => (v === null || v === undefined ? "-" :
    v >= 10 ? v.toFixed(0) + " ms" : v.toFixed(1) + " ms");
  // A row is an exchange, or a span an instrumented service sent (its span status set):
  // its service at both ends, its kind and name where a call has method and target.
  const isSpan = (r) => r[F.span] !== null && r[F.span] !== undefined;
  const outcomeOf = (r) => (isSpan(r) ? (r[F.span] === "unset" ? "-" : r[F.span]) :
    r[F.error] ? r[F.error] : r[F.status] === null ? "-" : String(r[F.status]));
  const edgeText = (r) => (isSpan(r) ? services[r[F.caller]] :
    services[r[F.caller]] + " → " + services[r[F.callee]]);
  const label = (i) => (isSpan(rows[i]) ? "" : "#" + rows[i][F.number] + " ") + edgeText(rows[i]) +
    " " + rows[i][F.method] + " " + rows[i][F.target];
  const SENT = "sent by the service";
  const exchangeCount = rows.filter((r) => !isSpan(r)).length;
  const rowsNoun = exchangeCount === rows.length ? " exchanges" : " rows (exchanges and spans)";

  // -- filtering -------------------------------------------------------------------------
  function statusMatches(r) {
    const s = state.status;
    if (!s) return true;
    if (s === "failed") return r[F.failed] === 1;
    if (s === "error") return r[F.error] !== null;
    return r[F.status] !== null && String(r[F.status])[0] === s;
  }
  function matches(i) {
    const r = rows[i];
    if (state.test >= 0 && r[F.test] !== state.test) return false;
    if (state.service !== "" && r[F.caller] !== +state.service && r[F.callee] !== +state.service)
      return false;
    if (!statusMatches(r)) return false;
    if (state.query) {
      if (hay === null) hay = rows.map((x) => [tests[x[F.test]].name, edgeText(x), x[F.method],
        x[F.target], outcomeOf(x)].join(" ").toLowerCase());
      if (!hay[i].includes(state.query)) return false;
    }
    return true;
  }
  function refilter() {
    visible = [];
    const seen = new Set();
    const scoped = state.test;
    state.test = -1;  // the test list counts every test's matching rows
    for (let i = 0; i < rows.length; i++) {
      if (matches(i)) { seen.add(rows[i][F.test]); if (scoped < 0 || rows[i][F.test] === scoped) visible.push(i); }
    }
    state.test = scoped;
    for (const item of $("tests").querySelectorAll("[data-test]")) {
      const t = +item.dataset.test;
      const filtering = state.query || state.service !== "" || state.status;
      item.hidden = t >= 0 && filtering && !seen.has(t) &&
        !(state.query && tests[t].name.toLowerCase().includes(state.query));
    }
    $("shown").textContent = visible.length + " of " + rows.length + rowsNoun;
    const wf = $("waterfall");
    wf.style.height = Math.max(3 * ROW_H, Math.min(window.innerHeight * 0.6, visible.length * ROW_H + 4)) + "px";
    wf.querySelector(".spacer").style.height = visible.length * ROW_H + "px";
    renderRows();
  }

  // -- the time axis shared by the waterfall, log lines and resource samples ---------------
  function scope() {
    if (state.test >= 0) {
      const t = tests[state.test];
      const pad = Math.max(1, t.end - t.start) * 0.04;  // the first and last bars in sight
      return [t.start - pad, t.end + pad];
    }
    let a = Infinity, b = -Infinity;
    for (const t of tests) { if (t.count || !t.none) { a = Math.min(a, t.start); b = Math.max(b, t.end); } }
    if (a === Infinity) { a = 0; b = 1; }
    return [a, Math.max(b, a + 1)];
  }
  const pct = (t, [a, b]) => Math.min(100, Math.max(0, (t - a) / (b - a) * 100));

  // -- waterfall (virtualised: only the rows in sight are in the document) ----------------
  function spanRowEl(i, span) {
    const r = rows[i];
    const row = el("div", "row sent" + (r[F.failed] ? " failed" : ""));
    row.dataset.row = i;
    const name = el("div", "name");
    name.style.paddingLeft = 4 + Math.min(r[F.depth], 12) * 12 + "px";
    name.append(services[r[F.caller]] + " ", el("span", "target", r[F.method] + " " + r[F.target]),
      el("span", "how how-sent", " " + SENT));
    row.title = "parent: " + (r[F.parent] >= 0 ? parentLabel(r[F.parent]) : "none in the test") +
      " (from the span's parent id)";
    const bars = el("div", "bars");
    const start = r[F.start], end = r[F.start] + r[F.duration];
    const bar = el("div", "bar sent");
    bar.style.left = pct(start, span) + "%";
    bar.style.width = Math.max(0.3, pct(end, span) - pct(start, span)) + "%";
    bars.append(bar);
    row.append(name, el("div", "status", outcomeOf(r)), bars, el("div", "dur", ms(r[F.duration])));
    return row;
  }
  const parentLabel = (p) => (isSpan(rows[p]) ? services[rows[p][F.caller]] + " " + rows[p][F.target] :
    "#" + rows[p][F.number]);
  function rowEl(i, span) {
    const r = rows[i];
    if (isSpan(r)) return spanRowEl(i, span);
    const row = el("div", "row" + (r[F.failed] ? " failed" : "") + (r[F.role] ? " role-" + r[F.role] : ""));
    row.dataset.row = i;
    const name = el("div", "name");
    name.style.paddingLeft = 4 + Math.min(r[F.depth], 12) * 12 + "px";
    name.append(el("span", "num", "#" + r[F.number] + " "), edgeText(r) + " ",
      el("span", "target", r[F.method] + " " + r[F.target]));
    const how = r[F.inference];
    const parent = r[F.parent] >= 0 ? "#" + rows[r[F.parent]][F.number] : "the test";
    row.title = "parent: " + parent + " (" + how + ")" + (r[F.role] ? "; " + r[F.role] : "");
    if (how === "ambiguous" || how === "inferred" || how === "unplaced")
      name.append(el("span", "how how-" + how, " " + how));
    const st = el("div", "status", outcomeOf(r));
    const bars = el("div", "bars");
    const start = r[F.start], end = r[F.start] + r[F.duration];
    const client = el("div", "bar client");
    client.style.left = pct(start, span) + "%";
    client.style.width = Math.max(0.3, pct(end, span) - pct(start, span)) + "%";
    bars.append(client);
    if (r[F.server_start] !== null) {
      const server = el("div", "bar server");
      server.style.left = pct(r[F.server_start], span) + "%";
      server.style.width = Math.max(0.2, pct(r[F.server_end], span) - pct(r[F.server_start], span)) + "%";
      bars.append(server);
    }
    for (const [t, fromClient, kind] of r[F.ticks]) {
      const tick = el("div", "tick " + (kind === "g" ? "grpc" : "ws") + (fromClient ? " out" : " in"));
      tick.style.left = pct(t, span) + "%";
      bars.append(tick);
    }
    const dur = el("div", "dur", ms(r[F.duration]));
    row.append(name, st, bars, dur);
    return row;
  }
  let pending = false;
  function renderRows() {
    const wf = $("waterfall");
    const from = Math.max(0, Math.floor(wf.scrollTop / ROW_H) - 10);
    const to = Math.min(visible.length, Math.ceil((wf.scrollTop + wf.clientHeight) / ROW_H) + 10);
    const layer = wf.querySelector(".rows");
    layer.style.transform = "translateY(" + from * ROW_H + "px)";
    const span = scope();
    const frag = document.createDocumentFragment();
    for (let k = from; k < to; k++) frag.append(rowEl(visible[k], span));
    layer.replaceChildren(frag);
  }
  $("waterfall").addEventListener("scroll", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; renderRows(); });
  });
  $("waterfall").addEventListener("click", (e) => {
    const row = e.target.closest("[data-row]");
    if (row) showDetail(+row.dataset.row);
  });

  // -- the tests -----------------------------------------------------------------------------
  function outcomeClass(t) {
    return t.outcome === "passed" ? "ok" : t.outcome === "failed" || t.outcome === "error" ? "bad" :
      t.failed ? "warn" : "none";
  }
  function buildTests() {
    const nav = $("tests");
    const all = el("div", "test all", el("span", "tname", "All tests"),
      el("span", "tmeta", exchangeCount + " exchanges"));
    all.dataset.test = -1;
    const frag = document.createDocumentFragment();
    frag.append(all);
    tests.forEach((t, i) => {
      const item = el("div", "test " + outcomeClass(t), el("span", "badge", t.outcome || "no outcome"),
        el("span", "tname", t.name),
        el("span", "tmeta", (t.duration !== null ? ms(t.duration) + " · " : "") + t.count +
          " calls" + (t.failed ? " · " + t.failed + " failed" : "")));
      item.dataset.test = i;
      item.title = t.name;
      frag.append(item);
    });
    nav.append(frag);
    nav.addEventListener("click", (e) => {
      const item = e.target.closest("[data-test]");
      if (item) select(+item.dataset.test);
    });
  }
  function select(t) {
    state.test = t;
    for (const item of $("tests").querySelectorAll("[data-test]"))
      item.classList.toggle("selected", +item.dataset.test === t);
    $("waterfall").scrollTop = 0;
    renderScope();
  }

  function renderScope() {
    renderHead();
    renderStory();
    renderMap();
    renderTracks();
    renderLogs();
    renderContract();
    renderEdges();
    refilter();
  }

  function renderHead() {
    const head = $("test-head");
    if (state.test < 0) {
      const failed = tests.filter((t) => t.outcome === "failed" || t.outcome === "error").length;
      head.replaceChildren(el("h2", null, "All tests"),
        el("p", null, tests.length + " tests, " + failed + " failed; " + exchangeCount + " exchanges"));
      return;
    }
    const t = tests[state.test];
    head.replaceChildren(el("h2", null, t.name),
      el("p", null, el("span", "badge " + outcomeClass(t), t.outcome || "no outcome"),
        " duration " + (t.duration !== null ? ms(t.duration) : "unknown") + " · " + t.count +
        " exchanges · " + t.failed + " failed"));
  }

  function link(i, text) {
    const a = el("button", "link", text);
    a.type = "button";
    a.addEventListener("click", () => showDetail(i));
    return a;
  }
  function storyBlock(t, full) {
    const s = t.story;
    const box = el("div", "story");
    if (s.root) {
      const root = el("div", "root", el("strong", null, "First point of failure: "),
        link(s.root.row, label(s.root.row) + " " + s.root.label));
      box.append(root, el("div", "why", "why: " + s.root.why));
    } else if (s.uncertain) {
      box.append(el("div", "root", el("strong", null, "Root uncertain: one of "),
        ...s.uncertain.rows.map((i) => link(i, label(i) + " "))),
        el("div", "why", "why: " + s.uncertain.reason));
      for (const opt of s.uncertain.settle) box.append(el("div", "settle", "to settle: " + opt));
    } else {
      box.append(el("div", "root", "No root: every failure was handled or caused nothing."));
    }
    if (!full) return box;
    if (s.consequences.length) {
      const list = el("ul", "cascade");
      for (const [i, role, reason] of s.consequences)
        list.append(el("li", "role-" + role, link(i, label(i)), " " + reason));
      box.append(el("div", "sub", "Cascade"), list);
      if (s.propagation) box.append(el("div", "prop", s.propagation));
    }
    if (s.others.length) {
      const list = el("ul", "others");
      for (const [i, role, reason] of s.others)
        list.append(el("li", "role-" + role, link(i, label(i)), " " + reason));
      box.append(el("div", "sub", "Other failures"), list);
    }
    const pre = el("pre", "lines", s.lines.join("\n"));
    box.append(el("details", null, el("summary", null, "as tapproxy why tells it"), pre));
    return box;
  }
  function renderStory() {
    const out = $("story");
    if (state.test >= 0) {
      const t = tests[state.test];
      out.replaceChildren(t.story ? storyBlock(t, true) : el("p", "quiet", "No failing call in this test."));
      return;
    }
    const failing = tests.map((t, i) => [t, i]).filter(([t]) => t.story && (t.story.root || t.story.uncertain));
    const list = el("div", "stories");
    for (const [t, i] of failing.slice(0, 50)) {
      const name = el("button", "link tlink", t.name);
      name.type = "button";
      name.addEventListener("click", () => select(i));
      list.append(el("div", "story-item", name, storyBlock(t, false)));
    }
    out.replaceChildren(failing.length ? list : el("p", "quiet", "No test has a failure to explain."));
  }

  // -- the service map -------------------------------------------------------------------
  function renderMap() {
    const t = state.test >= 0 ? tests[state.test] : null;
    const edges = t ? t.edges.map(([a, b, count, errors, p95]) => ({ a, b, count, errors, p95 })) : S.edges;
    const used = new Set();
    for (const e of edges) { used.add(e.a); used.add(e.b); }
    const rootRow = t && t.story && t.story.root ? rows[t.story.root.row] : null;
    const P = S.positions, CW = 290, RH = 74, NW = 124, NH = 34, PAD = 20;
    const cols = Math.max(1, ...P.map((p) => p[0] + 1)), nrows = Math.max(1, ...P.map((p) => p[1] + 1));
    const W = cols * CW + PAD, H = nrows * RH + PAD;
    const root = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, class: "map", role: "img" });
    root.append(svg("title", {}, "service map"));
    const defs = svg("defs", {});
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9,
      markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto" });
    marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }));
    defs.append(marker);
    root.append(defs);
    const xy = (i) => [PAD + P[i][0] * CW, PAD + P[i][1] * RH];
    for (const e of edges) {
      const [ax, ay] = xy(e.a), [bx, by] = xy(e.b);
      const x1 = ax + NW, y1 = ay + NH / 2, x2 = bx, y2 = by + NH / 2;
      const back = x2 <= x1;
      const d = back ? "M" + (ax + NW / 2) + "," + (ay + NH) + " C" + (ax + NW / 2) + "," + (ay + NH + 40) + " " +
        (bx + NW / 2) + "," + (by + NH + 40) + " " + (bx + NW / 2) + "," + (by + NH)
        : "M" + x1 + "," + y1 + " C" + (x1 + 40) + "," + y1 + " " + (x2 - 40) + "," + y2 + " " + x2 + "," + y2;
      const isRoot = rootRow && rootRow[F.caller] === e.a && rootRow[F.callee] === e.b;
      const g = svg("g", { class: "edge" + (e.errors ? " errors" : "") + (isRoot ? " root" : "") });
      g.append(svg("path", { d, "marker-end": "url(#arrow)" }));
      const rate = e.count ? Math.round(e.errors / e.count * 100) : 0;
      const mx = back ? (ax + bx + NW) / 2 : (x1 + x2) / 2, my = back ? Math.max(ay, by) + NH + 34 : (y1 + y2) / 2 - 4;
      g.append(svg("text", { x: mx, y: my, "text-anchor": "middle" },
        e.count + "× · " + rate + "% err · p95 " + ms(e.p95)));
      g.append(svg("title", {}, services[e.a] + " → " + services[e.b] + ": " + e.count + " calls, " +
        e.errors + " failed, p95 " + ms(e.p95)));
      root.append(g);
    }
    services.forEach((name, i) => {
      if (!used.has(i) && edges.length) return;
      const [x, y] = xy(i);
      const instrumented = S.instrumented.includes(i);
      const isRoot = rootRow && rootRow[F.callee] === i;
      const g = svg("g", { class: "node" + (isRoot ? " root" : "") + (instrumented ? " otel" : "") });
      g.append(svg("rect", { x, y, width: NW, height: NH, rx: 6 }));
      g.append(svg("text", { x: x + NW / 2, y: y + NH / 2 + 4, "text-anchor": "middle" },
        name.length > 20 ? name.slice(0, 19) + "…" : name));
      g.append(svg("title", {}, name + (instrumented ? " (sends spans)" : " (seen on the wire only)")));
      root.append(g);
    });
    $("map").replaceChildren(root);
  }

  // -- log lines and resource samples on the waterfall's time axis -----------------------
  function inScope(list, span) {
    return list.filter((x) => x[1] >= span[0] && x[1] <= span[1]);
  }
  // Samples come every few hundred ms: the ones just outside a short span carry the line
  // across it (drawn at its edges).
  function around(list, span) {
    const before = new Map(), after = new Map(), out = [];
    for (const x of list) {
      if (x[1] < span[0]) before.set(x[0], x);
      else if (x[1] > span[1]) { if (!after.has(x[0])) after.set(x[0], x); }
      else out.push(x);
    }
    return [...before.values(), ...out, ...after.values()].sort((p, q) => p[1] - q[1]);
  }
  function renderTracks() {
    const span = scope();
    const logs = inScope(S.logs, span), samples = around(S.samples, span);
    const by = new Map();
    for (const l of logs) { if (!by.has(l[0])) by.set(l[0], { logs: [], samples: [] }); by.get(l[0]).logs.push(l); }
    for (const s of samples) { if (!by.has(s[0])) by.set(s[0], { logs: [], samples: [] }); by.get(s[0]).samples.push(s); }
    const frag = document.createDocumentFragment();
    const axis = el("div", "track axis", el("div", "name", "time"), el("div", "status"));
    const scale = el("div", "bars");
    for (let k = 0; k <= 4; k++) {
      const mark = el("span", "mark", "+" + ms((span[1] - span[0]) * k / 4));
      mark.style.left = k * 25 + "%";
      scale.append(mark);
    }
    axis.append(scale, el("div", "dur"));
    frag.append(axis);
    for (const [i, track] of by) {
      const bars = el("div", "bars");
      for (const l of track.logs.slice(0, 2000)) {
        const tick = el("div", "logtick" + (l[2] ? " stderr" : ""));
        tick.style.left = pct(l[1], span) + "%";
        tick.title = "+" + ms(l[1] - span[0]) + " " + l[3];
        bars.append(tick);
      }
      if (track.samples.length) {
        const line = svg("svg", { class: "cpu", viewBox: "0 0 100 20", preserveAspectRatio: "none" });
        const pts = track.samples.map((s) => pct(s[1], span).toFixed(2) + "," + (20 - Math.min(100, s[2]) / 5).toFixed(2));
        line.append(svg("polyline", { points: pts.join(" ") }));
        const peak = Math.max(...track.samples.map((s) => s[2]));
        const rss = Math.max(...track.samples.map((s) => s[3]));
        line.append(svg("title", {}, "cpu peak " + peak.toFixed(0) + "%, rss peak " + (rss / 1048576).toFixed(1) + " MiB"));
        bars.append(line);
      }
      frag.append(el("div", "track", el("div", "name", services[i]),
        el("div", "status", track.logs.length + (track.logs.length === 1 ? " line" : " lines")), bars, el("div", "dur")));
    }
    $("tracks").replaceChildren(frag);
  }
  function renderLogs() {
    const span = scope();
    const logs = inScope(S.logs, span);
    if (!logs.length) { $("logs").replaceChildren(); return; }
    const list = el("div", "loglist");
    for (const l of logs.slice(0, 500))
      list.append(el("div", "logline" + (l[2] ? " stderr" : ""), el("span", "t", "+" + ms(l[1] - span[0])),
        el("span", "svc", services[l[0]]), el("span", "text", l[3])));
    const note = logs.length > 500 ? " (first 500 of " + logs.length + ")" : "";
    $("logs").replaceChildren(el("h2", null, "Service log lines" + note), list);
  }

  // -- contract mismatches -------------------------------------------------------------------
  function renderContract() {
    const out = $("contract");
    if (S.mismatches === null) { out.replaceChildren(); return; }
    const name = state.test >= 0 ? tests[state.test].name : null;
    const mine = S.mismatches.filter((m) => name === null ||
      (m.row >= 0 ? rows[m.row][F.test] === state.test : m.test === name));
    const table = el("table", "mismatches");
    table.append(el("tr", null, ...["exchange", "kind", "where", "expected", "actual", "message", "contract"]
      .map((h) => el("th", null, h))));
    for (const m of mine.slice(0, 1000)) {
      table.append(el("tr", null, el("td", null, m.row >= 0 ? link(m.row, label(m.row)) : (m.test || "")),
        el("td", null, m.kind), el("td", null, (m.side ? m.side + " " : "") + m.where),
        el("td", "expected", m.expected), el("td", "actual", m.actual),
        el("td", null, m.message), el("td", null, m.contract)));
    }
    out.replaceChildren(el("h2", null, "Contract mismatches (" + mine.length + ")"),
      mine.length ? table : el("p", "quiet", "Every checked exchange kept its contracts."));
  }

  // -- edges and their latency histograms ------------------------------------------------------
  function histogram(hist) {
    const W = 160, H = 28;
    const box = svg("svg", { class: "hist", width: W, height: H, viewBox: "0 0 " + W + " " + H });
    const top = Math.max(1, ...hist.map((b) => b[2]));
    const w = W / Math.max(1, hist.length);
    hist.forEach(([lo, hi, n], k) => {
      const h = n / top * (H - 2);
      const bar = svg("rect", { x: k * w, y: H - h, width: Math.max(1, w - 1), height: h });
      bar.append(svg("title", {}, ms(lo) + "–" + ms(hi) + ": " + n));
      box.append(bar);
    });
    return box;
  }
  function renderEdges() {
    const t = state.test >= 0 ? tests[state.test] : null;
    const keep = t ? new Set(t.edges.map(([a, b]) => a + ">" + b)) : null;
    const table = el("table", "edges");
    table.append(el("tr", null, ...["caller → callee", "count", "errors", "error rate", "p50", "p95",
      "latency histogram (whole capture)"].map((h) => el("th", null, h))));
    for (const e of S.edges) {
      if (keep && !keep.has(e.a + ">" + e.b)) continue;
      table.append(el("tr", e.errors ? "errors" : null, el("td", null, services[e.a] + " → " + services[e.b]),
        el("td", "n", String(e.count)), el("td", "n", String(e.errors)),
        el("td", "n", (e.rate * 100).toFixed(1) + "%"), el("td", "n", ms(e.p50)), el("td", "n", ms(e.p95)),
        el("td", null, histogram(e.hist || []))));
    }
    $("edges").replaceChildren(table);
  }

  // -- one exchange's detail ---------------------------------------------------------------
  function kv(pairs) {
    const table = el("table", "kv");
    for (const [k, v] of pairs) table.append(el("tr", null, el("th", null, k), el("td", null, v)));
    return table;
  }
  function message(title, m) {
    const box = el("section", "msg", el("h4", null, title), el("div", "line", m.line), kv(m.headers),
      el("pre", "body", m.body));
    if (m.trailers) box.append(el("h5", null, "trailers"), m.trailers.length ? kv(m.trailers) : el("p", "quiet", "(none)"));
    return box;
  }
  function frames(title, list) {
    const box = el("section", "msg", el("h4", null, title));
    list.forEach(([fromClient, t, text], k) => box.append(
      el("div", "frame", (fromClient ? "→ " : "← ") + "#" + (k + 1) + " +" + ms(t)), el("pre", "body", text)));
    return box;
  }
  async function showDetail(i) {
    const aside = $("detail");
    aside.hidden = false;
    aside.replaceChildren(el("p", "quiet", "loading…"));
    const d = (await details())[i];
    const r = rows[i];
    const close = el("button", "close", "×");
    close.type = "button";
    close.title = "close";
    close.addEventListener("click", () => { aside.hidden = true; });
    if (d.span) { showSpan(aside, close, d, r, i); return; }
    const parent = r[F.parent] >= 0 ? label(r[F.parent]) : "none: called by the test or on its own";
    const out = [close, el("h3", null, label(i)), kv([
      ["exchange id", d.id], ["test", d.test || "(no test)"], ["caller", d.caller[0] + " (" + d.caller[1] + ")"],
      ["callee", d.callee[0] + " (" + d.callee[1] + ")"], ["outcome", outcomeOf(r)], ["duration", ms(r[F.duration])],
      ["parent", parent], ["parent inferred by", r[F.inference]], ["role in the failure", r[F.role] || "-"]])];
    if (d.error) out.push(el("p", "error", "error: " + d.error));
    if (d.grpc_status) out.push(el("p", null, "grpc-status: " + d.grpc_status));
    if (d.mismatches) {
      const table = el("table", "mismatches");
      table.append(el("tr", null, ...["kind", "where", "expected", "actual", "message"].map((h) => el("th", null, h))));
      for (const m of d.mismatches) table.append(el("tr", null, el("td", null, m.kind),
        el("td", null, (m.side ? m.side + " " : "") + m.where), el("td", "expected", m.expected),
        el("td", "actual", m.actual), el("td", null, m.message + " (" + m.contract + ")")));
      out.push(el("h4", null, "contract mismatches"), table);
    }
    out.push(el("h4", null, "timing (ms from request start)"), kv(d.timing.map(([k, v]) => [k, v.toFixed(3)])));
    out.push(message("request", d.request));
    if (d.response) out.push(message("response", d.response));
    if (d.grpc && d.grpc.length) out.push(frames("gRPC messages", d.grpc));
    if (d.ws && d.ws.length) out.push(frames("WebSocket frames", d.ws));
    if (d.redacted) out.push(el("p", "quiet", "redacted: " + d.redacted.join(", ")));
    aside.replaceChildren(...out);
    aside.scrollTop = 0;
  }

  function showSpan(aside, close, d, r, i) {
    const s = d.span;
    const parent = r[F.parent] >= 0 ? label(r[F.parent]) : "none in the test (its parent span was not seen)";
    const out = [close, el("h3", null, label(i)), el("p", "quiet", SENT + " (OTLP)"), kv([
      ["service", s.service], ["kind", s.kind], ["name", s.name], ["test", d.test || "(no test)"],
      ["status", el("span", s.status.startsWith("error") ? "error" : null, s.status)],
      ["duration", ms(r[F.duration])], ["parent", parent],
      ["parent inferred by", "the span's own parent id"], ["trace id", s.trace_id],
      ["span id", s.span_id], ["parent span id", s.parent_span_id || "-"], ["scope", s.scope]])];
    out.push(el("h4", null, "attributes"), s.attributes.length ? kv(s.attributes) : el("p", "quiet", "(none)"));
    if (s.events.length) {
      out.push(el("h4", null, "events (ms from span start)"));
      for (const [name, t, attrs] of s.events)
        out.push(el("div", "frame", "+" + t.toFixed(3) + " " + name), kv(attrs));
    }
    if (s.resource.length) out.push(el("h4", null, "resource"), kv(s.resource));
    aside.replaceChildren(...out);
    aside.scrollTop = 0;
  }

  // -- filters -----------------------------------------------------------------------------
  const serviceSelect = $("service");
  services.map((name, i) => [name, i]).sort((p, q) => (p[0] < q[0] ? -1 : 1)).forEach(([name, i]) => {
    const option = el("option", null, name);
    option.value = i;
    serviceSelect.append(option);
  });
  serviceSelect.addEventListener("change", () => { state.service = serviceSelect.value; refilter(); });
  $("status").addEventListener("change", () => { state.status = $("status").value; refilter(); });
  let typing = 0;
  $("search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.query = $("search").value.trim().toLowerCase(); refilter(); }, 120);
  });

  buildTests();
  const firstFailing = tests.findIndex((t) => t.story && t.story.root);
  select(firstFailing >= 0 && tests.length > 1 ? firstFailing : tests.length === 1 ? 0 : -1);
  window.__tapReady = performance.now();
  document.body.dataset.ready = "1";
})().catch((e) => {
  const p = document.createElement("p");
  p.className = "banner";
  p.textContent = "The report could not be drawn: " + e;
  document.body.prepend(p);
  document.body.dataset.ready = "error";
});
