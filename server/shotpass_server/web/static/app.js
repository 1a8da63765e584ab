// shotpass review pages: one script for every page; it reads the JSON API and draws with DOM calls only
// (text goes in as text, never as HTML).
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const PAGE = document.body.dataset.page;
const ARGS = JSON.parse(document.body.dataset.args || "{}");
const content = document.getElementById("content");
let SESSION = null;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function say(text, kind) {
  const m = document.getElementById("message");
  m.textContent = text || "";
  m.className = "message " + (kind || "");
  m.hidden = !text;
}

async function api(path, options) {
  const opts = Object.assign({credentials: "same-origin", headers: {}}, options || {});
  if (opts.method === "POST") {
    opts.headers["X-CSRF-Token"] = CSRF;
    opts.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, opts);
  if (response.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new Error("log in first");
  }
  const body = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function post(path, body) {
  return api(path, {method: "POST", body: JSON.stringify(body || {})});
}

function secs(s) {
  s = Number(s || 0);
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(2) + " h";
}

function viewQuery() {
  const pick = document.getElementById("view");
  const [display, view] = (pick.value || "|").split("|");
  return "display=" + encodeURIComponent(display) + "&view=" + encodeURIComponent(view);
}

function frameUrl(renderId, frame, kind, size) {
  return `/api/renders/${encodeURIComponent(renderId)}/frames/${frame}/${kind}.jpg?size=${size}&` + viewQuery();
}

function stateBadge(state) {
  return h("span", {class: "state state-" + String(state).toLowerCase()}, String(state).toLowerCase());
}

// The render's quality checks as a supervisor reads them: the flicker ratio (1 = as steady as the plate),
// the worst frame pairs, and anything that breaks the frame contract or is not a number.
function qcLines(qc) {
  if (!qc || !Object.keys(qc).length) return [];
  const lines = [];
  if (typeof qc.flicker_ratio === "number" && qc.flicker_ratio > 0) {
    lines.push(`flicker ${qc.flicker_ratio.toFixed(2)}x the plate's own${qc.flicker_ratio > 2 ? " (!)" : ""}`);
  }
  const worst = (qc.worst_pairs || []).slice(0, 3).map((p) => `${p.frame_a}-${p.frame_b} ${Number(p.ratio).toFixed(2)}x`);
  if (worst.length) lines.push(`worst pairs: ${worst.join(", ")}`);
  if (qc.nonfinite_outputs) lines.push(`${qc.nonfinite_outputs} NaN/Inf values in the outputs`);
  for (const problem of qc.contract_errors || []) lines.push(`contract: ${problem}`);
  return lines;
}

// ------------------------------------------------------------------ queue

async function queuePage() {
  const features = SESSION.features;
  const note = ["suspend", "resume", "reorder"].filter((f) => !features[f]);
  const live = {};  // render id -> {step text element, frame cells, bar, count}
  // Redraws update the page in place, keyed by lane and render: a row whose state, rights and priority are
  // unchanged keeps its elements, so a button under the pointer or a priority being typed survives the
  // redraw that another render's event causes.
  const lanes = {};  // lane name -> {section, head, empty, table}
  const rows = {};   // render id -> {sig, tr}
  function place(parent, node, after) {
    const want = after ? after.nextSibling : parent.firstChild;
    if (want !== node) parent.insertBefore(node, want);
  }
  function laneOf(name) {
    if (lanes[name]) return lanes[name];
    const table = h("table", {class: "queue", id: "lane-" + name},
      h("tr", {}, ["render", "shot", "user", "state", "progress", "frames", "step", "device time", "priority", ""].map((t) => h("th", {}, t))));
    const l = {section: h("section", {class: "lane"}), head: h("h2", {}), empty: h("p", {class: "empty"}, "nothing here"), table};
    l.section.append(l.head, l.empty, table);
    return (lanes[name] = l);
  }
  function buildRow(r) {
    const cells = h("div", {class: "frames"}, r.frames.map((f) =>
      h("span", {class: "cell f-" + f.state.toLowerCase(), title: `frame ${f.frame}: ${f.state}`, "data-frame": f.frame})));
    const bar = h("progress", {max: r.frames_total, value: r.frames_done});
    const step = h("span", {class: "step"}, "");
    const done = h("span", {class: "done"}, `${r.frames_done}/${r.frames_total}`);
    const device = h("td", {class: "num"}, secs(r.device_seconds));
    const cancel = r.may_change && features.cancel ? h("button", {class: "cancel", onclick: async () => {
      try { await post(`/api/renders/${r.id}/cancel`); say(`render ${r.id} cancelled`); draw(); }
      catch (e) { say(e.message, "error"); }
    }}, "Cancel") : "";
    const pausing = r.state === "SUSPENDED" ? "resume" : "suspend";
    const hold = r.may_change && features[pausing] ? h("button", {class: pausing, onclick: async () => {
      try { await post(`/api/renders/${r.id}/${pausing}`); say(`render ${r.id}: ${pausing} asked`); draw(); }
      catch (e) { say(e.message, "error"); }
    }}, pausing === "resume" ? "Resume" : "Suspend") : "";
    // Reorder: a render not running its frames yet takes a new priority (higher starts first among a user's).
    const priority = Number((r.settings || {}).priority || 0);
    const setPriority = async (n) => {
      try { await post(`/api/renders/${r.id}/priority`, {priority: n}); say(`render ${r.id}: priority ${n}`); draw(); }
      catch (e) { say(e.message, "error"); }
    };
    const reorder = r.may_change && features.reorder && r.state !== "RUNNING" ? h("span", {class: "reorder"},
      h("button", {class: "up", title: "raise the priority by one", onclick: () => setPriority(priority + 1)}, "Up"),
      h("input", {type: "number", class: "priority", value: priority, step: 1, "aria-label": "priority",
        onchange: (ev) => setPriority(parseInt(ev.target.value, 10) || 0)}),
      h("button", {class: "down", title: "lower the priority by one", onclick: () => setPriority(priority - 1)}, "Down"))
      : String(priority);
    live[r.id] = {cells, step, bar, done, device, total: r.frames_total, count: r.frames_done};
    return h("tr", {id: "q-" + r.id, "data-state": r.state},
      h("td", {}, h("a", {href: "/renders/" + r.id}, r.id)),
      h("td", {}, h("a", {href: `/shots/${encodeURIComponent(r.project)}/${encodeURIComponent(r.shot)}`}, `${r.project}/${r.shot}`), ` v${String(r.version).padStart(3, "0")}`),
      h("td", {}, r.user || "—"), h("td", {}, stateBadge(r.state)),
      h("td", {}, bar, " ", done), h("td", {}, cells), h("td", {}, step),
      device, h("td", {}, reorder), h("td", {}, hold, " ", cancel));
  }
  function setDone(l, count) {  // a row's progress bar and its "done/total"
    l.count = count;
    l.bar.value = count;
    l.done.textContent = `${count}/${l.total}`;
  }
  function refreshRow(r) {  // what changes without a new row: progress, frame cells, device time, place in line
    const l = live[r.id];
    for (const f of r.frames) {
      const cell = l.cells.querySelector(`[data-frame="${f.frame}"]`);
      if (cell) { cell.className = "cell f-" + f.state.toLowerCase(); cell.title = `frame ${f.frame}: ${f.state}`; }
    }
    setDone(l, r.frames_done);
    l.device.textContent = secs(r.device_seconds);
    if (r.state === "QUEUED") l.step.textContent = r.position ? `#${r.position} in line` : "";
  }
  async function draw() {
    const q = await api("/api/queue");
    const seenLanes = new Set(), seenRows = new Set();
    let previous = null;
    for (const lane of q.lanes) {
      const l = laneOf(lane.name);
      seenLanes.add(lane.name);
      place(content, l.section, previous);
      previous = l.section;
      const list = [...lane.running, ...lane.waiting];
      l.head.textContent = `${lane.name} lane · ${lane.running.length} running, ${lane.waiting.length} waiting`;
      l.empty.hidden = list.length > 0;
      l.table.hidden = !list.length;
      let after = l.table.firstChild;  // the header row
      for (const r of list) {
        const sig = JSON.stringify([r.state, r.may_change, (r.settings || {}).priority || 0, r.frames_total]);
        let row = rows[r.id];
        if (!row || row.sig !== sig) {
          if (row) row.tr.remove();
          row = rows[r.id] = {sig, tr: buildRow(r)};
        }
        refreshRow(r);
        place(l.table, row.tr, after);
        after = row.tr;
        seenRows.add(r.id);
      }
    }
    for (const id of Object.keys(rows)) if (!seenRows.has(id)) { rows[id].tr.remove(); delete rows[id]; delete live[id]; }
    for (const name of Object.keys(lanes)) if (!seenLanes.has(name)) { lanes[name].section.remove(); delete lanes[name]; }
    if (note.length && !document.getElementById("unsupported")) content.append(h("p", {class: "hint", id: "unsupported"},
      `This server cannot ${note.join(", ").replace(/, ([^,]*)$/, " or $1")} renders.`));
  }
  await draw();
  const events = new EventSource("/api/queue/events");
  let redraw = null;
  const later = () => { clearTimeout(redraw); redraw = setTimeout(draw, 200); };
  events.addEventListener("STEP", (m) => {
    const e = JSON.parse(m.data), l = live[e.render_id];
    if (!l) return;
    l.step.textContent = `frame ${e.frame}: step ${e.step}/${e.total_steps}`;
    const cell = l.cells.querySelector(`[data-frame="${e.frame}"]`);
    if (cell) cell.className = "cell f-running";
  });
  events.addEventListener("FRAME_DONE", (m) => {
    const e = JSON.parse(m.data), l = live[e.render_id];
    if (!l) return;
    const cell = l.cells.querySelector(`[data-frame="${e.frame}"]`);
    if (cell) cell.className = "cell f-done";
    setDone(l, e.frames_done || l.count + 1);
  });
  for (const kind of ["STARTED", "FINISHED", "queue", "FRAME_FAILED", "QUEUED"]) events.addEventListener(kind, later);
  events.addEventListener("logged_out", () => location.reload());
  setInterval(draw, 15000);  // catches what no event says (a render another page cancelled before it started)
}

// ------------------------------------------------------------------ shots

async function shotsPage() {
  const data = await api("/api/shots");
  if (!data.shots.length) { content.append(h("p", {class: "empty"}, "no shots yet")); return; }
  content.append(h("table", {class: "shots"},
    h("tr", {}, ["project", "shot", "versions", "approved", "latest"].map((t) => h("th", {}, t))),
    data.shots.map((s) => h("tr", {},
      h("td", {}, s.project),
      h("td", {}, h("a", {href: `/shots/${encodeURIComponent(s.project)}/${encodeURIComponent(s.shot)}`}, s.shot)),
      h("td", {class: "num"}, s.renders), h("td", {class: "num"}, s.approved),
      h("td", {}, s.latest ? new Date(s.latest * 1000).toLocaleString() : "—")))));
}

// ------------------------------------------------------------------ shot

function reviewControls(r, onChange) {
  if (!r.may_change) return h("span", {class: "hint"}, "view only");
  const rating = h("select", {class: "rating", "aria-label": "rating"},
    [0, 1, 2, 3, 4, 5].map((n) => h("option", {value: n, selected: n === r.review.rating}, n ? "★".repeat(n) : "unrated")));
  const pin = h("input", {type: "checkbox", class: "pin", checked: r.review.pinned});
  const note = h("input", {type: "text", class: "note", value: r.review.note, placeholder: "note"});
  const send = async (change) => {
    try { const out = await post(`/api/renders/${r.id}/review`, change); onChange(out); }
    catch (e) { say(e.message, "error"); }
  };
  rating.addEventListener("change", () => send({rating: Number(rating.value)}));
  pin.addEventListener("change", () => send({pinned: pin.checked}));
  note.addEventListener("change", () => send({note: note.value}));
  const approve = h("button", {class: "approve", onclick: () => send({approved: !r.review.approved})},
    r.review.approved ? "Unapprove" : "Approve");
  return h("span", {class: "review"}, rating, h("label", {}, pin, " pin"), note, approve);
}

function lineageTree(nodes) {
  return h("ul", {class: "tree"}, nodes.map((n) => h("li", {},
    h("a", {href: "/renders/" + n.id}, `v${String(n.version).padStart(3, "0")}`), " ", stateBadge(n.state),
    n.approved ? h("span", {class: "badge approved"}, "approved") : "",
    n.children.length ? lineageTree(n.children) : "")));
}

async function shotPage() {
  const data = await api(`/api/shots/${encodeURIComponent(ARGS.project)}/${encodeURIComponent(ARGS.shot)}`);
  content.replaceChildren();
  const table = h("table", {class: "versions"},
    h("tr", {}, ["", "version", "state", "user", "model", "frames", "device time", "QC", "review"].map((t) => h("th", {}, t))));
  for (const r of data.versions.slice().reverse()) {
    const thumb = r.thumb_frame !== null ? h("img", {class: "thumb", alt: `v${r.version}`, src: frameUrl(r.id, r.thumb_frame, "output", "thumb")}) : "";
    const qc = qcLines(r.qc).map((line) => h("div", {class: "qc"}, line));
    table.append(h("tr", {id: "v-" + r.id, class: r.review.approved ? "is-approved" : ""},
      h("td", {}, h("a", {href: "/renders/" + r.id}, thumb)),
      h("td", {}, h("a", {href: "/renders/" + r.id}, `v${String(r.version).padStart(3, "0")}`), r.label ? ` ${r.label}` : "",
        r.review.approved ? h("span", {class: "badge approved"}, "approved") : "",
        r.review.pinned ? h("span", {class: "badge"}, "pinned") : ""),
      h("td", {}, stateBadge(r.state)), h("td", {}, r.user || "—"),
      h("td", {}, `${r.settings.pass_name} · ${r.settings.model}`),
      h("td", {class: "num"}, `${r.frames_done}/${r.frames_total}`), h("td", {class: "num"}, secs(r.device_seconds)),
      h("td", {}, qc.length ? qc : "—"),
      h("td", {}, reviewControls(r, () => shotPage()))));
  }
  content.append(h("h2", {}, "Versions"), table, h("h2", {}, "Lineage"), lineageTree(data.lineage));
  // Settings diff between two versions.
  const options = data.versions.map((r) => h("option", {value: r.id}, `v${String(r.version).padStart(3, "0")}`));
  const a = h("select", {id: "diff-a"}, options.map((o) => o.cloneNode(true)));
  const b = h("select", {id: "diff-b"}, options.map((o) => o.cloneNode(true)));
  if (data.versions.length > 1) { a.selectedIndex = data.versions.length - 2; b.selectedIndex = data.versions.length - 1; }
  const out = h("div", {id: "diff"});
  const show = async () => {
    const d = await api(`/api/renders/${a.value}/diff/${b.value}`);
    out.replaceChildren(d.changes.length ? h("table", {class: "diff"},
      h("tr", {}, h("th", {}, "setting"), h("th", {}, `v${d.a.version}`), h("th", {}, `v${d.b.version}`)),
      d.changes.map((c) => h("tr", {}, h("td", {}, c.key), h("td", {}, JSON.stringify(c.a)), h("td", {}, JSON.stringify(c.b)))))
      : h("p", {class: "empty"}, "same settings"));
  };
  a.addEventListener("change", show); b.addEventListener("change", show);
  content.append(h("h2", {}, "Settings diff"), h("p", {}, a, " → ", b), out);
  if (data.versions.length) await show();
}

// ------------------------------------------------------------------ version: contact sheet, flipbook, A/B

// What the viewer chose on the version page, kept across the redraws that a running render's new frames cause.
const FLIPBOOK = {compare: null, mode: null, wipe: null, frame: null};

async function renderPage(live = false) {
  const r = await api(`/api/renders/${encodeURIComponent(ARGS.render_id)}`);
  if (live && editing()) return false;  // the viewer started typing while the render was fetched: later
  const done = r.frames.filter((f) => f.output);
  content.replaceChildren();
  const head = h("div", {class: "facts"},
    h("span", {}, stateBadge(r.state)), h("span", {}, `${r.settings.pass_name} · ${r.settings.model}`),
    h("span", {}, `user ${r.user || "—"}`), h("span", {}, `${r.frames_done}/${r.frames_total} frames`),
    h("span", {}, `device time ${secs(r.device_seconds)}`), h("span", {id: "fps"}, `${r.fps} fps`),
    r.parent ? h("span", {}, "from ", h("a", {href: "/renders/" + r.parent}, r.parent)) : "",
    h("a", {href: `/shots/${encodeURIComponent(r.project)}/${encodeURIComponent(r.shot)}`}, "all versions"),
    r.review.approved ? h("span", {class: "badge approved", id: "approved-badge"}, "approved") : "");
  content.append(head, h("p", {}, reviewControls(r, () => renderPage())));
  if (r.error) content.append(h("p", {class: "message error"}, r.error));
  if (qcLines(r.qc).length) content.append(h("div", {class: "qc-figures", id: "qc"},
    qcLines(r.qc).map((line) => h("span", {class: "qc"}, line))));
  if (!done.length) {
    content.append(h("p", {class: "empty"}, "no finished frames yet"));
    watchRender(r, () => true);
    return true;
  }

  // Flipbook with an optional B side: another version of the shot or the source plate.
  const frames = done.map((f) => f.frame);
  const compareChoices = [h("option", {value: ""}, "no comparison"), h("option", {value: "source"}, "source plate"),
    ...r.siblings.filter((s) => s.id !== r.id).map((s) => h("option", {value: s.id}, `v${String(s.version).padStart(3, "0")} ${s.label || ""}`))];
  const compare = h("select", {id: "compare"}, compareChoices);
  const wanted = FLIPBOOK.compare ?? (ARGS.compare || "");
  compare.value = wanted;
  if (compare.value !== wanted) compare.value = "";  // that version is not a sibling (any more)
  const mode = h("select", {id: "compare-mode"}, h("option", {value: "wipe"}, "wipe"), h("option", {value: "side"}, "side by side"));
  const imgA = h("img", {id: "fb-a", alt: "A"});
  const imgB = h("img", {id: "fb-b", alt: "B"});
  const paneB = h("div", {class: "pane b", id: "pane-b"}, imgB, h("span", {class: "tag"}, "B"));
  const line = h("div", {class: "wipe-line", id: "wipe-line"});
  const stage = h("div", {class: "stage", id: "stage"}, h("div", {class: "pane a"}, imgA, h("span", {class: "tag"}, "A")), paneB, line);
  if (FLIPBOOK.mode) mode.value = FLIPBOOK.mode;
  const wipe = h("input", {type: "range", id: "wipe", min: 0, max: 100, value: FLIPBOOK.wipe ?? 50});
  const label = h("span", {id: "fb-frame", class: "frame-number"}, "");
  const slider = h("input", {type: "range", id: "fb-slider", min: 0, max: frames.length - 1, value: 0});
  const play = h("button", {id: "fb-play"}, "Play");
  let index = 0, timer = null;
  const cacheA = {}, cacheB = {};
  const bSource = () => compare.value;
  const urlA = (f) => frameUrl(r.id, f, "output", "full");
  const urlB = (f) => bSource() === "source" ? frameUrl(r.id, f, "source", "full") : frameUrl(bSource(), f, "output", "full");
  const preload = (cache, url) => { if (!cache[url]) { const i = new Image(); i.src = url; cache[url] = i; } return cache[url]; };
  function layout() {
    const on = !!bSource();
    paneB.hidden = !on;
    stage.className = "stage " + (on ? mode.value : "single");
    wipe.hidden = !(on && mode.value === "wipe");
    paneB.style.clipPath = on && mode.value === "wipe" ? `inset(0 0 0 ${wipe.value}%)` : "none";
    line.hidden = !(on && mode.value === "wipe");
    line.style.left = `${wipe.value}%`;
  }
  function show(i) {
    index = (i + frames.length) % frames.length;
    const f = frames[index];
    imgA.src = preload(cacheA, urlA(f)).src;
    if (bSource()) imgB.src = preload(cacheB, urlB(f)).src;
    label.textContent = `frame ${f}`;
    label.dataset.frame = f;
    slider.value = index;
    FLIPBOOK.frame = f;
  }
  function ready(i) {
    const f = frames[(i + frames.length) % frames.length];
    const a = preload(cacheA, urlA(f));
    const b = bSource() ? preload(cacheB, urlB(f)) : null;
    return a.complete && (!b || b.complete);
  }
  play.addEventListener("click", () => {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "Play"; return; }
    frames.forEach((f) => { preload(cacheA, urlA(f)); if (bSource()) preload(cacheB, urlB(f)); });
    play.textContent = "Pause";
    timer = setInterval(() => { if (ready(index + 1)) show(index + 1); }, 1000 / (r.fps || 24));  // holds a frame still loading
  });
  slider.addEventListener("input", () => show(Number(slider.value)));
  compare.addEventListener("change", () => { FLIPBOOK.compare = compare.value; layout(); show(index); });
  mode.addEventListener("change", () => { FLIPBOOK.mode = mode.value; layout(); });
  wipe.addEventListener("input", () => { FLIPBOOK.wipe = Number(wipe.value); layout(); });
  document.getElementById("view").addEventListener("change", () => show(index));
  content.append(h("h2", {}, "Flipbook"),
    h("div", {class: "controls"}, play, slider, label, " compare with ", compare, mode, wipe), stage);

  // Contact sheet: every finished frame, its number, its EXR as stored.
  content.append(h("h2", {}, "Contact sheet"), h("div", {class: "sheet", id: "sheet"}, done.map((f, i) => h("figure", {},
    h("img", {src: frameUrl(r.id, f.frame, "output", "thumb"), alt: `frame ${f.frame}`, onclick: () => show(i)}),
    h("figcaption", {}, `${f.frame} `, h("a", {href: `/api/renders/${r.id}/frames/${f.frame}/output.exr`, class: "exr"}, "EXR"))))));
  layout();
  show(Math.max(0, frames.indexOf(FLIPBOOK.frame)));
  watchRender(r, () => !timer);
  return true;
}

function editing() {
  // A note being typed: a redraw now would throw the text away (it is sent when the field loses focus).
  const a = document.activeElement;
  return !!a && content.contains(a) && (a.tagName === "TEXTAREA" || (a.tagName === "INPUT" && a.type === "text"));
}

let renderEvents = null;
function watchRender(r, idle) {
  // While a version renders, new frames join the page (not while the flipbook plays); it ends with the render.
  if (renderEvents) renderEvents.close();
  renderEvents = null;
  if (r.state !== "RUNNING" && r.state !== "QUEUED") return;
  renderEvents = new EventSource(`/api/renders/${r.id}/events`);
  let pending = null;
  const redraw = () => {  // once the viewer is not playing the flipbook or typing; until then, asked again later
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      if (!idle() || editing() || !(await renderPage(true))) redraw();
    }, 1500);
  };
  renderEvents.addEventListener("FRAME_DONE", redraw);
  renderEvents.addEventListener("FINISHED", () => { renderEvents.close(); renderEvents = null; redraw(); });
}

// ------------------------------------------------------------------ stats

async function statsPage() {
  const s = await api("/api/stats");
  const table = (title, rows, id) => [h("h2", {}, title), h("table", {class: "stats", id},
    h("tr", {}, ["", "device time", "renders", "frames"].map((t) => h("th", {}, t))),
    rows.map((r) => h("tr", {}, h("td", {}, r.name), h("td", {class: "num"}, secs(r.seconds)),
      h("td", {class: "num"}, r.renders), h("td", {class: "num"}, r.frames))))];
  content.append(h("p", {}, `total device time: ${secs(s.total_seconds)}`),
    table("Per user", s.by_user, "by-user"), table("Per project", s.by_project, "by-project"),
    table("Per shot", s.by_shot, "by-shot"));
}

// ------------------------------------------------------------------ start

async function main() {
  SESSION = await api("/api/session");
  const pick = document.getElementById("view");
  const saved = localStorage.getItem("shotpass.view");
  for (const v of SESSION.views) pick.append(h("option", {value: `${v.display}|${v.view}`}, `${v.display} · ${v.view}`));
  if (saved && [...pick.options].some((o) => o.value === saved)) pick.value = saved;
  pick.addEventListener("change", () => localStorage.setItem("shotpass.view", pick.value));
  const pages = {queue: queuePage, shots: shotsPage, shot: shotPage, render: renderPage, stats: statsPage};
  const nav = document.getElementById("nav-" + PAGE);
  if (nav) nav.classList.add("current");
  await pages[PAGE]();
  document.body.dataset.ready = "1";
}

main().catch((e) => say(e.message, "error"));
