// The gpuspot dashboard: reads the HTTP API (docs/contracts.md#http-api) with the token kept in
// localStorage, refreshes every few seconds, and follows GET /v1/events live.
//
// Tenants choose names, commands and more, so every string from the API is hostile: the
// page is built with createElement/textContent only (never innerHTML), and the coordinator
// serves it under a Content-Security-Policy that allows no inline script.
"use strict";

const TOKEN_KEY = "gpuspot-token";
const REFRESH_MS = 3000;
const HISTORY_MS = 30000;
const HISTORY_HOURS = 48;
const CHART_POINTS = 240;
const MAX_EVENTS = 200;
const LEDGER_SHOWN = 200;   // newest ledger entries shown
const MAX_PAGES = 10;       // pages of 1000 read per list and refresh
const INBOX_SHOWN = 100;
const ENDED = new Set(["terminated", "failed"]);

const $ = id => document.getElementById(id);

const state = {
  token: localStorage.getItem(TOKEN_KEY) || "",
  admin: false,
  data: { pools: [], hosts: [], instances: [], deployments: [], accounts: [], ledger: [],
          me: null, myLedger: [], messages: [] },
  history: {},          // pool model -> [{t, price, text}]
  historyAt: 0,
  account: null,        // the account whose ledger is shown
  drafts: {},           // deployment id -> replica count typed but not applied yet
  rendered: {},         // table id -> what it was last rendered from
  events: null,         // the EventStream
  timer: null,
};

// ---- DOM building: strings only ever become text nodes or attribute values ----

function build(node, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const el = (tag, props, ...children) => build(document.createElement(tag), props, children);
const svg = (tag, props, ...children) =>
  build(document.createElementNS("http://www.w3.org/2000/svg", tag), props, children);

function time(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toISOString().replace("T", " ").slice(0, 19);
}

const dash = v => (v === undefined || v === null || v === "" ? "-" : v);
const stateCell = s => el("td", { class: "state-" + String(s).replace(/[^a-z_]/g, "") }, dash(s));

// Renders `table` from `rows` unless it was rendered from the same data last time, so an
// unchanged table keeps its focus, selection and half-typed inputs across refreshes.
function render(table, columns, rows, key, empty) {
  const signature = JSON.stringify([key, rows]);
  if (state.rendered[table] === signature) return;
  state.rendered[table] = signature;
  const head = el("tr", {}, columns.map(c => el("th", {}, c.title)));
  const body = rows.length
    ? rows.map(row => el("tr", { "data-id": row.id ?? row.model }, columns.map(c => cell(c, row))))
    : [el("tr", {}, el("td", { class: "empty", colspan: columns.length }, empty || "none"))];
  $(table).replaceChildren(el("thead", {}, head), el("tbody", {}, body));
}

function cell(column, row) {
  const value = column.value(row);
  if (value instanceof Node && value.nodeName === "TD") return value;
  return el("td", { class: column.class }, value instanceof Node ? value : dash(value));
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  return (await call(method, path, body)).json;
}

// The target of a Link header's rel="next" entry (a path on this API), or null.
function nextPage(link) {
  for (const entry of (link || "").split(",")) {
    const match = /^\s*<(\/[^>]*)>\s*;\s*rel="next"\s*$/.exec(entry);
    if (match) return match[1];
  }
  return null;
}

// A list route, page after page as its Link headers lead, at most MAX_PAGES of them.
async function list(path) {
  let items = [], next = path;
  for (let page = 0; next && page < MAX_PAGES; page++) {
    const answer = await call("GET", next);
    items = items.concat(answer.json || []);
    next = nextPage(answer.link);
  }
  return items;
}

async function call(method, path, body) {
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    response = await fetch(path, { method, headers, body: payload, cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "unreachable", "the coordinator did not answer (" + e.message + ")");
  }
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { /* not JSON: text below */ }
  if (!response.ok) {
    const error = (json && json.error) || {};
    throw new ApiError(response.status, error.code || "http_" + response.status,
      error.message || text || response.statusText);
  }
  return { json, link: response.headers.get("Link") };
}

function describe(error) {
  if (!(error instanceof ApiError)) return String(error);
  const head = error.status ? error.status + " " + error.code : error.code;
  const hint = error.status === 401 ? " — check the token above (admin or account token)" : "";
  return head + ": " + error.message + hint;
}

// ---- the error banner: refresh errors clear themselves, action errors stay until dismissed ----

let bannerFrom = null;

function showError(from, text) {
  bannerFrom = from;
  $("error-text").textContent = text;
  $("error").hidden = false;
}

function clearError(from) {
  if (bannerFrom !== from) return;
  bannerFrom = null;
  $("error").hidden = true;
}

// ---- refreshing ----

// The newest LEDGER_SHOWN entries of an account's ledger, oldest first: one page asked
// newest first, however long the ledger has grown.
async function ledgerOf(id) {
  const path = "/v1/accounts/" + encodeURIComponent(id) + "/ledger?order=newest&limit=" + LEDGER_SHOWN;
  const entries = await api("GET", path);
  return entries.slice().reverse();
}

async function load() {
  const me = await api("GET", "/v1/whoami");
  const [pools, instances, deployments, myLedger, messages] = await Promise.all([
    api("GET", "/v1/pools"), list("/v1/instances"), list("/v1/deployments"),
    ledgerOf(me.id), api("GET", "/v1/messages?limit=" + INBOX_SHOWN),
  ]);
  const data = { pools, instances, deployments, hosts: [], accounts: [], ledger: [], me, myLedger, messages };
  state.admin = me.role === "admin";
  if (state.admin) {
    data.hosts = await list("/v1/hosts");
    data.accounts = await list("/v1/accounts");
    if (!data.accounts.some(a => a.id === state.account)) state.account = null;
    if (state.account) data.ledger = await ledgerOf(state.account);
  }
  return data;
}

// One refresh at a time: a call during one asks for another right after it.
let inflight = null, again = false;

function refresh() {
  if (inflight) {
    again = true;
    return inflight;
  }
  inflight = refreshOnce().finally(() => {
    inflight = null;
    if (again) {
      again = false;
      refresh();
    }
  });
  return inflight;
}

async function refreshOnce() {
  clearTimeout(state.timer);
  if (!state.token) {
    showError("refresh", "No token: paste the admin token or an account token above and press “use”.");
    clearAll();
  } else {
    try {
      state.data = await load();
      clearError("refresh");
      showAll();
      if (!state.events) startEvents();
      await refreshHistory();
    } catch (e) {
      showError("refresh", describe(e));
      if (e.status === 401 || e.status === 403) clearAll();
    }
  }
  state.timer = setTimeout(refresh, REFRESH_MS);
}

// Price history changes once a tick: fetched every HISTORY_MS, or sooner while a pool has
// no points yet (a coordinator that just started).
async function refreshHistory() {
  const pools = state.data.pools;
  const missing = pools.some(p => !(state.history[p.model] || []).length);
  if (!missing && Date.now() - state.historyAt < HISTORY_MS) return;
  state.historyAt = Date.now();
  const lists = await Promise.all(pools.map(p =>
    api("GET", "/v1/pools/" + encodeURIComponent(p.model) + "/price-history?hours=" + HISTORY_HOURS)));
  pools.forEach((p, i) => {
    state.history[p.model] = lists[i].map(x => ({ t: Date.parse(x.at), price: +x.price, text: x.price }));
  });
  state.rendered.pools = null;
  showPools();
}

function clearAll() {
  stopEvents();
  state.admin = false;
  state.data = { pools: [], hosts: [], instances: [], deployments: [], accounts: [], ledger: [],
                 me: null, myLedger: [], messages: [] };
  state.history = {};
  state.rendered = {};
  for (const id of ["pools", "hosts", "instances", "deployments", "accounts", "ledger", "me",
                    "my-ledger", "messages"]) {
    $(id).replaceChildren();
  }
  showAdmin();
  $("who").textContent = "";
}

function showAll() {
  showAdmin();
  $("who").textContent = state.admin ? "admin" : "account token";
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  showMe();
  showPools();
  showHosts();
  showInstances();
  showDeployments();
  showAccounts();
}

function showAdmin() {
  for (const section of document.querySelectorAll(".admin")) section.hidden = !state.admin;
}

// ---- pools and their price chart ----

function showPools() {
  render("pools", [
    { title: "model", value: p => p.model },
    { title: "list", value: p => p.list_price, class: "num" },
    { title: "market", value: p => p.market_price, class: "num" },
    { title: "pricing", value: p => p.pricing },
    { title: "availability", value: p => p.availability },
    { title: "available/total", value: p => p.available + "/" + p.total, class: "num" },
    { title: "notice", value: p => p.notice_period },
    { title: "price, last " + HISTORY_HOURS + " h", value: p => chart(p.model, state.history[p.model] || []) },
  ], state.data.pools, null, "no pools");
}

// At most CHART_POINTS points, each the mean of a contiguous bucket of the series.
function squeeze(points) {
  if (points.length <= CHART_POINTS) return points;
  const out = [];
  for (let i = 0; i < CHART_POINTS; i++) {
    const from = Math.floor(i * points.length / CHART_POINTS);
    const to = Math.max(Math.floor((i + 1) * points.length / CHART_POINTS), from + 1);
    const bucket = points.slice(from, to);
    const price = bucket.reduce((s, p) => s + p.price, 0) / bucket.length;
    out.push({ t: bucket[bucket.length - 1].t, price });
  }
  return out;
}

// A line over time, oldest at the left: the axis spans 48 h, or less while the history is
// shorter (the left label says since when), so a young coordinator's chart is not a dot.
function chart(model, points) {
  const W = 320, H = 84, PAD = 6, LABEL = 14;
  const box = svg("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`,
    role: "img", "data-model": model, "data-points": points.length,
    "aria-label": `price of ${model}, last ${HISTORY_HOURS} h` });
  box.append(svg("line", { x1: PAD, y1: H - LABEL, x2: W - PAD, y2: H - LABEL }));
  if (!points.length) {
    box.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no price history yet"));
    return box;
  }
  const shown = squeeze(points);
  const now = Date.now();
  const start = Math.max(now - HISTORY_HOURS * 3600e3, points[0].t);
  const prices = points.map(p => p.price);
  const lo = Math.min(...prices), hi = Math.max(...prices);
  const x = t => PAD + (t - start) / Math.max(now - start, 1) * (W - 2 * PAD);
  const y = p => hi === lo ? (H - LABEL) / 2 : PAD + (hi - p) / (hi - lo) * (H - LABEL - 2 * PAD);
  const coords = shown.map(p => [x(p.t), y(p.price)]);
  if (coords.length === 1) coords.unshift([PAD, coords[0][1]]);
  box.append(svg("polyline", { points: coords.map(c => c[0].toFixed(1) + "," + c[1].toFixed(1)).join(" ") }));
  for (const [cx, cy] of coords.slice(-1)) box.append(svg("circle", { cx, cy, r: 2.5 }));
  const text = v => points.find(p => p.price === v).text;
  box.append(svg("text", { x: PAD, y: PAD + 8 }, "max " + text(hi)));
  box.append(svg("text", { x: PAD + 80, y: PAD + 8 }, "min " + text(lo)));
  const since = now - start >= (HISTORY_HOURS - 1) * 3600e3 ? HISTORY_HOURS + " h ago" : "since " + time(new Date(start).toISOString()).slice(11);
  box.append(svg("text", { x: PAD, y: H - 2 }, since));
  box.append(svg("text", { x: W - PAD, y: H - 2, "text-anchor": "end" }, "now " + points[points.length - 1].text));
  box.append(svg("title", {}, `${model}: ${points.length} prices, ${text(lo)}–${text(hi)}`));
  return box;
}

// ---- hosts ----

function units(host) {
  return el("span", { class: "units" }, host.gpus.map(g =>
    el("span", { class: "unit" + (!g.healthy ? " unhealthy" : g.instance_id ? " used" : ""),
      title: `GPU ${g.index} ${g.uuid}` + (g.instance_id ? " → " + g.instance_id : " free") })));
}

function showHosts() {
  render("hosts", [
    { title: "hostname", value: h => h.hostname },
    { title: "id", value: h => el("span", { class: "mono" }, h.id) },
    { title: "state", value: h => stateCell(h.state) },
    { title: "GPUs", value: h => h.gpus.length ? h.gpus.length + " x " + h.gpus[0].model : "0" },
    { title: "units free/total", value: h => el("span", {}, `${h.units_free}/${h.units_total}`, units(h)) },
    { title: "unit", value: h => h.unit ? `${h.unit.cpu_cores} cores, ${h.unit.memory_gib} GiB` : "-" },
    { title: "runtimes", value: h => (h.runtimes || []).join(", ") },
    { title: "version", value: h => h.agent_version },
    { title: "last seen", value: h => time(h.last_seen) },
  ], state.admin ? state.data.hosts : [], null, "no hosts");
}

// ---- instances ----

// Placed: the GPUs it holds; waiting: what it asked for, e.g. "9 x RTX 4090|H100".
function gpus(i) {
  if ((i.gpu_uuids || []).length) return i.gpu_uuids.length + " x " + (i.gpu_model || i.gpu.models.join("|"));
  return i.gpu.count + " x " + i.gpu.models.join("|");
}

function matches(item, text) {
  const needle = text.trim().toLowerCase();
  return !needle || [item.id, item.name].some(v => String(v || "").toLowerCase().includes(needle));
}

function hostName(id) {
  const host = state.data.hosts.find(h => h.id === id);
  return host ? host.hostname : id;
}

function showInstances() {
  const wanted = $("instances-state").value, text = $("instances-filter").value;
  const rows = state.data.instances.filter(i =>
    (wanted === "all" || (wanted === "active" ? !ENDED.has(i.state) : i.state === wanted)) && matches(i, text));
  $("instances-count").textContent = `(${rows.length} of ${state.data.instances.length})`;
  render("instances", [
    { title: "name", value: i => i.name },
    { title: "id", value: i => el("span", { class: "mono" }, i.id) },
    { title: "account", value: i => i.account_id },
    { title: "state", value: i => stateCell(i.state) },
    { title: "reason", value: i => i.reason },
    { title: "host", value: i => i.host_id && hostName(i.host_id) },
    { title: "GPUs", value: i => gpus(i) },
    { title: "billing", value: i => i.billing.mode + (i.billing.max_price ? " ≤ " + i.billing.max_price : "") },
    { title: "price", value: i => i.price, class: "num" },
    { title: "created", value: i => time(i.created_at) },
    { title: "ends", value: i => time(i.termination_time) },
    { title: "", value: i => ENDED.has(i.state) || i.state === "stopping" ? "" : el("button",
      { class: "danger terminate", type: "button", "data-id": i.id, onclick: () => terminate(i) }, "terminate") },
  ], rows, [wanted, text, state.data.hosts.map(h => h.hostname)], "no instances");
}

async function terminate(instance) {
  const label = instance.name ? `${instance.name} (${instance.id})` : instance.id;
  if (!confirm(`Terminate instance ${label}?`)) return;
  await act(() => api("DELETE", "/v1/instances/" + encodeURIComponent(instance.id)));
}

// Runs a change; its error goes to the banner (and stays until dismissed), then refreshes.
async function act(change) {
  try {
    await change();
    clearError("action");
  } catch (e) {
    showError("action", describe(e));
  }
  await refresh();
}

// ---- deployments ----

function scaler(d) {
  if (d.mode !== "replicaset" || d.state === "deleted") return dash(d.replicas);
  const input = el("input", { class: "replicas", type: "number", min: 0, "data-id": d.id,
    "aria-label": "replicas of " + d.name,
    oninput: e => { state.drafts[d.id] = e.target.value; } });
  input.value = state.drafts[d.id] ?? String(d.replicas);
  const button = el("button", { type: "button", class: "scale", "data-id": d.id,
    onclick: () => scale(d, input.value) }, "scale");
  return el("span", {}, input, " ", button);
}

async function scale(d, value) {
  const replicas = Number(value);
  if (!Number.isInteger(replicas) || replicas < 0) {
    showError("action", `replicas must be a whole number of 0 or more, not “${value}”`);
    return;
  }
  await act(async () => {
    await api("PATCH", "/v1/deployments/" + encodeURIComponent(d.id), { replicas });
    delete state.drafts[d.id];
  });
}

function showDeployments() {
  const text = $("deployments-filter").value, deleted = $("deployments-deleted").checked;
  const rows = state.data.deployments.filter(d => (deleted || d.state !== "deleted") && matches(d, text));
  $("deployments-count").textContent = `(${rows.length} of ${state.data.deployments.length})`;
  const live = d => (d.instances || []).filter(i => !ENDED.has(i.state));
  render("deployments", [
    { title: "name", value: d => d.name },
    { title: "id", value: d => el("span", { class: "mono" }, d.id) },
    { title: "account", value: d => d.account_id },
    { title: "mode", value: d => d.mode },
    { title: "state", value: d => stateCell(d.state) },
    { title: "replicas", value: d => scaler(d) },
    { title: "running/instances", value: d => `${live(d).filter(i => i.state === "running").length}/${live(d).length}`, class: "num" },
    { title: "succeeded/failed", value: d => `${d.succeeded}/${d.failed}`, class: "num" },
    { title: "restarts", value: d => d.restarts, class: "num" },
    { title: "reason", value: d => d.reason },
  ], rows, [text, deleted], "no deployments");
}

// ---- accounts and the ledger (admin) ----

function showAccounts() {
  const data = state.admin ? state.data : { accounts: [], ledger: [] };
  render("accounts", [
    { title: "name", value: a => a.name },
    { title: "id", value: a => el("span", { class: "mono" }, a.id) },
    { title: "balance", value: a => a.balance, class: "num" },
    { title: "overdue", value: a => a.overdue ? "since " + time(a.overdue_since) : "no" },
    { title: "disabled", value: a => a.disabled ? "yes" : "no" },
    { title: "holds", value: a => a.usage ? `${a.usage.instances} instances, ${a.usage.gpus} GPUs` : "-" },
    { title: "email", value: a => a.email },
    { title: "created", value: a => time(a.created_at) },
    { title: "", value: a => el("button", { type: "button", class: "show-ledger", "data-id": a.id,
      onclick: () => { state.account = a.id; act(async () => {}); } }, "ledger") },
  ], data.accounts, state.account, "no accounts");
  for (const row of $("accounts").querySelectorAll("tbody tr")) {
    row.classList.toggle("selected", row.dataset.id === state.account);
  }
  const account = data.accounts.find(a => a.id === state.account);
  $("ledger-title").textContent = account ? `Ledger of ${account.name} (${account.id})` : "Ledger (choose an account)";
  render("ledger", ledgerColumns(), data.ledger.slice().reverse(), state.account,
    account ? "no entries" : "no account chosen");
}

// ---- the caller's own account, ledger and inbox ----

const limits = q => q ? Object.entries(q).map(([k, v]) => k + " " + (v === null ? "none" : v)).join(", ") : "-";

function ledgerColumns() {
  return [
    { title: "at", value: e => time(e.at) },
    { title: "kind", value: e => e.kind },
    { title: "amount", value: e => e.amount, class: "num" },
    { title: "balance after", value: e => e.balance_after, class: "num" },
    { title: "instance", value: e => e.instance_id && el("span", { class: "mono" }, e.instance_id) },
  ];
}

function showMe() {
  const me = state.data.me;
  $("me-title").textContent = !me ? "Your account" : state.admin
    ? "Your account (admin, acting for " + me.name + ")" : "Your account";
  render("me", [
    { title: "name", value: a => a.name },
    { title: "id", value: a => el("span", { class: "mono" }, a.id) },
    { title: "balance", value: a => a.balance, class: "num balance" },
    { title: "overdue", value: a => a.overdue ? "since " + time(a.overdue_since) + ", stops " + time(a.overdue_deadline) : "no" },
    { title: "quota", value: a => limits(a.quota) },
    { title: "holds", value: a => a.usage ? `${a.usage.instances} instances, ${a.usage.gpus} GPUs` : "-" },
    { title: "email", value: a => a.email },
  ], me ? [me] : [], null, "-");
  const ledger = state.data.myLedger;
  $("my-ledger-count").textContent = `(newest ${Math.min(ledger.length, LEDGER_SHOWN)})`;
  render("my-ledger", ledgerColumns(), ledger.slice().reverse(), null, "no entries");
  const messages = state.data.messages;
  $("messages-count").textContent = `(${messages.filter(m => !m.read).length} unread)`;
  render("messages", [
    { title: "at", value: m => time(m.at) },
    { title: "subject", value: m => el("span", { class: m.read ? "" : "unread", title: m.body }, m.subject) },
    { title: "instance", value: m => m.instance_id && el("span", { class: "mono" }, m.instance_id) },
    { title: "read", value: m => m.read ? "yes" : el("button", { type: "button", class: "mark-read",
      "data-id": m.id, onclick: () => markRead(m) }, "mark read") },
  ], messages, null, "no messages");
}

async function markRead(message) {
  await act(() => api("POST", "/v1/messages/" + encodeURIComponent(message.id) + "/read"));
}

// ---- the live event feed ----

// The feed reads GET /v1/events with fetch(), not EventSource: EventSource cannot send an
// Authorization header, and the alternative, a cookie, is readable by every page on any port
// of the coordinator's host (cookies are not separated by port), including a tenant's
// service behind the gateway. So the token goes only in the header, as for every call.
class EventStream {
  constructor(url, token, on) {
    Object.assign(this, { url, token, on, lastId: null, abort: null, closed: false });
    this.connect();
  }

  async connect() {
    if (this.closed) return;
    this.abort = new AbortController();
    const headers = { Authorization: "Bearer " + this.token, Accept: "text/event-stream" };
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    let response;
    try {
      response = await fetch(this.url, { headers, signal: this.abort.signal, cache: "no-store" });
    } catch (_) {
      return this.retry();
    }
    // A refused token: the next refresh shows why in the banner and opens a new stream.
    if (response.status === 401 || response.status === 403) return this.end();
    if (!response.ok || !response.body) return this.retry();
    this.on.status("live");
    await this.read(response.body.pipeThrough(new TextDecoderStream()).getReader());
    this.retry();
  }

  async read(reader) {
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value.replace(/\r\n?/g, "\n");
        let at;
        while ((at = buffer.indexOf("\n\n")) >= 0) {
          this.dispatch(buffer.slice(0, at));
          buffer = buffer.slice(at + 2);
        }
      }
    } catch (_) { /* aborted or broken: connect() retries */ }
  }

  // One block of `field: value` lines (text/event-stream).
  dispatch(block) {
    let type = "message", id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
    if (id !== null) this.lastId = id;
    if (data.length) this.on.event({ type, data: data.join("\n") });
  }

  retry() {
    if (this.closed) return;
    this.on.status("reconnecting");
    setTimeout(() => this.connect(), 1000);
  }

  end() {
    this.closed = true;
    this.on.status("closed");
    this.on.ended(this);
  }

  close() {
    this.closed = true;
    if (this.abort) this.abort.abort();
  }
}

function startEvents() {
  stopEvents();
  eventsStatus("connecting");
  state.events = new EventStream("/v1/events", state.token, {
    status: eventsStatus,
    event: onEvent,
    ended: stream => { if (state.events === stream) state.events = null; },
  });
}

function stopEvents() {
  if (state.events) state.events.close();
  state.events = null;
  eventsStatus("off");
}

function eventsStatus(text) {
  $("events-status").textContent = text;
  $("events-status").className = "pill " + text;
}

let soon = null;

function onEvent(message) {
  let event;
  try { event = JSON.parse(message.data); } catch (_) { return; }
  const kind = String(event.kind || message.type);
  if (kind !== "price_changed" || $("events-prices").checked) {
    const subject = event.instance_id || event.host_id || event.account_id || "";
    const detail = event.subject || (event.data && Object.keys(event.data).length ? JSON.stringify(event.data) : "");
    const item = el("li", { "data-kind": kind, "data-id": event.id },
      el("span", { class: "muted" }, time(event.at).slice(11)),
      el("span", { class: "kind" }, kind),
      el("span", { class: "mono" }, subject),
      detail && el("span", { class: "detail" }, detail.slice(0, 240)));
    const list = $("events");
    list.prepend(item);
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  }
  // Something changed: show it now rather than at the next tick.
  if (kind !== "price_changed" && !soon) {
    soon = setTimeout(() => { soon = null; refresh(); }, 200);
  }
}

// ---- wiring ----

function useToken() {
  state.token = $("token").value.trim();
  if (state.token) localStorage.setItem(TOKEN_KEY, state.token);
  else localStorage.removeItem(TOKEN_KEY);
  state.account = null;
  clearAll();
  // The feed showed what the old token may see: not for the new one.
  $("events").replaceChildren();
  clearError("action");
  refresh();
}

// Earlier dashboards kept the token in a cookie for the event stream; no route reads it now.
document.cookie = "gpuspot_token=; Path=/v1/events; Max-Age=0";
$("token").value = state.token;
$("use-token").addEventListener("click", useToken);
$("token").addEventListener("keydown", e => { if (e.key === "Enter") useToken(); });
$("forget-token").addEventListener("click", () => {
  $("token").value = "";
  useToken();
});
$("error-close").addEventListener("click", () => { bannerFrom = null; $("error").hidden = true; });
for (const id of ["instances-state", "instances-filter"]) $(id).addEventListener("input", showInstances);
for (const id of ["deployments-filter", "deployments-deleted"]) $(id).addEventListener("input", showDeployments);
refresh();
