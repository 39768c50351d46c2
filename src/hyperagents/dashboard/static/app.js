// hyperagents dashboard: a small single-page app over the JSON API (no framework, no build).
// Every value from the API is put into the page as text; the only HTML taken from the server is
// the syntax-highlighted code, which the server escapes.

const $view = document.getElementById("view");
const $nav = document.getElementById("nav");
const $live = document.getElementById("live");
const $dialog = document.getElementById("dialog");
const $toasts = document.getElementById("toasts");

let INFO = null;
let current = null; // {key, refresh, dispose}
let stream = null;
let streamKey = null;

// -- helpers -------------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (typeof x === "number") {
    if (Number.isInteger(x)) return String(x);
    return x.toFixed(digits);
  }
  return String(x);
}

function money(x) {
  return x ? `$${x.toFixed(x < 1 ? 4 : 2)}` : "$0";
}

function duration(seconds) {
  if (!seconds) return "0 s";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString();
}

function ago(iso) {
  if (!iso) return "";
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function enc(s) {
  return encodeURIComponent(s);
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

function toast(message, kind = "info") {
  const el = h("div", { class: `toast ${kind}`, text: message });
  $toasts.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    options.headers["Content-Type"] = "application/json";
    options.headers["X-CSRF-Token"] = cookie("hyperagents_csrf");
    options.body = JSON.stringify(body ?? {});
  }
  const response = await fetch(path, options);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401 && path !== "/api/login") {
      showLogin();
    }
    throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`);
  }
  return data;
}

function stateBadge(state, extra = "") {
  return h("span", { class: `badge state-${state} ${extra}`, text: state });
}

function statusBadge(run) {
  const label = run.live
    ? (run.status === "running" ? "running" : "stopping…")
    : run.label || run.status;
  return h("span", {
    class: `badge status-${run.status}${run.live ? " live-dot" : ""}`,
    text: label,
    title: run.live ? "an engine is driving this run now" : "",
  });
}

// viridis, 9 stops, for scores in [0, 1] of the run's range
const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
function viridis(t) {
  if (!(t >= 0)) t = 0;
  if (t > 1) t = 1;
  const x = t * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function confirmDialog(title, message, { requireText = null, action = "Confirm", danger = false } = {}) {
  return new Promise((resolve) => {
    $dialog.replaceChildren();
    const input = requireText
      ? h("input", { type: "text", id: "confirm-text", autocomplete: "off", "aria-label": "confirmation" })
      : null;
    const ok = h("button", { class: danger ? "danger" : "primary", id: "confirm-ok", text: action });
    const cancel = h("button", { type: "button", text: "Cancel", id: "confirm-cancel" });
    $dialog.append(
      h("form", { method: "dialog", class: "dialog" },
        h("h3", { text: title }),
        h("p", { text: message }),
        requireText ? h("p", {}, "Type ", h("code", { text: requireText }), " to confirm:") : null,
        input,
        h("div", { class: "row end" }, cancel, ok)),
    );
    if (input) {
      ok.disabled = true;
      input.addEventListener("input", () => { ok.disabled = input.value !== requireText; });
    }
    const done = (value) => { $dialog.close(); resolve(value); };
    ok.addEventListener("click", (e) => { e.preventDefault(); done(input ? input.value : true); });
    cancel.addEventListener("click", (e) => { e.preventDefault(); done(null); });
    $dialog.addEventListener("cancel", () => resolve(null), { once: true });
    $dialog.showModal();
    (input || ok).focus();
  });
}

function promptDialog(title, message, fields, action = "OK") {
  return new Promise((resolve) => {
    $dialog.replaceChildren();
    const inputs = fields.map((f) => h("input", { type: f.type || "text", name: f.name, value: f.value ?? "", min: f.min, placeholder: f.placeholder || "", id: `prompt-${f.name}` }));
    const ok = h("button", { class: "primary", text: action, id: "prompt-ok" });
    const cancel = h("button", { type: "button", text: "Cancel" });
    $dialog.append(h("form", { method: "dialog", class: "dialog" },
      h("h3", { text: title }), h("p", { text: message }),
      fields.map((f, i) => h("label", { class: "field" }, h("span", { text: f.label }), inputs[i])),
      h("div", { class: "row end" }, cancel, ok)));
    const done = (v) => { $dialog.close(); resolve(v); };
    ok.addEventListener("click", (e) => {
      e.preventDefault();
      const out = {};
      fields.forEach((f, i) => { out[f.name] = inputs[i].value; });
      done(out);
    });
    cancel.addEventListener("click", (e) => { e.preventDefault(); done(null); });
    $dialog.addEventListener("cancel", () => resolve(null), { once: true });
    $dialog.showModal();
    inputs[0]?.focus();
  });
}

// -- run actions -------------------------------------------------------------------------------
async function stopRun(name, live = true) {
  const choice = await new Promise((resolve) => {
    $dialog.replaceChildren();
    const graceful = h("button", { class: "primary", id: "confirm-ok", text: "Stop" });
    const now = h("button", { class: "danger", id: "stop-now", text: "Stop now", disabled: !live });
    const cancel = h("button", { type: "button", text: "Cancel" });
    $dialog.append(h("form", { method: "dialog", class: "dialog" },
      h("h3", { text: "Stop run" }),
      h("p", { text: `Stop ${name}? "Stop" lets the engine finish the work in flight. "Stop now" kills the engine and its sandboxed agents at once; a resume redoes the work that was in flight. Either way the run can be resumed.` }),
      h("div", { class: "row end" }, cancel, now, graceful)));
    const done = (v) => { $dialog.close(); resolve(v); };
    graceful.addEventListener("click", (e) => { e.preventDefault(); done("graceful"); });
    now.addEventListener("click", (e) => { e.preventDefault(); done("now"); });
    cancel.addEventListener("click", (e) => { e.preventDefault(); done(null); });
    $dialog.addEventListener("cancel", () => resolve(null), { once: true });
    $dialog.showModal();
    graceful.focus();
  });
  if (!choice) return;
  try {
    const r = await api(`/api/runs/${enc(name)}/stop`, { method: "POST", body: { now: choice === "now" } });
    toast(r.message || `stop requested for ${name}`);
  } catch (e) { toast(e.message, "error"); }
  refresh();
}

async function resumeRun(run) {
  const complete = run.status === "complete";
  const answer = await promptDialog("Resume run",
    complete ? `${run.name} reached its target. Generations to add:` : `Continue ${run.name} where it stopped. Generations to add (empty: continue to its target):`,
    [{ name: "generations", label: "generations to add", type: "number", min: 0, value: complete ? 10 : "" },
     { name: "workers", label: "workers", type: "number", min: 1, value: 1 }], "Resume");
  if (!answer) return;
  const body = {};
  if (answer.generations !== "") body.generations = Number(answer.generations);
  if (answer.workers !== "") body.workers = Number(answer.workers);
  try {
    await api(`/api/runs/${enc(run.name)}/resume`, { method: "POST", body });
    toast(`resumed ${run.name}`);
  } catch (e) { toast(e.message, "error"); }
  refresh();
}

async function deleteRun(name) {
  const typed = await confirmDialog("Delete run", `Delete ${name} with all its variants, evaluations, events and LLM records? This cannot be undone.`, { requireText: name, action: "Delete", danger: true });
  if (typed === null) return;
  try {
    await api(`/api/runs/${enc(name)}`, { method: "DELETE", body: { confirm: typed } });
    toast(`deleted ${name}`);
    if (location.hash !== "#/") location.hash = "#/";
  } catch (e) { toast(e.message, "error"); }
  refresh();
}

function runActions(run) {
  const buttons = [];
  if (run.status === "running" || (run.live && run.status === "stopped")) {
    buttons.push(h("button", { class: "small", text: "Stop", dataset: { action: "stop" }, onclick: (e) => { e.stopPropagation(); stopRun(run.name, run.live); } }));
  }
  if (!run.live && INFO?.can_drive) {
    buttons.push(h("button", { class: "small", text: "Resume", dataset: { action: "resume" }, onclick: (e) => { e.stopPropagation(); resumeRun(run); } }));
  }
  if (!run.live) {
    buttons.push(h("button", { class: "small danger-outline", text: "Delete", dataset: { action: "delete" }, onclick: (e) => { e.stopPropagation(); deleteRun(run.name); } }));
  }
  return h("span", { class: "actions" }, buttons);
}

// -- pages -------------------------------------------------------------------------------------
async function pageRuns() {
  const data = await api("/api/runs");
  const form = newRunForm();
  // an arena opens on its arena page (its rounds; it has no archive of variants)
  const target = (r) => `#/run/${enc(r.name)}${r.arena ? "/arena" : ""}`;
  for (const r of data.runs) if (r.arena) arenaRuns.add(r.name); else arenaRuns.delete(r.name);
  const rows = data.runs.map((r) => h("tr", { class: "clickable", dataset: { run: r.name }, onclick: () => { location.hash = target(r); } },
    h("td", {}, h("a", { href: target(r), text: r.name })),
    h("td", { text: taskLabel(r) }), h("td", {}, r.mode, r.arena ? [" ", h("a", { href: target(r), class: "badge arena-badge", text: "arena", title: "suite growth, drops and recoveries per round" })] : null), h("td", { class: "num", text: r.seed }),
    h("td", {}, statusBadge(r)),
    h("td", { class: "num", text: `${r.generations}${r.target_generations != null ? ` / ${r.target_generations}` : ""}` }),
    h("td", { class: "num", text: r.variants }),
    h("td", { class: "num", text: fmt(r.best_val) }),
    h("td", { class: "num", text: fmt(r.champion_test) }),
    h("td", { class: "num", text: money(r.cost) }),
    h("td", { text: ago(r.updated_at), title: when(r.updated_at) }),
    h("td", {}, runActions(r))));
  return h("section", {},
    h("div", { class: "row between" },
      h("h1", { text: "Runs" }),
      h("div", { class: "row" },
        h("a", { class: "button", href: "/api/runs.csv", download: "runs.csv", text: "Export CSV" }),
        h("a", { class: "button", href: "/api/runs.json", download: "runs.json", text: "Export JSON" }),
        INFO?.can_drive ? h("button", { class: "primary", id: "new-run", text: "New run", onclick: () => form.toggleAttribute("hidden") }) : null)),
    form,
    data.runs.length === 0
      ? h("p", { class: "empty", text: "No runs in this storage yet. Start one here or with `hyperagents run`." })
      : h("table", { class: "grid", id: "runs-table" },
        h("thead", {}, h("tr", {}, ["run", "task", "mode", "seed", "status", "generations", "variants", "best val", "champion test", "cost", "updated", ""].map((c) => h("th", { text: c })))),
        h("tbody", {}, rows)));
}

function newRunForm() {
  const tasks = INFO?.tasks || [];
  const field = (label, input) => h("label", { class: "field" }, h("span", { text: label }), input);
  const form = h("form", { class: "card form", id: "new-run-form", hidden: true },
    h("h3", { text: "New run" }),
    h("div", { class: "fields" },
      field("task", h("select", { name: "task" }, tasks.map((t) => h("option", { value: t, text: t })))),
      field("level (optional: sets the mode)", h("select", { name: "level" }, [h("option", { value: "", text: "none" }), ...(INFO?.levels || []).map((l) => h("option", { value: l, text: l }))])),
      field("mode", h("select", { name: "mode" }, (INFO?.modes || []).map((m) => h("option", { value: m, text: m })))),
      field("generations", h("input", { name: "generations", type: "number", min: 0, value: 30 })),
      field("seed", h("input", { name: "seed", type: "number", min: 0, value: 0 })),
      field("name (optional)", h("input", { name: "name", type: "text", placeholder: "task-mode-seed-…" })),
      field("workers", h("input", { name: "workers", type: "number", min: 1, value: 1 })),
      field("model (optional)", h("input", { name: "llm", type: "text", placeholder: "openai:MODEL, http://HOST/v1#MODEL, local" })),
      field("max cost $ (optional)", h("input", { name: "max_cost", type: "number", min: 0, step: "any" })),
      field("max tokens (optional)", h("input", { name: "max_tokens", type: "number", min: 0 }))),
    h("div", { class: "row end" }, h("button", { class: "primary", type: "submit", text: "Start" })));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const values = Object.fromEntries(new FormData(form).entries());
    const body = { task: values.task, generations: Number(values.generations), seed: Number(values.seed), workers: Number(values.workers) };
    if (values.level) body.level = values.level; else body.mode = values.mode;
    if (values.name) body.name = values.name;
    if (values.llm) body.llm = values.llm;
    if (values.max_cost) body.max_cost = Number(values.max_cost);
    if (values.max_tokens) body.max_tokens = Number(values.max_tokens);
    try {
      const run = await api("/api/runs", { method: "POST", body });
      toast(`started ${run.name}`);
      location.hash = `#/run/${enc(run.name)}`;
    } catch (err) { toast(err.message, "error"); }
  });
  return form;
}

function card(title, ...body) {
  return h("div", { class: "card" }, h("h3", { text: title }), ...body);
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v instanceof Node ? v : String(v))]));
}

function meter(done, total) {
  const frac = total ? Math.min(1, done / total) : 0;
  const bar = h("div", { class: "meter" }, h("div", { class: "fill" }));
  bar.firstChild.style.width = `${(frac * 100).toFixed(1)}%`;
  return bar;
}

function variantLink(id, text) {
  return h("a", { href: `#/variant/${id}`, text: text ?? `#${id}` });
}

async function pageOverview(name) {
  const data = await api(`/api/runs/${enc(name)}`);
  const run = data.run;
  const b = data.budget;
  const llm = b.llm;
  const champ = data.champion;
  const seed = data.seed;
  const states = Object.entries(data.states).sort();
  if (run.arena) arenaRuns.add(run.name);
  return h("section", {},
    runHeader(run),
    run.arena ? h("p", { class: "reason", id: "arena-link" }, "This run is an arena: its rounds (the suite's growth, the code agents' drops and recoveries, the test agents' hard cases) are on ",
      h("a", { href: `#/run/${enc(run.name)}/arena`, text: "its arena page →" })) : null,
    h("div", { class: "cards" },
      card("Champion", champ
        ? kv([["variant", variantLink(champ.id, `#${champ.id} (generation ${champ.generation})`)],
          ...["train", "val", "test"].map((s) => [`${s} score`, `${fmt(champ.scores[s])}  (seed ${fmt(seed?.scores?.[s])})`])])
        : h("p", { class: "muted", text: "no evaluated variant yet" })),
      card("Budget",
        kv([["generations", h("span", {}, `${b.generations_done} of ${b.target_generations ?? "–"}`, meter(b.generations_done, b.target_generations))],
          ["time", `${duration(b.elapsed_seconds)}${b.max_seconds != null ? ` of ${duration(b.max_seconds)}` : ""}`],
          ["evaluations", `${b.evaluations}${b.max_evaluations != null ? ` of ${b.max_evaluations}` : ""}`],
          ["LLM tokens", `${llm.tokens}${llm.max_tokens != null ? ` of ${llm.max_tokens}` : ""}`],
          ["LLM cost", `${money(llm.cost)}${llm.max_cost != null ? ` of ${money(llm.max_cost)}` : ""}`],
          ["LLM calls", `${llm.calls} (${llm.cached} cached, ${llm.errors} failed)`],
          llm.model ? ["model", llm.model] : null])),
      card("Progress",
        kv([["status", statusBadge(run)], ["variants", run.variants], ...states.map(([k, v]) => [k, v])]),
        data.in_flight.length
          ? h("ul", { class: "plain" }, data.in_flight.map((v) => h("li", {}, variantLink(v.id), ` generation ${v.generation}: `, stateBadge(v.state), ` ${ago(v.since)}`)))
          : null)),
    data.engines.length ? card("Engines", enginesTable(data.engines)) : null,
    card("Learning curve", curveSvg(data.curve)),
    card("Latest events", eventsTable(data.events), h("a", { href: `#/run/${enc(name)}/events`, text: "all events →" })));
}

// The engine processes that worked on the run (several may share one run).
function enginesTable(engines) {
  const head = ["engine", "host", "pid", "workers", "status", "heartbeat", "children"];
  return h("div", { class: "scroll" }, h("table", { class: "grid compact", id: "engines" },
    h("thead", {}, h("tr", {}, head.map((c) => h("th", { text: c })))),
    h("tbody", {}, engines.map((e) => h("tr", { class: e.status === "dead" || e.status === "lost" ? "error" : "" },
      h("td", { class: "mono", text: e.engine }), h("td", { text: e.host }), h("td", { class: "num", text: String(e.pid) }),
      h("td", { class: "num", text: String(e.workers) }),
      h("td", { text: e.status + (e.lead ? " (lead)" : "") }),
      h("td", { class: "num", text: `${fmt(e.heartbeat_age, 1)} s ago` }),
      h("td", { class: "num", text: String(e.variants) }))))));
}

// A run's task as the command line shows it: its spec, and the options it was created with.
function taskLabel(run) {
  const options = Object.entries(run.task_options || {});
  if (!options.length) return run.task;
  return `${run.task} (${options.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")})`;
}

function runHeader(run) {
  return h("div", { class: "row between run-header" },
    h("div", {},
      h("h1", {}, run.name, " ", statusBadge(run)),
      h("p", { class: "muted", text: `task ${taskLabel(run)} · mode ${run.mode} · seed ${run.seed}${run.experiment ? ` · experiment ${run.experiment}` : ""}` })),
    h("div", { class: "row" },
      h("a", { class: "button", href: `/api/runs/${enc(run.name)}/export.csv`, text: "Export CSV" }),
      h("a", { class: "button", href: `/api/runs/${enc(run.name)}/export.json`, text: "Export JSON" }),
      runActions(run)));
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function curveSvg(curve) {
  const W = 900, H = 300, L = 48, R = 16, T = 12, B = 34;
  const gens = curve.generation;
  if (!gens.length) return h("p", { class: "muted", text: "no variants yet" });
  const values = [...curve.val, ...curve.test].filter((v) => v !== null);
  let lo = values.length ? Math.min(...values) : 0, hi = values.length ? Math.max(...values) : 1;
  if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const gmax = Math.max(1, ...gens);
  const x = (g) => L + (g / gmax) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": "learning curve" });
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    svg.append(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "gridline" }), s("text", { x: L - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, v.toFixed(3)));
  }
  const ticks = 6;
  for (let i = 0; i <= ticks; i++) {
    const g = Math.round((gmax * i) / ticks);
    svg.append(s("text", { x: x(g), y: H - B + 16, class: "tick", "text-anchor": "middle" }, g));
  }
  svg.append(s("text", { x: (L + W - R) / 2, y: H - 2, class: "axis", "text-anchor": "middle" }, "generation"));
  // every variant's val (complete), then best-so-far and the champions' test scores
  curve.val.forEach((v, i) => {
    if (v === null) return;
    const dot = s("circle", { cx: x(gens[i]), cy: y(v), r: 2.6, class: "dot-val" }, s("title", {}, `#${curve.id[i]} generation ${gens[i]}: val ${v.toFixed(4)}`));
    dot.addEventListener("click", () => { location.hash = `#/variant/${curve.id[i]}`; });
    svg.append(dot);
  });
  let path = "";
  curve.best_val.forEach((v, i) => { if (v !== null) path += `${path ? "L" : "M"}${x(gens[i]).toFixed(1)},${y(v).toFixed(1)}`; });
  svg.append(s("path", { d: path, class: "line-best" }));
  curve.test.forEach((v, i) => {
    if (v === null) return;
    svg.append(s("rect", { x: x(gens[i]) - 3.5, y: y(v) - 3.5, width: 7, height: 7, class: "dot-test", transform: `rotate(45 ${x(gens[i])} ${y(v)})` }, s("title", {}, `#${curve.id[i]} generation ${gens[i]}: test ${v.toFixed(4)} (champion when it settled)`)));
  });
  const legend = h("div", { class: "legend" },
    h("span", { class: "key key-val" }), "val of each evaluated variant ",
    h("span", { class: "key key-best" }), "best val so far ",
    h("span", { class: "key key-test" }), "test of the champion at the time");
  return h("div", {}, svg, legend);
}

function eventsTable(events, withRun = false) {
  if (!events.length) return h("p", { class: "muted", text: "no events" });
  return h("table", { class: "grid compact events" },
    h("thead", {}, h("tr", {}, ["time", "kind", "variant", "message"].map((c) => h("th", { text: c })))),
    h("tbody", {}, events.map((e) => h("tr", {},
      h("td", { text: when(e.created_at), class: "nowrap" }),
      h("td", {}, h("span", { class: `kind kind-${e.kind.split(".")[0]}`, text: e.kind })),
      h("td", {}, e.variant_id ? variantLink(e.variant_id) : "–"),
      h("td", { text: e.message, class: "message" })))));
}

// -- archive -----------------------------------------------------------------------------------
const archiveState = { sort: "generation", desc: false, page: 0, q: "", state: "", minVal: "" };
const PAGE = 100;
async function pageArchive(name) {
  const data = await api(`/api/runs/${enc(name)}/archive`);
  const cols = data.columns;
  const ix = Object.fromEntries(cols.map((c, i) => [c, i]));
  const shown = ["variant_id", "generation", "parent_id", "state", "train_subset", "train", "val", "test", "wall_per_instance", "errors", "operator", "reason"];
  const labels = { variant_id: "variant", parent_id: "parent", train_subset: "subset", wall_per_instance: "ms/instance" };
  const container = h("div", {});
  const count = h("span", { class: "muted", id: "archive-count" });
  const stateSelect = h("select", { id: "filter-state", "aria-label": "state" }, h("option", { value: "", text: "any state" }), ["complete", "pending", "pruned", "invalid", "rejected", "failed", "evaluating", "running"].map((s2) => h("option", { value: s2, text: s2 })));
  stateSelect.value = archiveState.state;
  const search = h("input", { type: "search", id: "filter-text", placeholder: "filter: id, operator, reason…", value: archiveState.q });
  const minVal = h("input", { type: "number", step: "any", id: "filter-min-val", placeholder: "min val", value: archiveState.minVal });
  const render = () => {
    const q = archiveState.q.toLowerCase();
    const mv = archiveState.minVal === "" ? null : Number(archiveState.minVal);
    let rows = data.rows.filter((r) =>
      (!archiveState.state || r[ix.state] === archiveState.state) &&
      (mv === null || (r[ix.val] !== null && r[ix.val] >= mv)) &&
      (!q || shown.some((c) => r[ix[c]] !== null && String(r[ix[c]]).toLowerCase().includes(q))));
    const k = ix[archiveState.sort];
    const dir = archiveState.desc ? -1 : 1;
    rows = rows.slice().sort((a, b2) => {
      const va = a[k], vb = b2[k];
      if (va === vb) return a[0] - b2[0];
      if (va === null) return 1;
      if (vb === null) return -1;
      return (va < vb ? -1 : 1) * dir;
    });
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    archiveState.page = Math.min(archiveState.page, pages - 1);
    const slice = rows.slice(archiveState.page * PAGE, (archiveState.page + 1) * PAGE);
    count.textContent = `${rows.length} of ${data.rows.length} variants`;
    const head = h("tr", {}, shown.map((c) => h("th", {
      class: `sortable${archiveState.sort === c ? (archiveState.desc ? " desc" : " asc") : ""}`,
      dataset: { col: c },
      text: labels[c] || c,
      onclick: () => { archiveState.desc = archiveState.sort === c ? !archiveState.desc : ["val", "test", "train", "train_subset"].includes(c); archiveState.sort = c; render(); },
    })));
    const body = h("tbody", {}, slice.map((r) => h("tr", { class: `clickable${r[0] === data.champion ? " champion" : ""}`, dataset: { variant: r[0] }, onclick: () => { location.hash = `#/variant/${r[0]}`; } },
      shown.map((c) => {
        const v = r[ix[c]];
        if (c === "variant_id") return h("td", {}, variantLink(v), r[0] === data.champion ? h("span", { class: "star", title: "champion", text: " ★" }) : null);
        if (c === "parent_id") return h("td", {}, v ? variantLink(v) : "–");
        if (c === "state") return h("td", {}, stateBadge(v));
        if (c === "reason") return h("td", { class: "message", text: v || "", title: v || "" });
        if (c === "wall_per_instance") return h("td", { class: "num", text: v === null ? "–" : (v * 1000).toFixed(2) });
        return h("td", { class: typeof v === "number" ? "num" : "", text: fmt(v, 3) });
      }))));
    const pager = h("div", { class: "row pager" },
      h("button", { class: "small", text: "← prev", disabled: archiveState.page === 0, onclick: () => { archiveState.page--; render(); } }),
      h("span", { text: `page ${archiveState.page + 1} of ${pages}` }),
      h("button", { class: "small", text: "next →", id: "next-page", disabled: archiveState.page >= pages - 1, onclick: () => { archiveState.page++; render(); } }));
    container.replaceChildren(h("table", { class: "grid compact", id: "archive-table" }, h("thead", {}, head), body), pager);
  };
  stateSelect.addEventListener("change", () => { archiveState.state = stateSelect.value; archiveState.page = 0; render(); });
  search.addEventListener("input", () => { archiveState.q = search.value; archiveState.page = 0; render(); });
  minVal.addEventListener("input", () => { archiveState.minVal = minVal.value; archiveState.page = 0; render(); });
  render();
  return h("section", {},
    h("div", { class: "row between" }, h("h1", { text: `Archive of ${name}` }), count),
    h("div", { class: "row filters" }, search, stateSelect, minVal),
    container);
}

// -- lineage -----------------------------------------------------------------------------------
const lineageView = { scale: null, tx: 0, ty: 0, showFailed: true, key: null };
async function pageLineage(name) {
  const data = await api(`/api/runs/${enc(name)}/lineage`);
  const n = data.id.length;
  const canvas = h("canvas", { id: "lineage-canvas", class: "lineage", "aria-label": "lineage tree" });
  const tip = h("div", { class: "tooltip", hidden: true });
  const wrap = h("div", { class: "lineage-wrap" }, canvas, tip);
  const index = new Map(data.id.map((id, i) => [id, i]));
  const onPath = new Set(data.path);
  const vals = data.val.filter((v) => v !== null);
  const vlo = vals.length ? Math.min(...vals) : 0, vhi = vals.length ? Math.max(...vals) : 1;
  const gmax = Math.max(1, ...data.generation), rmax = Math.max(1, ...data.row);
  if (lineageView.key !== name) Object.assign(lineageView, { scale: null, tx: 0, ty: 0, key: name });
  let dpr = window.devicePixelRatio || 1;
  const unit = { x: 1, y: 1 };
  const fit = () => {
    const w = canvas.clientWidth, hh = canvas.clientHeight;
    unit.x = (w - 60) / gmax; unit.y = (hh - 40) / rmax;
    if (lineageView.scale === null) { lineageView.scale = 1; lineageView.tx = 30; lineageView.ty = 20; }
  };
  const px = (i) => lineageView.tx + data.generation[i] * unit.x * lineageView.scale;
  const py = (i) => lineageView.ty + data.row[i] * unit.y * lineageView.scale;
  const draw = () => {
    dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, hh = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hh * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(hh * dpr); }
    fit();
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hh);
    ctx.lineWidth = 0.7; ctx.strokeStyle = "#c7ccd4";
    ctx.beginPath();
    for (let i = 0; i < n; i++) {
      const p = data.parent[i];
      if (p === null || !index.has(p)) continue;
      if (!lineageView.showFailed && data.val[i] === null) continue;
      const j = index.get(p);
      ctx.moveTo(px(j), py(j)); ctx.lineTo(px(i), py(i));
    }
    ctx.stroke();
    ctx.lineWidth = 2.4; ctx.strokeStyle = "#dc2626"; ctx.beginPath();
    for (const id of data.path) {
      const i = index.get(id); const p = data.parent[i];
      if (p === null || !index.has(p)) continue;
      const j = index.get(p); ctx.moveTo(px(j), py(j)); ctx.lineTo(px(i), py(i));
    }
    ctx.stroke();
    const r = Math.max(1.5, Math.min(7, 3 * Math.sqrt(lineageView.scale)));
    for (let i = 0; i < n; i++) {
      const x = px(i), y = py(i);
      if (x < -10 || y < -10 || x > w + 10 || y > hh + 10) continue;
      const v = data.val[i];
      if (v === null) {
        if (!lineageView.showFailed) continue;
        ctx.strokeStyle = "#9ca3af"; ctx.lineWidth = 1; const d = r * 0.8;
        ctx.beginPath(); ctx.moveTo(x - d, y - d); ctx.lineTo(x + d, y + d); ctx.moveTo(x + d, y - d); ctx.lineTo(x - d, y + d); ctx.stroke();
        continue;
      }
      ctx.fillStyle = viridis(vhi > vlo ? (v - vlo) / (vhi - vlo) : 0.5);
      ctx.beginPath(); ctx.arc(x, y, onPath.has(data.id[i]) ? r * 1.6 : r, 0, Math.PI * 2); ctx.fill();
      if (onPath.has(data.id[i])) { ctx.strokeStyle = "#dc2626"; ctx.lineWidth = 1.5; ctx.stroke(); }
    }
    if (data.champion !== null) {
      const i = index.get(data.champion);
      ctx.fillStyle = "#dc2626"; ctx.font = "12px system-ui, sans-serif";
      ctx.fillText(`★ champion #${data.champion}`, px(i) + 8, py(i) - 8);
      canvas.dataset.champion = `${Math.round(px(i))},${Math.round(py(i))}`; // where to click it
    }
  };
  const nearest = (mx, my) => {
    let best = -1, bd = 144;
    for (let i = 0; i < n; i++) {
      if (!lineageView.showFailed && data.val[i] === null) continue;
      const dx = px(i) - mx, dy = py(i) - my, d = dx * dx + dy * dy;
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  };
  let drag = null, moved = false;
  canvas.addEventListener("mousedown", (e) => { drag = { x: e.clientX, y: e.clientY, tx: lineageView.tx, ty: lineageView.ty }; moved = false; });
  const onUp = () => { drag = null; };
  window.addEventListener("mouseup", onUp);
  canvas.addEventListener("mousemove", (e) => {
    const rect = canvas.getBoundingClientRect();
    if (drag) {
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
      lineageView.tx = drag.tx + dx; lineageView.ty = drag.ty + dy; draw(); return;
    }
    const i = nearest(e.clientX - rect.left, e.clientY - rect.top);
    if (i < 0) { tip.hidden = true; canvas.style.cursor = "grab"; return; }
    canvas.style.cursor = "pointer";
    tip.hidden = false;
    tip.textContent = `#${data.id[i]} · generation ${data.generation[i]} · ${data.state[i]}${data.val[i] !== null ? ` · val ${data.val[i].toFixed(4)}` : ""}`;
    tip.style.left = `${e.clientX - rect.left + 12}px`; tip.style.top = `${e.clientY - rect.top + 12}px`;
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  canvas.addEventListener("click", (e) => {
    if (moved) return;
    const rect = canvas.getBoundingClientRect();
    const i = nearest(e.clientX - rect.left, e.clientY - rect.top);
    if (i >= 0) location.hash = `#/variant/${data.id[i]}`;
  });
  const zoom = (factor, cx, cy) => {
    const s0 = lineageView.scale, s1 = Math.min(400, Math.max(0.2, s0 * factor));
    lineageView.tx = cx - ((cx - lineageView.tx) * s1) / s0;
    lineageView.ty = cy - ((cy - lineageView.ty) * s1) / s0;
    lineageView.scale = s1; draw();
  };
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const rect = canvas.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX - rect.left, e.clientY - rect.top);
  }, { passive: false });
  const center = () => [canvas.clientWidth / 2, canvas.clientHeight / 2];
  const failedToggle = h("input", { type: "checkbox", id: "show-failed", checked: lineageView.showFailed });
  failedToggle.addEventListener("change", () => { lineageView.showFailed = failedToggle.checked; draw(); });
  const section = h("section", {},
    h("div", { class: "row between" },
      h("h1", { text: `Lineage of ${name}` }),
      h("div", { class: "row" },
        h("label", { class: "row" }, failedToggle, "failed / invalid / pruned"),
        h("button", { class: "small", text: "+", title: "zoom in", id: "zoom-in", onclick: () => zoom(1.5, ...center()) }),
        h("button", { class: "small", text: "−", title: "zoom out", id: "zoom-out", onclick: () => zoom(1 / 1.5, ...center()) }),
        h("button", { class: "small", text: "reset", onclick: () => { lineageView.scale = null; draw(); } }))),
    h("p", { class: "muted" }, `${n} variants; x: generation, colour: val score (`, h("span", { class: "swatch lo" }), ` ${fmt(vlo)} → `, h("span", { class: "swatch hi" }), ` ${fmt(vhi)}), champion's path in red. Drag to pan, wheel to zoom, click a node to open it.`),
    wrap);
  requestAnimationFrame(draw);
  const onResize = () => draw();
  window.addEventListener("resize", onResize);
  section.dispose = () => {
    window.removeEventListener("resize", onResize);
    window.removeEventListener("mouseup", onUp);
  };
  return section;
}

// -- events ------------------------------------------------------------------------------------
const eventFilters = { group: "", kind: "", variant: "", q: "" };
async function pageEvents(name) {
  const params = () => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(eventFilters)) if (v) p.set(k, v);
    return p;
  };
  const data = await api(`/api/runs/${enc(name)}/events?${params()}`);
  const groups = INFO?.event_groups || {};
  const group = h("select", { id: "event-group", "aria-label": "group" }, h("option", { value: "", text: "all events" }), Object.keys(groups).map((g) => h("option", { value: g, text: g })));
  group.value = eventFilters.group;
  const kinds = eventFilters.group ? groups[eventFilters.group] : Object.values(groups).flat();
  const kind = h("select", { id: "event-kind", "aria-label": "kind" }, h("option", { value: "", text: "any kind" }), kinds.map((k) => h("option", { value: k, text: k })));
  kind.value = eventFilters.kind;
  const variant = h("input", { type: "number", min: 1, id: "event-variant", placeholder: "variant id", value: eventFilters.variant });
  const q = h("input", { type: "search", id: "event-text", placeholder: "text…", value: eventFilters.q });
  const apply = () => {
    Object.assign(eventFilters, { group: group.value, kind: kind.value, variant: variant.value, q: q.value });
    if (eventFilters.kind && eventFilters.group && !groups[eventFilters.group].includes(eventFilters.kind)) eventFilters.kind = "";
    refresh();
  };
  group.addEventListener("change", apply); kind.addEventListener("change", apply);
  variant.addEventListener("change", apply); q.addEventListener("change", apply);
  const holder = h("div", {}, eventsTable(data.events));
  let next = data.next_before;
  const more = h("button", { class: "small", text: "older events", id: "older", hidden: !next });
  more.addEventListener("click", async () => {
    const p = params(); p.set("before", next);
    const older = await api(`/api/runs/${enc(name)}/events?${p}`);
    holder.append(eventsTable(older.events));
    next = older.next_before; more.hidden = !next;
  });
  return h("section", {}, h("h1", { text: `Events of ${name}` }), h("div", { class: "row filters" }, group, kind, variant, q), holder, more);
}

// -- variant -----------------------------------------------------------------------------------
const TABS = [["diff", "Diff"], ["files", "Files"], ["model", "Model"], ["evaluation", "Evaluation"], ["meta", "Meta agent"], ["llm", "LLM transcript"], ["try", "Try it"]];
async function pageVariant(id, tab) {
  const v = await api(`/api/variants/${id}`);
  tab = tab || (v.parent_id ? "diff" : "files");
  const header = h("div", { class: "run-header" },
    h("h1", {}, `Variant #${v.id} `, stateBadge(v.state), v.is_champion ? h("span", { class: "badge champion-badge", text: "★ champion" }) : null),
    h("p", { class: "muted" },
      "run ", h("a", { href: `#/run/${enc(v.run.name)}`, text: v.run.name }), ` · generation ${v.generation} · parent `,
      v.parent_id ? variantLink(v.parent_id) : "none",
      v.children.length ? [" · children ", v.children.slice(0, 12).map((c, i) => [i ? ", " : "", variantLink(c)]), v.children.length > 12 ? ` … (${v.children.length})` : ""] : null),
    h("div", { class: "scores" }, ["train_subset", "train", "val", "test"].filter((k) => k in v.scores).map((k) => h("span", { class: "score" }, h("b", { text: k }), " ", fmt(v.scores[k], 4)))),
    v.reason ? h("div", { class: `reason ${v.state}`, id: "reason" }, h("b", { text: "reason: " }), v.reason) : null,
    decisions(v));
  const tabs = h("nav", { class: "tabs" }, TABS.filter(([key]) => key !== "model" || v.model).map(([key, label]) => h("a", { href: `#/variant/${v.id}/${key}`, class: key === tab ? "active" : "", text: label, dataset: { tab: key } })));
  let body;
  if (tab === "diff") body = await tabDiff(v);
  else if (tab === "files") body = await tabFiles(v);
  else if (tab === "model") body = tabModel(v);
  else if (tab === "evaluation") body = tabEvaluation(v);
  else if (tab === "meta") body = tabMeta(v);
  else if (tab === "llm") body = await tabLLM(v);
  else if (tab === "try") body = await tabTry(v);
  else body = h("p", { text: "unknown tab" });
  return h("section", {}, header, tabs, h("div", { class: "tab-body" }, body));
}

function decisions(v) {
  const act = (decision, label, cls, ask) => h("button", { class: `small ${cls}`, text: label, dataset: { decision }, onclick: async () => {
    let body = {};
    if (ask) {
      const answer = await promptDialog(label, ask, [{ name: "note", label: "note (recorded)", value: "" }], label);
      if (!answer) return;
      body = { note: answer.note || null };
    }
    try {
      await api(`/api/variants/${v.id}/${decision}`, { method: "POST", body });
      toast(`${label}: variant #${v.id}`);
    } catch (e) { toast(e.message, "error"); }
    refresh();
  } });
  if (v.state === "pending") {
    return h("div", { class: "row decisions" }, h("b", { text: "This child waits for your approval:" }),
      act("approve", "Approve", "primary", `Approve variant #${v.id}? It may then be a parent and the champion.`),
      act("reject", "Reject", "danger-outline", `Reject variant #${v.id}? It will never be a parent or the champion.`));
  }
  if (v.state === "complete") {
    return h("div", { class: "row decisions" },
      act("pin", "Pin as next parent", "", null),
      v.parent_id ? act("ban", "Ban this lineage", "danger-outline", `Ban variant #${v.id} and its descendants as parents?`) : null);
  }
  return null;
}

function codeTable(lines, numbers) {
  const table = h("table", { class: "code hl" });
  const body = h("tbody");
  lines.forEach((line, i) => {
    const td = h("td", { class: "src" });
    td.innerHTML = line || " "; // escaped and highlighted by the server
    body.append(h("tr", {}, numbers ? h("td", { class: "ln", text: i + 1 }) : null, td));
  });
  table.append(body);
  return table;
}

async function tabDiff(v) {
  if (!v.program_id) return h("p", { class: "muted", text: "this variant has no program (its improvement failed)" });
  const d = await api(`/api/variants/${v.id}/diff`);
  if (!d.files.length) return h("p", { class: "muted", text: d.against ? `identical to #${d.against}` : "no files" });
  // A diff over the size limits is not computed: the programs can be downloaded instead.
  const download = (label) => h("a", { href: d.download, download: "", class: "download", text: label });
  const tooLarge = d.too_large || d.files.some((f) => f.too_large);
  return h("div", { id: "diff" },
    h("p", { class: "muted" }, d.against ? ["changes from ", variantLink(d.against), ` to #${v.id}`] : "the seed program (everything is new)"),
    tooLarge ? h("p", { class: "too-large", id: "diff-too-large" },
      d.too_large ? `This diff is too large to show here: ${d.too_large}. ` : "Some files are too large to show here. ",
      download("Download both programs (.zip)"), " and compare them locally (diff -ru a b), or run ",
      h("code", { text: `hyperagents diff ${v.id} --out FILE` }), ".") : null,
    d.files.map((f) => {
      const headerRow = h("div", { class: "file-header" }, h("b", { text: f.path }), ` ${f.status}`, f.added !== undefined ? h("span", { class: "stat" }, h("span", { class: "add", text: ` +${f.added}` }), h("span", { class: "del", text: ` −${f.removed}` })) : null);
      if (f.binary) return h("div", { class: "diff-file" }, headerRow, h("p", { class: "muted binary-note", text: f.note }));
      if (f.too_large) return h("div", { class: "diff-file" }, headerRow, h("p", { class: "muted", text: d.too_large ? `not shown (${f.size} bytes)` : `too large to show: ${f.too_large}` }));
      const table = h("table", { class: "code diff hl" });
      const body = h("tbody");
      for (const hunk of f.hunks) {
        body.append(h("tr", { class: "hunk" }, h("td", { colspan: 4, text: hunk.header })));
        for (const [kind, a, b2, html] of hunk.lines) {
          const td = h("td", { class: "src" });
          td.innerHTML = html || " "; // escaped and highlighted by the server
          body.append(h("tr", { class: kind === "+" ? "add" : kind === "-" ? "del" : "ctx" },
            h("td", { class: "ln", text: a ?? "" }), h("td", { class: "ln", text: b2 ?? "" }), h("td", { class: "sign", text: kind }), td));
        }
      }
      table.append(body);
      return h("div", { class: "diff-file" }, headerRow, table);
    }));
}

async function tabFiles(v) {
  if (!v.files.length) return h("p", { class: "muted", text: "this variant has no program" });
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const chosen = params.get("path") || (v.files.find((f) => f.path === "task_agent.py") || v.files[0]).path;
  const f = await api(`/api/variants/${v.id}/file?path=${enc(chosen)}`);
  return h("div", { class: "files" },
    h("ul", { class: "file-list" }, v.files.map((x) => h("li", {}, h("a", { href: `#/variant/${v.id}/files?path=${enc(x.path)}`, class: x.path === chosen ? "active" : "", text: x.path }), h("span", { class: "muted", text: ` ${x.size} B` })))),
    h("div", { class: "file-view" }, h("div", { class: "file-header" }, h("b", { text: f.path }), ` ${f.size} bytes`),
      f.binary ? h("p", { class: "muted", text: "binary file" }) : codeTable(f.lines, true)));
}

function tabModel(v) {
  const m = v.model;
  if (!m) return h("p", { class: "muted", text: "this variant carries no model" });
  const rows = m.files.map((f) => h("tr", {}, h("td", { text: f.path }), h("td", { class: "num", text: `${f.size} B` }),
    h("td", {}, h("code", { text: f.sha256.slice(0, 16), title: f.sha256 })), h("td", { class: "muted", text: f.binary ? "binary" : "text" })));
  return h("div", { id: "model" },
    h("p", { class: "muted", text: `${m.files.length} files, ${m.size} bytes` }),
    h("table", { class: "grid model-files" }, h("thead", {}, h("tr", {}, ["file", "size", "sha256", ""].map((c) => h("th", { text: c })))), h("tbody", {}, rows)),
    h("h3", { text: "model/config.json" }),
    m.config !== null ? h("pre", { class: "json model-config", text: m.config }) : h("p", { class: "muted", text: m.config_error || "no config.json" }));
}

function tabEvaluation(v) {
  if (!v.evaluations.length) return h("p", { class: "muted", text: "not evaluated" });
  return h("div", {}, v.evaluations.map((e) => {
    const failing = h("input", { type: "checkbox" });
    const rows = h("tbody");
    const max = Math.max(...e.results.map((r) => r.score ?? 0));
    const fill = () => {
      rows.replaceChildren(...e.results.filter((r) => !failing.checked || (r.score ?? 0) < max || r.error).map((r) => h("tr", { class: r.error ? "error" : "" },
        h("td", { text: r.id }), h("td", { class: "num", text: fmt(r.score, 3) }),
        h("td", { class: "message", text: r.feedback || "" }),
        h("td", { class: "mono", text: r.error ? r.error : JSON.stringify(r.output)?.slice(0, 300) ?? "" }),
        h("td", { class: "num", text: fmt(r.wall, 3) }))));
    };
    failing.addEventListener("change", fill);
    fill();
    const m = e.metrics;
    return h("div", { class: "card stage", dataset: { stage: e.stage } },
      h("h3", {}, `${e.stage} (${e.split}): ${fmt(e.score, 4)} on ${e.n} instances`),
      h("p", { class: "muted", text: `wall ${fmt(m.wall_seconds, 2)} s · cpu ${fmt(m.cpu_seconds, 2)} s · peak ${fmt(m.peak_memory_mb, 1)} MiB · errors ${m.errors ?? 0} · timeouts ${m.timeouts ?? 0}${m.sandbox_reason ? ` · sandbox: ${m.sandbox_reason}` : ""}${e.engine ? ` · engine ${e.engine}, worker ${e.worker ?? "–"}` : ""}` }),
      h("label", { class: "row" }, failing, "only instances below the best score or with errors"),
      h("div", { class: "scroll" }, h("table", { class: "grid compact" }, h("thead", {}, h("tr", {}, ["instance", "score", "feedback", "output / error", "wall s"].map((c) => h("th", { text: c })))), rows)));
  }));
}

function tabMeta(v) {
  const info = v.meta_info || {};
  return h("div", {},
    v.engine ? h("p", { class: "muted", id: "meta-engine", text: `meta agent run by engine ${v.engine}, worker ${v.worker ?? "–"}` }) : null,
    card("What the meta agent reported", Object.keys(info).length ? h("pre", { class: "json", text: JSON.stringify(info, null, 2) }) : h("p", { class: "muted", text: "nothing" })),
    v.metrics.improve ? card("Improvement step", h("pre", { class: "json", text: JSON.stringify(v.metrics.improve, null, 2) })) : null,
    v.training ? trainingCard(v.training) : null,
    card("Meta agent's log", v.meta_log ? h("pre", { class: "log", id: "meta-log", text: v.meta_log }) : h("p", { class: "muted", text: "no log recorded" })));
}

// The variant's lever and weight update: what it chose, its data sources and loss curve.
function trainingCard(t) {
  const chose = t.chosen && t.chosen !== t.lever ? ` (chose ${t.chosen}: ${t.reduced || ""})` : "";
  const sources = Object.entries(t.sources || {}).map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  const W = 420, H = 90, points = t.curve || [];
  let chart = null;
  if (points.length > 1) {
    const losses = points.map((p) => p.loss), lo = Math.min(...losses), hi = Math.max(...losses) || 1;
    const last = points[points.length - 1].step || 1;
    const d = points.map((p, i) => `${i ? "L" : "M"}${(4 + (p.step / last) * (W - 8)).toFixed(1)},${(4 + (1 - (p.loss - lo) / (hi - lo || 1)) * (H - 8)).toFixed(1)}`).join(" ");
    chart = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart training-curve", role: "img", "aria-label": "training loss" }, s("path", { d, class: "line-best" }));
  }
  return card("Training", h("div", { id: "training" },
    h("p", { text: `lever ${t.lever}${chose} · training ${t.state}${t.reason ? `: ${t.reason}` : ""}` }),
    h("p", { class: "muted", text: `data: ${t.examples ?? 0} examples (${sources})` }),
    chart, points.length ? h("p", { class: "muted", text: `loss ${fmt(points[0].loss, 4)} → ${fmt(points[points.length - 1].loss, 4)}` }) : null));
}

async function tabLLM(v) {
  const data = await api(`/api/variants/${v.id}/llm`);
  if (!data.calls.length) return h("p", { class: "muted", text: "no LLM calls for this variant" });
  const u = v.llm;
  return h("div", {},
    h("p", { class: "muted", text: `${u.calls} calls (${u.cached} cached, ${u.errors} failed attempts), ${u.prompt_tokens + u.completion_tokens} tokens, ${money(u.cost)}` }),
    data.calls.map(callView));
}

function callView(c) {
  const summary = h("summary", {}, h("b", { text: c.purpose || "call" }),
    ` ${c.provider}:${c.model} · attempt ${c.attempt}${c.cached ? " · cached" : ""} · ${c.prompt_tokens}+${c.completion_tokens} tokens · ${money(c.cost)} · ${fmt(c.latency, 2)} s `,
    c.error ? h("span", { class: "badge state-failed", text: "error" }) : null);
  const messages = c.messages.map((m) => h("div", { class: `msg role-${m.role}` },
    h("div", { class: "role", text: m.role }),
    h("pre", { text: typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 2) })));
  const answer = c.error
    ? h("div", { class: "msg role-error" }, h("div", { class: "role", text: "error" }), h("pre", { text: c.error }))
    : h("div", { class: "msg role-reply" }, h("div", { class: "role", text: "reply" }), h("pre", { text: c.reply ?? "" }));
  return h("details", { class: "call card" }, summary, messages, answer);
}

async function tabTry(v) {
  if (!v.program_id) return h("p", { class: "muted", text: "this variant has no program to try" });
  const info = await api(`/api/variants/${v.id}/try`);
  const input = h("textarea", { id: "try-input", rows: 10, spellcheck: "false" });
  input.value = JSON.stringify(info.example, null, 2);
  const out = h("div", { id: "try-output" });
  const button = h("button", { class: "primary", id: "try-run", text: "Run task agent" });
  button.addEventListener("click", async () => {
    let inputs;
    try { inputs = JSON.parse(input.value); } catch (e) { toast(`the input is not JSON: ${e.message}`, "error"); return; }
    button.disabled = true; out.replaceChildren(h("p", { class: "muted", text: "running in the sandbox…" }));
    try {
      const r = await api(`/api/variants/${v.id}/try`, { method: "POST", body: { inputs } });
      out.replaceChildren(...[
        h("p", {}, h("span", { class: `badge ${r.ok ? "state-complete" : "state-failed"}`, text: r.ok ? "ok" : r.outcome }), ` in ${fmt(r.wall, 3)} s (sandbox: ${r.sandbox})`),
        r.error ? h("div", { class: "reason failed" }, h("b", { text: "error: " }), r.error) : null,
        h("h4", { text: "output" }), h("pre", { class: "json", id: "try-result", text: JSON.stringify(r.output, null, 2) ?? "null" }),
        r.stdout ? [h("h4", { text: "stdout" }), h("pre", { class: "log", text: r.stdout })] : null,
        r.stderr ? [h("h4", { text: "stderr" }), h("pre", { class: "log", text: r.stderr })] : null,
      ].flat().filter(Boolean));
    } catch (e) { out.replaceChildren(h("div", { class: "reason failed", text: e.message })); }
    button.disabled = false;
  });
  return h("div", { class: "card" },
    h("p", {}, `Run this variant's task agent (`, h("code", { text: "task_agent.solve" }), `) on an input of task ${info.task}, in the run's sandbox with a ${info.instance_timeout} s limit. No label, no score, no model: the input is prefilled from a train instance.`),
    input, h("div", { class: "row" }, button), out);
}

// -- services ----------------------------------------------------------------------------------
// The services `hyperagents serve` runs: traffic, quality over time, drift, the autopilot's
// trigger and plans, the A/B state, and a person's decisions (promote, roll back, force,
// suppress). These pages poll every 10 s (a service changes with every request; reading 20,000 requests
// takes about a second).
const SERVICE_POLL_MS = 10000;

function pct(x) {
  return x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`;
}

function seconds(x) {
  return x === null || x === undefined ? "–" : `${(x * 1000).toFixed(1)} ms`;
}

function serviceBadge(status) {
  return h("span", { class: `badge status-${status === "serving" ? "running" : status}`, text: status });
}

function candidateText(row) {
  if (row.candidate === null) return "none";
  const share = row.candidate_state === "ab" ? ` ${pct(row.candidate_share)} of traffic` : "";
  return `#${row.candidate} ${row.candidate_state}${share}`;
}

function polling(section) {
  const timer = setInterval(() => refresh({ quiet: true }), SERVICE_POLL_MS);
  section.dispose = () => clearInterval(timer);
  return section;
}

async function pageServices() {
  const data = await api("/api/services");
  const rows = data.services.map((r) => h("tr", { class: "clickable", dataset: { service: r.name }, onclick: () => { location.hash = `#/service/${enc(r.name)}`; } },
    h("td", {}, h("a", { href: `#/service/${enc(r.name)}`, text: r.name })),
    h("td", {}, r.run ? h("a", { href: `#/run/${enc(r.run)}`, text: r.run, onclick: (e) => e.stopPropagation() }) : "–"),
    h("td", {}, serviceBadge(r.status)),
    h("td", { text: r.stage || "–" }),
    h("td", {}, variantLink(r.champion)),
    h("td", { text: candidateText(r) }),
    h("td", { class: "num", text: r.requests.served }),
    h("td", { class: "num", text: r.requests.with_feedback }),
    h("td", { class: "num", text: r.requests.errors }),
    h("td", { text: ago(r.updated_at), title: when(r.updated_at) })));
  return polling(h("section", {},
    h("h1", { text: "Services" }),
    data.services.length === 0
      ? h("p", { class: "empty", text: "No services in this storage yet. Serve a run's champion with `hyperagents serve RUN`." })
      : h("table", { class: "grid", id: "services-table" },
        h("thead", {}, h("tr", {}, ["service", "run", "status", "autopilot", "champion", "candidate", "requests", "feedback", "errors", "updated"].map((c) => h("th", { text: c })))),
        h("tbody", {}, rows))));
}

async function pageService(name) {
  const base = `/api/services/${enc(name)}`;
  const [d, series, log] = await Promise.all([api(base), api(`${base}/series?buckets=60`), api(`${base}/events?limit=50`)]);
  const row = d.service;
  return polling(h("section", { id: "service" },
    h("div", { class: "run-header" },
      h("h1", {}, row.name, " ", serviceBadge(row.status)),
      h("p", { class: "muted" }, "serves run ", row.run ? h("a", { href: `#/run/${enc(row.run)}`, text: row.run }) : `#${row.run_id}`,
        " · champion ", variantLink(row.champion), ` · candidate ${candidateText(row)}`,
        ` · ${row.requests.served} requests, ${row.requests.with_feedback} with feedback, ${row.requests.errors} errors, ${row.requests.shadow} shadow answers`),
      d.task_problem ? h("p", { class: "reason failed", text: `${d.task_problem}: only feedback scores count as quality` }) : null),
    h("div", { class: "cards" }, abCard(name, row, d.ab), autopilotCard(name, d.autopilot), monitorCard(d.monitor)),
    card("Traffic and quality over time", serviceChart(series)),
    card("Input drift", driftTable(d.monitor)),
    card("Plans", planningCost(d.autopilot.planning), plansView(d.autopilot.plans), wantedView(d.autopilot.wanted || [])),
    card("Log", serviceEvents(base, log))));
}

async function serviceAction(url, body, done) {
  try {
    await api(url, { method: "POST", body });
    toast(done);
  } catch (e) { toast(e.message, "error"); }
  refresh();
}

function abCard(name, row, ab) {
  const live = ab.live;
  const answering = ab.state === "shadow" || ab.state === "ab";
  const decide = (promote) => h("button", {
    class: `small ${promote ? "primary" : "danger-outline"}`, id: promote ? "promote" : "rollback",
    text: promote ? "Promote" : "Roll back",
    onclick: async () => {
      const answer = await promptDialog(promote ? "Promote the candidate" : "Roll back the candidate",
        promote ? `Make candidate #${ab.candidate} the champion of ${name}? It answers every request from now on.`
          : `Roll back candidate #${ab.candidate} of ${name}? The champion #${row.champion} keeps answering.`,
        [{ name: "note", label: "note (recorded)", value: "" }], promote ? "Promote" : "Roll back");
      if (!answer) return;
      await serviceAction(`/api/services/${enc(name)}/decision`, { promote, note: answer.note || null },
        promote ? `promoted #${ab.candidate}` : `rolled back #${ab.candidate}`);
    },
  });
  const rec = ab.recorded;
  return h("div", { class: "card", id: "ab-state" }, h("h3", { text: "A/B test" }),
    kv([["candidate", ab.candidate !== null ? h("span", {}, variantLink(ab.candidate), ` ${ab.state}`) : "none"],
      ab.state === "ab" ? ["share", pct(ab.share)] : null,
      live ? ["phase", h("span", { id: "ab-phase", text: live.phase })] : null,
      live ? ["counts", h("span", { id: "ab-counts", text: Object.entries(live.counts).map(([k, v]) => `${k} ${v}`).join(" · ") })] : null,
      live ? ["quality", ["champion", "candidate", "shadow"].filter((a) => live.means[a]?.n).map((a) => `${a} ${fmt(live.means[a].mean)} (${live.means[a].n})`).join(" · ") || "no feedback yet"] : null,
      live ? ["effect", live.interval ? `${fmt(live.estimate)} [${fmt(live.interval[0])}, ${fmt(live.interval[1])}]` : `not yet (${live.settings.min_samples} values per arm)`] : null,
      live ? ["verdict", h("span", { id: "ab-verdict", text: `${live.verdict}${live.reason ? `: ${live.reason}` : ""}` })] : null,
      rec ? ["last decision", `${rec.kind.replace("autopilot.", "")} ${ago(rec.created_at)}${rec.message ? `: ${rec.message}` : ""}`] : null]),
    live ? h("p", { class: "muted", text: `replayed over the ${live.requests} requests since #${live.since_request} with the default test settings` }) : null,
    answering ? h("div", { class: "row decisions" }, decide(true), decide(false)) : null);
}

function autopilotCard(name, pilot) {
  const t = pilot.trigger;
  const command = (override, label, cls, message) => h("button", {
    class: `small ${cls}`, text: label, dataset: { override },
    onclick: async () => {
      if (!(await confirmDialog(label, message, { action: label }))) return;
      await serviceAction(`/api/services/${enc(name)}/override`, { override }, `${label}: asked the autopilot`);
    },
  });
  const pending = pilot.pending.length ? pilot.pending[0].data.override : null;
  return h("div", { class: "card", id: "autopilot" }, h("h3", { text: "Autopilot" }),
    pilot.stage === null
      ? h("p", { class: "muted", text: "no autopilot has recorded a state for this service (serve it with the autopilot to improve it in place)" })
      : kv([["stage", h("span", { id: "autopilot-stage", text: pilot.stage })], ["improvements", pilot.improvements],
        ["override", h("span", { id: "override", text: pilot.override })],
        t ? ["evidence", `${t.feedback_since} feedback values (needs ${t.policy.min_feedback})`] : null,
        t ? ["cool-down", `${duration(t.policy.cooldown_s)}; last start ${t.starts.length ? ago(new Date(t.starts[t.starts.length - 1] * 1000).toISOString()) : "never"}`] : null,
        t ? ["budget", `${t.starts.length} improvements${t.policy.max_improvements != null ? ` of ${t.policy.max_improvements}` : ""}, ${money(t.spent_usd)}${t.policy.max_cost_usd != null ? ` of ${money(t.policy.max_cost_usd)}` : ""}`] : null,
        ["recorded", ago(pilot.recorded_at)]]),
    pending ? h("p", { class: "muted", id: "pending-command", text: `waiting for the autopilot to take: ${pending} (${pilot.pending.length} pending)` }) : null,
    h("div", { class: "row decisions" },
      command("force", "Force improvement", "", `Ask the autopilot of ${name} to start an improvement at its next step, whatever its trigger says?`),
      pilot.override === "suppress" || pending === "suppress"
        ? command("none", "Resume improvements", "", `Let the autopilot of ${name} improve again when its trigger fires?`)
        : command("suppress", "Suppress improvements", "danger-outline", `Stop the autopilot of ${name} from starting improvements until resumed?`)));
}

function monitorCard(m) {
  const w = m.window;
  return h("div", { class: "card", id: "monitor" }, h("h3", { text: "Monitor (latest answers)" }),
    kv([["quality", `${fmt(w.quality)} over ${w.quality_n} values`],
      ["goal", m.goal.kind === "threshold" ? `hold ≥ ${m.goal.threshold}` : "maximise"],
      ["degraded", h("span", { class: `badge ${m.degraded ? "state-failed" : "state-complete"}`, text: m.degraded ? "yes" : "no" })],
      ["latency", `p50 ${seconds(w.latency_p50_s)} · p99 ${seconds(w.latency_p99_s)}`],
      ["errors", pct(w.error_rate)], ["cost", `${money(w.cost_usd_mean)} a request`],
      ["window", `${w.requests} answers since request #${m.epoch_from}`]]),
    m.problem ? h("p", { class: "muted", text: m.problem }) : null);
}

function driftTable(m) {
  if (!m.drift.length) return h("p", { class: "muted", text: `no drift figures yet (the task declares no input features, or fewer than the reference and the window's answers: ${m.drift_reference} in the reference)` });
  return h("table", { class: "grid compact", id: "drift-table" },
    h("thead", {}, h("tr", {}, ["feature", "kind", "PSI", "KS D", "KS p", "unseen", "drifted"].map((c) => h("th", { text: c })))),
    h("tbody", {}, m.drift.map((f) => h("tr", { class: f.drifted ? "error" : "" },
      h("td", { text: f.name }), h("td", { text: f.kind }), h("td", { class: "num", text: fmt(f.psi) }),
      h("td", { class: "num", text: fmt(f.ks_statistic) }), h("td", { class: "num", text: fmt(f.ks_pvalue, 4) }),
      h("td", { class: "num", text: fmt(f.unseen_rate) }),
      h("td", { text: f.drifted ? `yes: ${f.reasons.join("; ")}` : "no" })))));
}

function plansView(plans) {
  if (!plans.length) return h("p", { class: "muted", text: "no improvement planned yet" });
  return h("div", { id: "plans" }, plans.map((step) => {
    const record = step.plan || {};
    const plan = record.plan || {};
    const check = step.check || { met: false, results: [] };
    const diagnosis = plan.diagnosis || {};
    return h("div", { class: "card plan" },
      h("h4", {}, `Plan ${record.attempt ?? ""} (${record.source || "planner"}) `,
        h("span", { class: `badge ${check.met ? "state-complete" : "state-failed"}`, text: check.met ? "criteria met" : "criteria unmet" }),
        step.run_id ? [" · improvement run ", h("a", { href: `#/run/${step.run_id}`, text: `#${step.run_id}` })] : null),
      h("p", { text: diagnosis.summary || JSON.stringify(diagnosis) }),
      plan.scope ? h("p", { class: "muted scope", text: `live data since ${plan.scope.since || "the first example"}; the task's own train and val ${plan.scope.own_data === "stale" ? "stale: information only" : "used"}` }) : null,
      record.error ? h("p", { class: "reason failed", text: record.error }) : null,
      diagnosis.llm ? h("p", { class: "muted", text: diagnosis.llm.used ? "planned with the model" : `the model's plan was not used: ${diagnosis.llm.reason || ""}` }) : null,
      h("ul", { class: "plain" }, (plan.actions || []).map((a) => h("li", { text: `${a.kind}: ${JSON.stringify(Object.fromEntries(Object.entries(a).filter(([k]) => k !== "kind")))}` }))),
      (step.data || []).length ? h("ul", { class: "plain data-actions" }, step.data.map((d) => h("li", { text: d.source === "people" ? `people: ${d.wanted.length} requests want a label` : `${d.source}: ${d.kept} of ${d.asked} labelled${(d.refused || []).length ? ` (${d.refused[0]})` : ""}` }))) : null,
      check.results.length ? h("table", { class: "grid compact" },
        h("thead", {}, h("tr", {}, ["criterion", "actual", "target", "met"].map((c) => h("th", { text: c })))),
        h("tbody", {}, check.results.map((r) => h("tr", { class: r.met || (r.criterion && r.criterion.gate === false) ? "" : "error" },
          h("td", { text: typeof r.criterion === "string" ? r.criterion : JSON.stringify(r.criterion) }),
          h("td", { class: "num", text: fmt(r.actual) }), h("td", { class: "num", text: fmt(r.target) }),
          h("td", { text: (r.criterion && r.criterion.gate === false ? "information, " : "") + (r.met ? "met" : `unmet${r.reason ? `: ${r.reason}` : ""}`) })))))
        : null);
  }));
}

function planningCost(p) {
  if (!p || !p.calls) return null;
  const orphaned = p.orphaned ? `; ${p.orphaned} orphaned ($${p.orphaned_cost.toFixed(4)}: their run never started; ${p.waiting} waiting for the run that carries their plan, ${p.abandoned} abandoned)` : "";
  return h("p", { class: "muted", id: "planning-cost", text: `planning: ${p.calls} model calls, ${p.prompt_tokens + p.completion_tokens} tokens, $${p.cost.toFixed(4)}${orphaned}` });
}

function wantedView(wanted) {
  if (!wanted.length) return null;
  return h("div", { id: "wanted" }, h("h4", { text: `Labels wanted (${wanted.length})` }),
    h("p", { class: "muted", text: "requests a plan asked people to label: hyperagents feedback REQUEST_ID --label ..." }),
    h("ul", { class: "plain" }, wanted.map((w) => h("li", { text: `request ${w.request_id} (asked ${when(w.asked_at)}, run #${w.run_id})` }))));
}

function serviceEvents(base, first) {
  const table = (events) => h("table", { class: "grid compact events" },
    h("thead", {}, h("tr", {}, ["time", "kind", "message"].map((c) => h("th", { text: c })))),
    h("tbody", {}, events.map((e) => h("tr", {},
      h("td", { text: when(e.created_at), class: "nowrap" }),
      h("td", {}, h("span", { class: "kind", text: e.kind })),
      h("td", { text: e.message, class: "message", title: JSON.stringify(e.data).slice(0, 2000) })))));
  if (!first.events.length) return h("p", { class: "muted", text: "nothing logged yet" });
  const holder = h("div", { id: "service-log" }, table(first.events));
  let next = first.next_before;
  const more = h("button", { class: "small", text: "older entries", id: "service-log-older" });
  more.addEventListener("click", async () => {
    try {
      const older = await api(`${base}/events?limit=50&before=${next}`);
      holder.append(table(older.events));
      next = older.next_before;
      if (!next) more.remove();
    } catch (e) { toast(e.message, "error"); }
  });
  return h("div", {}, holder, next ? more : null);
}

// Quality per arm (lines, left axis 0..1) over request counts (bars), with the autopilot's
// decisions as vertical marks.
function serviceChart(series) {
  const buckets = series.buckets;
  if (!buckets.length) return h("p", { class: "muted", text: "no requests yet" });
  const W = 900, H = 300, L = 48, R = 48, T = 12, B = 34;
  const t0 = new Date(series.start).getTime(), t1 = new Date(series.end).getTime();
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v) * (H - T - B);
  const most = Math.max(1, ...buckets.map((b) => b.requests + b.shadow));
  const yc = (n) => H - B - (n / most) * (H - T - B) * 0.45;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart service-chart", id: "service-chart", role: "img", "aria-label": "traffic and quality over time" });
  for (let i = 0; i <= 4; i++) {
    const v = i / 4;
    svg.append(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "gridline" }), s("text", { x: L - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, v.toFixed(2)));
  }
  svg.append(s("text", { x: W - R + 6, y: yc(most) + 4, class: "tick" }, String(most)), s("text", { x: W - R + 6, y: H - B + 4, class: "tick" }, "0"));
  const bw = Math.max(1, (W - L - R) / buckets.length - 1);
  buckets.forEach((b) => {
    const bx = x(new Date(b.start).getTime());
    svg.append(s("rect", { x: bx, y: yc(b.requests), width: bw, height: H - B - yc(b.requests), class: "bar" },
      s("title", {}, `${when(b.start)}: ${b.requests} requests, ${b.feedback} with feedback, ${b.errors} errors, ${b.shadow} shadow, p50 ${seconds(b.latency_p50_s)}`)));
    if (b.errors) svg.append(s("rect", { x: bx, y: yc(b.errors), width: bw, height: H - B - yc(b.errors), class: "bar-error" }));
  });
  for (const arm of ["champion", "candidate", "shadow"]) {
    let path = "";
    buckets.forEach((b) => {
      const v = b.quality[arm];
      if (v === null) return;
      const cx = x((new Date(b.start).getTime() + new Date(b.end).getTime()) / 2);
      path += `${path ? "L" : "M"}${cx.toFixed(1)},${y(v).toFixed(1)}`;
      svg.append(s("circle", { cx, cy: y(v), r: 2.4, class: `dot-${arm}` }, s("title", {}, `${arm}: quality ${v.toFixed(3)} over ${b.quality_n[arm]} answers`)));
    });
    if (path) svg.append(s("path", { d: path, class: `line-${arm}` }));
  }
  for (const m of series.marks) {
    const mx = x(new Date(m.created_at).getTime());
    svg.append(s("line", { x1: mx, x2: mx, y1: T, y2: H - B, class: `mark mark-${m.kind.split(".")[1]}` }, s("title", {}, `${m.kind} ${when(m.created_at)}: ${m.message}`)));
  }
  svg.append(s("text", { x: L, y: H - 6, class: "tick" }, when(series.start)), s("text", { x: W - R, y: H - 6, class: "tick", "text-anchor": "end" }, when(series.end)));
  const legend = h("div", { class: "legend" },
    h("span", { class: "key key-champion" }), "champion quality ", h("span", { class: "key key-candidate" }), "candidate quality ",
    h("span", { class: "key key-shadow" }), "shadow quality ", h("span", { class: "key key-bar" }), "requests ",
    h("span", { class: "key key-error" }), "errors ", h("span", { class: "key key-mark" }), "autopilot decisions",
    series.truncated ? h("span", { class: "muted", text: ` (the latest ${series.read} requests)` }) : null);
  return h("div", {}, svg, legend);
}

// -- arena -------------------------------------------------------------------------------------
// An arena (`hyperagents arena`): test agents propose inputs, the oracle labels them, code agents
// solve them. Each round the suite grows with the inputs some code agent got wrong; the code
// agents' scores drop on the grown suite and recover with their children. Agent names and
// inputs come from untrusted programs: they go into the page as text only (clipped by the server).
const AGENT_COLOURS = ["#1d4ed8", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#a16207", "#db2777"];
const arenaView = { focus: "", key: null }; // focus "": every code agent; "champion"; or one agent's name
const arenaRuns = new Set(); // runs known to be arenas (their nav shows the Arena page)

function colourOf(names, name) {
  return AGENT_COLOURS[Math.max(0, names.indexOf(name)) % AGENT_COLOURS.length];
}

// A chart's frame: horizontal grid lines and their values, round ticks and the x label.
function roundFrame(svg, box, n, y, yTicks, label, x) {
  const { W, H, L, R, B } = box;
  for (const v of yTicks) {
    svg.append(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "gridline" }),
      s("text", { x: L - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, Number.isInteger(v) ? String(v) : v.toFixed(2)));
  }
  const step = Math.max(1, Math.ceil(n / 20));
  for (let r = 1; r <= n; r += step) svg.append(s("text", { x: x(r), y: H - B + 16, class: "tick", "text-anchor": "middle" }, r));
  svg.append(s("text", { x: (L + W - R) / 2, y: H - 2, class: "axis", "text-anchor": "middle" }, label));
}

function countTicks(most) {
  const step = Math.max(1, Math.ceil(most / 4));
  const ticks = [];
  for (let v = 0; v <= most; v += step) ticks.push(v);
  return ticks;
}

// The suite's size after each round, the cases the round added on top.
function suiteChart(rounds) {
  const box = { W: 900, H: 240, L: 52, R: 16, T: 24, B: 34 };
  const { W, H, L, R, T, B } = box;
  const n = rounds.length, most = Math.max(1, ...rounds.map((r) => r.suite_size));
  const band = (W - L - R) / n;
  const x = (r) => L + (r - 0.5) * band;
  const y = (v) => T + (1 - v / most) * (H - T - B);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", id: "arena-suite-chart", role: "img", "aria-label": "suite size per round" });
  roundFrame(svg, box, n, y, countTicks(most), "round", x);
  const bw = Math.max(1, Math.min(80, band * 0.7));
  for (const r of rounds) {
    const before = r.suite_size - r.added;
    if (n <= 30) svg.append(s("text", { x: x(r.round), y: y(r.suite_size) - 5, class: "tick", "text-anchor": "middle" }, `${r.suite_size} (+${r.added})`));
    svg.append(s("rect", { x: x(r.round) - bw / 2, y: y(before), width: bw, height: H - B - y(before), class: "bar" }),
      s("rect", { x: x(r.round) - bw / 2, y: y(r.suite_size), width: bw, height: y(before) - y(r.suite_size), class: "bar-added", "data-round": r.round },
        s("title", {}, `round ${r.round}: suite ${r.suite_size} cases, +${r.added} hard cases (${r.hard} of ${r.proposed} proposed inputs were hard)`)));
  }
  return h("div", {}, svg, h("div", { class: "legend" }, h("span", { class: "key key-bar" }), "suite before the round ", h("span", { class: "key key-added" }), "hard cases the round added"));
}

// Each shown agent's score: before the round (at the previous round's end), on the grown suite
// (the drop, mid-round) and after its children (the recovery, at the round's end).
function scorePoints(rounds, name) {
  const points = [];
  const add = (x, v, kind, r) => {
    if (v === null || v === undefined) return;
    const last = points[points.length - 1];
    if (last && last.x === x) return;
    points.push({ x, v, kind, r });
  };
  for (const r of rounds) {
    const who = name === "champion" ? r.champion : name;
    add(r.round - 1, r.before[who], "before", r);
    add(r.round - 0.5, r.drop[who], "drop", r);
    add(r.round, r.after[who], "after", r);
  }
  return points;
}

function scoreTitle(name, p) {
  const r = p.r, who = name === "champion" ? r.champion : name;
  const change = r.before[who] != null && r.drop[who] != null ? ` (${(r.drop[who] - r.before[who] >= 0 ? "+" : "")}${(r.drop[who] - r.before[who]).toFixed(3)})` : "";
  return `${name === "champion" ? `champion ${who}` : who}, round ${r.round}: ${fmt(r.before[who])} before → ${fmt(r.drop[who])} on the grown suite${change} → ${fmt(r.after[who])} after its children`;
}

function scoreChart(data) {
  const rounds = data.rounds;
  const names = arenaView.focus === "" ? data.code_agents : [arenaView.focus];
  const box = { W: 900, H: 300, L: 52, R: 16, T: 12, B: 34 };
  const { W, H, L, R, T, B } = box;
  const n = rounds.length;
  const lines = names.map((name) => [name, scorePoints(rounds, name)]);
  const values = lines.flatMap(([, pts]) => pts.map((p) => p.v));
  let lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values, lo + 0.01) : 1;
  lo = Math.max(0, lo - (hi - lo) * 0.1);
  const x = (r) => L + (r / n) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo || 1)) * (H - T - B);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", id: "arena-score-chart", role: "img", "aria-label": "code agents' scores per round" });
  roundFrame(svg, box, n, y, [0, 1, 2, 3, 4].map((i) => lo + ((hi - lo) * i) / 4), "round (a drop on the grown suite mid-round, the recovery at its end)", x);
  for (const [name, pts] of lines) {
    const colour = name === "champion" ? "#111827" : colourOf(data.code_agents, name);
    if (!pts.length) continue;
    svg.append(s("path", { d: pts.map((p, i) => `${i ? "L" : "M"}${x(p.x).toFixed(1)},${y(p.v).toFixed(1)}`).join(""), class: "line-agent", stroke: colour, "data-agent": name }));
    for (const p of pts) {
      svg.append(s("circle", { cx: x(p.x), cy: y(p.v), r: p.kind === "drop" ? 3.6 : 3, class: `dot-${p.kind}`, stroke: colour, fill: p.kind === "drop" ? "#fff" : colour }, s("title", {}, scoreTitle(name, p))));
    }
  }
  const legend = h("div", { class: "legend" },
    names.map((name) => [h("span", { class: "key", "data-colour": name }), name === "champion" ? "champion of each round" : name]),
    h("span", { class: "muted", text: " · hollow: on the grown suite (the drop) · filled: before / after the round" }));
  legend.querySelectorAll(".key").forEach((el) => { el.style.background = el.dataset.colour === "champion" ? "#111827" : colourOf(data.code_agents, el.dataset.colour); });
  return h("div", {}, svg, legend);
}

// Hard cases each test agent had accepted, per round (grouped bars).
function hardChart(data) {
  const rounds = data.rounds, names = data.test_agents;
  const box = { W: 900, H: 220, L: 52, R: 16, T: 12, B: 34 };
  const { W, H, L, R, T, B } = box;
  const n = rounds.length, most = Math.max(1, ...rounds.flatMap((r) => Object.values(r.test_hard)));
  const band = (W - L - R) / n;
  const x = (r) => L + (r - 0.5) * band;
  const y = (v) => T + (1 - v / most) * (H - T - B);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", id: "arena-hard-chart", role: "img", "aria-label": "hard cases per test agent per round" });
  roundFrame(svg, box, n, y, countTicks(most), "round", x);
  for (const r of rounds) {
    const here = names.filter((name) => name in r.test_hard);
    const bw = Math.max(1, Math.min(40, (band * 0.8) / Math.max(1, here.length)));
    here.forEach((name, i) => {
      const v = r.test_hard[name];
      svg.append(s("rect", { x: x(r.round) - (bw * here.length) / 2 + i * bw, y: y(v), width: Math.max(1, bw - 1), height: H - B - y(v), fill: colourOf(names, name), class: "bar-hard", "data-agent": name },
        s("title", {}, `${name}, round ${r.round}: ${v} hard cases accepted`)));
    });
  }
  const legend = h("div", { class: "legend" }, names.map((name) => [h("span", { class: "key", "data-colour": name }), name]));
  legend.querySelectorAll(".key").forEach((el) => { el.style.background = colourOf(names, el.dataset.colour); });
  return h("div", {}, svg, legend);
}

function arenaSummary(data) {
  const last = data.rounds[data.rounds.length - 1];
  const [code, test] = data.tournament;
  const evaluations = last ? Object.entries(last.evaluations).map(([k, v]) => `${k} ${v}`).join(", ") : "none";
  return h("div", { class: "card", id: "arena-summary" }, h("h3", { text: "Arena" }),
    kv([["rounds", h("span", {}, `${data.rounds.length} of ${data.target_rounds ?? "–"}`, meter(data.rounds.length, data.target_rounds))],
      ["agents", `${code} code × ${test} test${code > 1 || test > 1 ? ` (tournament; the worst replaced every ${data.replace_every} rounds)` : " (one against one)"}`],
      ["suite", last ? `${last.suite_size} cases` : "the task's own cases"],
      ["champion", last ? `${last.champion} · ${fmt(last.champion_score)} on the suite` : "–"],
      ["evaluations", evaluations],
      ["agent failures", String(data.failures.length)]]));
}

function heldoutCard(data) {
  const ho = data.heldout;
  const last = data.rounds.length ? data.rounds[data.rounds.length - 1].round : 0;
  if (!ho) {
    return h("div", { class: "card", id: "arena-heldout" }, h("h3", { text: "Held-out adversarial suite" }),
      h("p", { class: "muted", text: `not measured yet: the arena scores its champion on the held-out suite when it has played its rounds (${last} of ${data.target_rounds ?? "–"} so far)` }));
  }
  const diff = ho.champion !== null && ho.seed !== null ? (ho.champion - ho.seed) * 100 : null;
  const bar = (label, v, id) => [label, h("span", { id }, `${pct(v)} `, meter(v ?? 0, 1))];
  return h("div", { class: "card", id: "arena-heldout" }, h("h3", { text: "Held-out adversarial suite" }),
    kv([bar(ho.champion_name ? `champion (${ho.champion_name})` : "champion", ho.champion, "heldout-champion"), bar("seed code agent", ho.seed, "heldout-seed"),
      ["difference", diff === null ? "–" : `${diff >= 0 ? "+" : ""}${diff.toFixed(1)} points`],
      ["cases", `${ho.size} (never shown to any agent)`], ["measured", `after round ${ho.round}`]]),
    ho.round < last ? h("p", { class: "muted", text: `rounds after ${ho.round} are not measured yet` }) : null);
}

function arenaRoundsTable(data) {
  return h("div", { class: "scroll" }, h("table", { class: "grid compact", id: "arena-rounds" },
    h("thead", {}, h("tr", {}, ["round", "proposed", "hard", "added", "suite", "champion", "before", "on grown suite", "after", "replaced"].map((c) => h("th", { text: c })))),
    h("tbody", {}, data.rounds.slice().reverse().map((r) => h("tr", { dataset: { round: r.round } },
      h("td", { class: "num", text: r.round }), h("td", { class: "num", text: r.proposed }), h("td", { class: "num", text: r.hard }),
      h("td", { class: "num", text: `+${r.added}` }), h("td", { class: "num", text: r.suite_size }),
      h("td", { text: r.champion }), h("td", { class: "num", text: fmt(r.before[r.champion]) }),
      h("td", { class: "num", text: fmt(r.drop[r.champion]) }), h("td", { class: "num", text: fmt(r.after[r.champion]) }),
      h("td", { text: r.replaced.map((e) => `${e.kind} ${e.replaced} → ${e.new}`).join(", ") || "–" }))))));
}

function hardCasesView(data) {
  const rounds = data.rounds.filter((r) => r.hard_cases.length).reverse();
  if (!rounds.length) return h("p", { class: "muted", text: "no proposed case in the suite (no input broke a code agent yet)" });
  return h("div", { id: "arena-cases" }, rounds.map((r, i) => h("details", { class: "round-cases", open: i === 0, dataset: { round: r.round } },
    h("summary", { text: `round ${r.round}: ${r.hard_cases_in_suite} hard cases in the suite${r.hard_cases_in_suite > r.hard_cases.length ? ` (the first ${r.hard_cases.length} shown)` : ""}` }),
    h("table", { class: "grid compact" },
      h("thead", {}, h("tr", {}, ["input", "oracle", "reason", "proposed by"].map((c) => h("th", { text: c })))),
      h("tbody", {}, r.hard_cases.map((c) => h("tr", {},
        h("td", { class: "mono case-input", text: c.input, title: c.chars > c.input.length ? `${c.chars} characters, cut` : null }),
        h("td", {}, h("span", { class: `badge ${c.valid ? "state-complete" : "state-failed"}`, text: c.valid ? "valid" : "invalid" })),
        h("td", { class: "message", text: c.reason }), h("td", { text: c.by }))))))));
}

function replacementsTable(list) {
  return h("table", { class: "grid compact", id: "arena-replacements" },
    h("thead", {}, h("tr", {}, ["round", "agents", "replaced", "by", "a mutated copy of", "changed"].map((c) => h("th", { text: c })))),
    h("tbody", {}, list.map((e) => h("tr", {},
      h("td", { class: "num", text: e.round }), h("td", { text: e.kind }), h("td", { text: e.replaced }), h("td", { text: e.new }),
      h("td", { text: e.winner }), h("td", { class: "mono", text: Object.entries(e.changed).map(([k, v]) => `${k}=${v}`).join(", ") || "–" })))));
}

function failuresTable(list) {
  return h("div", { class: "scroll" }, h("table", { class: "grid compact", id: "arena-failures" },
    h("thead", {}, h("tr", {}, ["round", "agent", "step", "reason"].map((c) => h("th", { text: c })))),
    h("tbody", {}, list.map((f) => h("tr", {}, h("td", { class: "num", text: f.round ?? "–" }), h("td", { text: f.agent }),
      h("td", { text: f.step }), h("td", { class: "message", text: f.reason }))))));
}

function focusSelect(data) {
  const select = h("select", { id: "arena-focus", "aria-label": "code agents shown" },
    h("option", { value: "", text: "every code agent" }), h("option", { value: "champion", text: "the champion of each round" }),
    data.code_agents.map((name) => h("option", { value: name, text: name })));
  if (arenaView.focus !== "" && arenaView.focus !== "champion" && !data.code_agents.includes(arenaView.focus)) arenaView.focus = "";
  select.value = arenaView.focus;
  return select;
}

async function pageArena(name) {
  let data;
  try {
    data = await api(`/api/runs/${enc(name)}/arena`);
  } catch (e) {
    if (e.status !== 400) throw e;
    arenaRuns.delete(name);
    return h("section", {}, h("div", { class: "card error-page", id: "arena-missing" }, h("h2", { text: "Not an arena" }),
      h("p", { text: e.message }), h("a", { href: `#/run/${enc(name)}`, text: "the run's overview →" })));
  }
  arenaRuns.add(name);
  if (arenaView.key !== name) Object.assign(arenaView, { focus: "", key: name });
  const header = runHeader(data.run);
  const cards = h("div", { class: "cards" }, arenaSummary(data), heldoutCard(data));
  if (!data.rounds.length) {
    return h("section", { id: "arena" }, header, cards,
      h("p", { class: "empty", id: "arena-empty", text: data.run.status === "running" ? "The arena is playing its first round." : "No round has been played yet." }));
  }
  const focus = focusSelect(data);
  const scores = h("div", {}, scoreChart(data));
  focus.addEventListener("change", () => { arenaView.focus = focus.value; scores.replaceChildren(scoreChart(data)); });
  return h("section", { id: "arena" }, header, cards,
    card("Suite size per round", suiteChart(data.rounds)),
    h("div", { class: "card" }, h("div", { class: "row between" }, h("h3", { text: "Code agents' scores: the drop and the recovery" }), focus), scores),
    card("Hard cases per test agent", hardChart(data)),
    card("Rounds", arenaRoundsTable(data)),
    data.replacements.length ? card("Tournament replacements", replacementsTable(data.replacements)) : null,
    card("Hard cases the rounds added", hardCasesView(data)),
    data.failures.length ? card("Agent failures (the latest)", failuresTable(data.failures)) : null);
}

// -- login -------------------------------------------------------------------------------------
function showLogin() {
  closeStream();
  $nav.replaceChildren();
  const input = h("input", { type: "password", id: "token", autocomplete: "current-password", placeholder: "token" });
  const form = h("form", { class: "card login" },
    h("h2", { text: "Sign in" }),
    h("p", { text: "This dashboard needs its token (given with --token or $HYPERAGENTS_DASHBOARD_TOKEN)." }),
    input, h("div", { class: "row end" }, h("button", { class: "primary", type: "submit", text: "Sign in" })));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("/api/login", { method: "POST", body: { token: input.value } });
      INFO = await api("/api/info");
      route();
    } catch (err) { toast(err.message, "error"); }
  });
  $view.replaceChildren(form);
  current = null;
  input.focus();
}

// -- routing and live updates ------------------------------------------------------------------
function parse() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "run" && parts[1]) return { page: parts[2] || "overview", run: parts[1] };
  if (parts[0] === "variant" && parts[1]) return { page: "variant", variant: Number(parts[1]), tab: parts[2] };
  if (parts[0] === "services") return { page: "services" };
  if (parts[0] === "service" && parts[1]) return { page: "service", service: parts[1] };
  return { page: "runs" };
}

function navFor(r, runName) {
  const links = [["#/", "Runs", r.page === "runs"], ["#/services", "Services", r.page === "services" || r.page === "service"]];
  if (runName) {
    const base = `#/run/${enc(runName)}`;
    links.push([base, "Overview", r.page === "overview"], [`${base}/archive`, "Archive", r.page === "archive"],
      [`${base}/lineage`, "Lineage", r.page === "lineage"], [`${base}/events`, "Events", r.page === "events"]);
    if (r.page === "arena" || arenaRuns.has(runName)) links.push([`${base}/arena`, "Arena", r.page === "arena"]);
  }
  $nav.replaceChildren(...links.map(([href, label, active]) => h("a", { href, class: active ? "active" : "", text: label })));
}

function closeStream() {
  if (stream) stream.close();
  stream = null; streamKey = null;
  $live.className = "live";
}

function openStream(runName) {
  const key = runName || "";
  if (stream && streamKey === key) return;
  closeStream();
  streamKey = key;
  stream = new EventSource(runName ? `/api/stream?run=${enc(runName)}` : "/api/stream");
  let last = null;
  stream.addEventListener("version", (e) => {
    $live.className = "live on";
    $live.title = "live: the page updates when the run changes";
    if (last !== null && e.data !== last) refresh({ quiet: true });
    last = e.data;
  });
  stream.addEventListener("gone", () => closeStream());
  stream.onerror = () => { $live.className = "live off"; $live.title = "reconnecting…"; };
}

let runOfVariant = null;
let rendering = false;
let pending = false;
function busy() {
  // someone is typing, choosing or confirming: a live update must not rebuild the page under them
  const active = document.activeElement;
  return $dialog.open || (active && $view.contains(active) && ["INPUT", "SELECT", "TEXTAREA"].includes(active.tagName))
    || Boolean($view.querySelector("#new-run-form:not([hidden])"));
}

async function refresh({ quiet = false } = {}) {
  if (rendering) { pending = true; return; }
  if (quiet && busy()) return;
  rendering = true;
  const hash = location.hash;
  const scrollY = window.scrollY;
  try {
    const r = parse();
    let view;
    if (r.page === "runs") view = await pageRuns();
    else if (r.page === "overview") view = await pageOverview(r.run);
    else if (r.page === "archive") view = await pageArchive(r.run);
    else if (r.page === "lineage") view = await pageLineage(r.run);
    else if (r.page === "events") view = await pageEvents(r.run);
    else if (r.page === "arena") view = await pageArena(r.run);
    else if (r.page === "services") view = await pageServices();
    else if (r.page === "service") view = await pageService(r.service);
    else if (r.page === "variant") {
      // a variant page is not refreshed live while someone reads or tries it
      if (quiet && current?.key === hash) return;
      view = await pageVariant(r.variant, r.tab);
      runOfVariant = view.querySelector(".run-header a")?.textContent || null;
    }
    if (location.hash !== hash) { view.dispose?.(); pending = true; quiet = false; return; } // moved on meanwhile
    if (current?.dispose) current.dispose();
    $view.replaceChildren(view);
    current = { key: hash, dispose: view.dispose };
    document.body.dataset.page = r.page;
    document.body.dataset.ready = "1";
    if (quiet) window.scrollTo(0, scrollY);
    const runName = r.run || (r.page === "variant" ? runOfVariant : null);
    navFor(r, runName);
    if (r.page === "variant" || r.page === "services" || r.page === "service") closeStream(); else openStream(r.run || null);
  } catch (e) {
    if (e.status === 401) return;
    if (!quiet) $view.replaceChildren(h("div", { class: "card error-page" }, h("h2", { text: e.status === 404 ? "Not found" : "Something went wrong" }), h("p", { text: e.message }), h("a", { href: "#/", text: "back to the runs" })));
  } finally {
    rendering = false;
    if (pending) { pending = false; setTimeout(() => refresh({ quiet: location.hash === current?.key }), 0); }
  }
}

function route() {
  document.body.dataset.ready = "";
  refresh();
}

window.addEventListener("hashchange", route);
(async () => {
  try {
    INFO = await api("/api/info");
  } catch (e) {
    $view.replaceChildren(h("p", { text: e.message }));
    return;
  }
  if (INFO.token_required && !INFO.authenticated) showLogin();
  else route();
})();
