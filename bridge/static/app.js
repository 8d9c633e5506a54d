// framebridge dashboard: wires the connection, the model and the views together.
// No build step: plain ES modules, uPlot from vendor/ as a classic script.

import { CommandPanel } from "./js/commands.js";
import { getWindowSeconds, setWindowSeconds } from "./js/charts.js";
import { Connection } from "./js/conn.js";
import { DevicesView } from "./js/devices.js";
import { FrameLog } from "./js/log.js";
import { Model } from "./js/model.js";
import { writeRequest } from "./js/registers.js";
import { seriesCsv, download } from "./js/export.js";
import { COMMAND_NAMES } from "./js/wire.js";

const $ = (sel) => document.querySelector(sel);

// The token lives in sessionStorage (this tab, until it closes), goes out in `hello` and in the
// Authorization header of /api/series, and never stays in the URL: a `?token=` link is moved
// into sessionStorage and taken out of the address bar at once (no history, no Referer).
const TOKEN_KEY = "framebridge.token";
const params = new URLSearchParams(location.search);
if (params.has("token")) {
  sessionStorage.setItem(TOKEN_KEY, params.get("token") || "");
  params.delete("token");
  const q = params.toString();
  history.replaceState(null, "", location.pathname + (q ? "?" + q : "") + location.hash);
}
const token = () => sessionStorage.getItem(TOKEN_KEY) ?? "";

const wsUrl = (() => {
  const u = new URL(params.get("ws") || "ws", location.href);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  return u.href;
})();

const model = new Model();
const log = new FrameLog($("#log"));
/** Last tx request per bus/addr/cmd, to name the registers of the rx reply that follows. */
const lastTx = new Map();

const conn = new Connection({
  url: wsUrl,
  token,
  onMessages: (msgs) => {
    for (const m of msgs) applyMessage(m);
  },
  onStatus: (s) => onStatusChange(s),
  onSession: (info) => onSession(info),
});

const actions = {
  async request(msg) {
    if (msg.type === "request") log.expectOwn(msg);
    const r = await conn.request(msg, 8000);
    if (r.type === "error") return { ...r, ok: false, error: { code: r.code, message: r.message } };
    // the bridge counted it against the device (no event says so): take its count from state
    if (r.ok === false && (r.error?.code === "timeout" || r.error?.code === "device_error")) reconcileSoon();
    return r;
  },
  /** A value as typed (text or number, in the register's unit) → write_reg, or write_regs for
   * a two-word register. */
  async write(dev, reg, value) {
    const enc = model.encodeValue(reg, value);
    if (enc.error) return { ok: false, error: { code: "bad_value", message: `${reg.name}: ${enc.error}` } };
    return actions.request({ type: "request", bus: dev.bus, addr: dev.addr, ...writeRequest(reg, enc.words) });
  },
};

const devicesView = new DevicesView($("#devices"), model, actions);
const panel = new CommandPanel($("#cmd-form"), $("#cmd-results"), model, actions);

// ---- messages -------------------------------------------------------------------------

function applyMessage(m) {
  if (m.type === "frame") {
    log.add(m, applyFrame(m));
  } else if (m.type === "event") {
    log.add(m);
    applyEvent(m);
  } else if (m.type === "error") {
    log.note("server error", `${m.code}: ${m.message}`, true);
  } else if (m.type === "state") {
    model.applyState(m);
  }
}

function applyFrame(m) {
  const bus = m.bus;
  const addr = m.addr;
  if (typeof bus !== "string" || typeof addr !== "number") return;
  const ts = m.ts ?? Date.now() / 1000;
  const name = COMMAND_NAMES[(m.cmd ?? 0) & 0x7f];
  const f = m.fields || {};
  const key = `${bus}/${addr}/${m.cmd}`;
  if (m.dir === "tx") {
    lastTx.set(key, f);
    return;
  }
  if (m.dir !== "rx") return;
  const dev = model.device(bus, addr);
  if (dev.online !== true) model.setOnline(bus, addr, true, ts);
  else dev.lastSeen = Math.max(dev.lastSeen || 0, ts);
  // An error reply ends the bridge's transaction with a device error (its own identify aside).
  if ((m.cmd & 0x80) !== 0 && !m.kind && name !== "identify") {
    model.bumpError(bus, addr, "device_errors", 1, m);
    reconcileSoon();
    model.changed(`${bus}/${addr}`);
    return null;
  }
  // Named values straight from the bridge, when it decoded them with the profile.
  const named = m.values ?? m.registers ?? f.named ?? f.registers;
  if (named && typeof named === "object" && !Array.isArray(named)) {
    const vals = {};
    for (const [k, v] of Object.entries(named)) vals[k] = v && typeof v === "object" ? v.value : v;
    model.setValues(bus, addr, vals, ts);
    return vals;
  }
  let vals = null;
  if (name === "read_regs" && Array.isArray(f.values)) {
    const start = f.start ?? lastTx.get(key)?.start;
    if (typeof start === "number") vals = model.decodeRaw(bus, addr, start, f.values);
  } else if (name === "write_reg" && typeof f.reg === "number" && typeof f.value === "number") {
    vals = model.decodeRaw(bus, addr, f.reg, [f.value]);
  } else if (name === "write_regs" && typeof f.start === "number") {
    const sent = lastTx.get(key);
    if (sent && sent.start === f.start && Array.isArray(sent.values)) {
      vals = model.decodeRaw(bus, addr, f.start, sent.values);
    }
  }
  if (vals && Object.keys(vals).length) {
    model.setValues(bus, addr, vals, ts);
    return vals;
  }
  // the bridge identifies a device once when it comes online; anyone's identify reply will do
  if (name === "identify" && f.model) model.setIdentity(bus, addr, f);
  model.changed(`${bus}/${addr}`);
  return null;
}

let refetchTimer = 0;
function refetchStateSoon(ms = 300) {
  clearTimeout(refetchTimer);
  refetchTimer = setTimeout(fetchState, ms);
}

/**
 * Error counters: events bump them live, `state` has the bridge's exact counts (it also counts
 * what no event reports: every timed-out poll of an offline device, other viewers' requests).
 * After an error, fetch state once things settle; while a device is offline, every few seconds.
 */
let reconcileTimer = 0;
function reconcileSoon() {
  if (!reconcileTimer) reconcileTimer = setTimeout(() => ((reconcileTimer = 0), fetchState()), 1500);
}
const RECONCILE_OFFLINE_MS = 5000;
const RECONCILE_IDLE_MS = 30000;
let lastStateAt = 0;
setInterval(() => {
  if (conn.status.state !== "open") return;
  const offline = model.devices().some((d) => d.online === false && model.buses.get(d.bus)?.up === true);
  if (Date.now() - lastStateAt >= (offline ? RECONCILE_OFFLINE_MS : RECONCILE_IDLE_MS)) fetchState();
}, 1000);

function applyEvent(m) {
  const bus = m.bus;
  if (typeof bus !== "string") return;
  switch (m.event) {
    case "bus_up":
      model.setBusUp(bus, true);
      refetchStateSoon();
      break;
    case "bus_down":
      model.setBusUp(bus, false, m.reason || m.error || m.message || "");
      break;
    case "device_online":
      if (typeof m.addr === "number") model.setOnline(bus, m.addr, true, m.ts);
      refetchStateSoon();
      break;
    case "device_offline":
      // the poll that timed out (the bridge's `timeouts` counts every one; state tells the rest)
      if (typeof m.addr === "number") {
        model.setOnline(bus, m.addr, false);
        model.bumpError(bus, m.addr, "timeouts", 1, m);
      }
      break;
    case "crc_error": {
      // `awaiting`: the device whose reply was awaited when the garbage arrived
      const addr = typeof m.awaiting === "number" ? m.awaiting : m.addr;
      const n = typeof m.count === "number" && m.count > 0 ? m.count : 1;
      model.bumpError(bus, addr, typeof addr === "number" ? "crc_errors" : "crc", n, m);
      break;
    }
    default:
      model.changed(bus);
  }
}

/**
 * The bridge's snapshot: values, register maps, identity (the bridge identifies each device
 * itself, so the page never sends identify), error counters, bus up/down and why.
 */
async function fetchState() {
  lastStateAt = Date.now();
  const r = await conn.request({ type: "state" }, 8000);
  if (r.type === "state") {
    model.applyState(r);
    return r;
  }
  return null;
}

// ---- connection status ----------------------------------------------------------------

const statusEl = $("#conn");
const statusText = $("#conn-text");
const resumeEl = $("#resume");
const retryBtn = $("#retry");
let countdown = 0;

function showStatus(s) {
  clearInterval(countdown);
  statusEl.dataset.state = s.state;
  retryBtn.hidden = !(s.state === "waiting" || s.state === "refused");
  const ping = conn.pingMs !== null && s.state === "open" ? ` · ${conn.pingMs.toFixed(0)} ms` : "";
  if (s.state === "open") {
    statusText.textContent = `connected${ping}`;
    statusEl.title = `session ${s.session ?? "?"} on node ${s.node ?? "?"}`;
  } else if (s.state === "connecting") {
    statusText.textContent = s.attempt ? `connecting (try ${s.attempt + 1})…` : "connecting…";
  } else if (s.state === "waiting") {
    const tick = () => {
      const left = Math.max(0, (s.retryAt - Date.now()) / 1000);
      statusText.textContent = `${s.reason} · retry in ${left.toFixed(1)} s`;
    };
    tick();
    countdown = setInterval(tick, 200);
  } else if (s.state === "refused") {
    statusText.textContent = s.code === 4003 ? "unauthorized: check the token" : `refused: ${s.reason}`;
    $("#token-form").hidden = s.code !== 4003;
    if (s.code === 4003) $("#token-input").focus();
    log.note("refused", s.code === 4003 ? "unauthorized (4003): enter a token" : `${s.code}: ${s.reason}`, true);
  }
  document.title = s.state === "open" ? "framebridge" : `(${s.state === "waiting" ? "offline" : s.state}) framebridge`;
  const empty = $("#devices .empty");
  if (empty) {
    empty.textContent =
      s.state === "refused"
        ? s.code === 4003
          ? "The bridge needs a token: enter it above."
          : `The bridge refused the connection (${s.reason}).`
        : s.state === "waiting"
          ? `Cannot reach the bridge at ${wsUrl}; retrying.`
          : s.state === "open"
            ? "The bridge has no buses configured."
            : "Connecting to the bridge…";
  }
}

let lastStateWasOpen = false;
function onStatusChange(s) {
  if (s.state !== "open" && lastStateWasOpen) {
    log.note("disconnected", s.reason || s.state, true);
    resumeEl.dataset.state = "stale";
    resumeEl.textContent = `showing data as of ${new Date().toLocaleTimeString()}`;
  }
  lastStateWasOpen = s.state === "open";
  document.body.dataset.conn = s.state;
  showStatus(s);
}

async function onSession(info) {
  const buses = Object.keys(info.welcome?.buses || {});
  for (const b of buses) model.bus(b);
  model.node = info.welcome?.node ?? "";
  model.access = info.welcome?.access ?? null;
  showAccess();
  if (!info.resumed) {
    resumeEl.dataset.state = "fresh";
    resumeEl.textContent = "live";
    log.note("connected", `session ${info.welcome?.session ?? "?"} on node ${info.welcome?.node ?? "?"}`);
    await fetchState();
    await Promise.all(buses.map(fetchSeries));
    return;
  }
  const missed = Object.values(info.missed || {}).reduce((a, b) => a + b, 0);
  const lost = Object.entries(info.since || {})
    .filter(([bus]) => info.recovered[bus] !== true)
    .map(([bus]) => bus);
  if (!lost.length) {
    resumeEl.dataset.state = "recovered";
    resumeEl.textContent = `resumed · recovered ${missed} missed`;
    log.note("resumed", `recovered ${missed} missed message${missed === 1 ? "" : "s"}`);
  } else {
    resumeEl.dataset.state = "reloaded";
    resumeEl.textContent = `resumed · not recoverable (${lost.join(", ")}), state reloaded`;
    log.note("resumed", `history of ${lost.join(", ")} not recoverable (bridge restarted or gap too old): state reloaded`, true);
    await fetchState();
  }
  resumeEl.title = `session ${info.welcome?.session ?? "?"}; since ${JSON.stringify(info.since)}; recovered ${JSON.stringify(info.recovered)}`;
}

/** The node and what this token may do, in the top bar; write controls follow `access`. */
function showAccess() {
  $("#node").textContent = model.node ? `node ${model.node}` : "";
  const w = model.access?.write;
  const ro = Array.isArray(w) && w.length === 0;
  const accessEl = $("#access");
  accessEl.hidden = !Array.isArray(w);
  accessEl.textContent = ro ? "read-only" : Array.isArray(w) && !w.includes("*") ? `write: ${w.join(", ")}` : "read/write";
  accessEl.dataset.mode = ro ? "read" : "write";
  for (const d of model.devices()) model.changed(`${d.bus}/${d.addr}`);
  panel.refreshDevices(true);
}

/**
 * The bridge's recent values of a bus's registers (`/api/series`), so the charts show the last
 * minutes at once; merged under whatever arrived live meanwhile. A bridge without the endpoint
 * (404) or a refused token (401) leaves the charts to fill live.
 */
async function fetchSeries(bus) {
  const url = new URL(`api/series?bus=${encodeURIComponent(bus)}`, location.href);
  const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
  try {
    const r = await fetch(url, { headers, cache: "no-store" });
    if (!r.ok) return;
    model.applySeries(bus, await r.json());
    devicesView.renderCharts(true);
  } catch (err) {
    console.warn("framebridge: series of", bus, err);
  }
}

retryBtn.addEventListener("click", () => conn.retryNow());
$("#token-toggle").addEventListener("click", () => {
  const form = $("#token-form");
  form.hidden = !form.hidden;
  if (!form.hidden) $("#token-input").focus();
});
$("#token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("#token-input").value);
  $("#token-input").value = "";
  $("#token-form").hidden = true;
  conn.attempt = 0;
  conn.reconnect("new token");
});

$("#export-series").addEventListener("click", () => {
  download(`framebridge-series-${stamp()}.csv`, seriesCsv(model, devicesView));
});
$("#export-log").addEventListener("click", () => {
  download(`framebridge-log-${stamp()}.csv`, log.csv());
});
const stamp = () => new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);

// ---- chart window ---------------------------------------------------------------------

const windowSel = $("#chart-window");
windowSel.value = String(getWindowSeconds());
windowSel.addEventListener("change", () => {
  setWindowSeconds(Number(windowSel.value));
  devicesView.renderCharts(true);
});

// ---- render loop: DOM work at most once per animation frame ---------------------------

let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    devicesView.render();
    log.flush();
    panel.refreshDevices();
  });
}
model.subscribe(schedule);
const origPush = log.push.bind(log);
log.push = (e) => {
  origPush(e);
  schedule();
};

setInterval(() => devicesView.renderCharts(), 500);
setInterval(() => {
  devicesView.tick();
  log.updateStatus();
}, 1000);
// Background tabs get no animation frames: keep the DOM from lagging far behind.
setInterval(() => {
  if (document.visibilityState === "hidden") {
    devicesView.render();
    log.flush();
  }
}, 2000);

// For tests and for poking around from the devtools console.
window.framebridge = { model, conn, log, devicesView, panel, fetchState, fetchSeries };

conn.start();
