// The WebSocket session: hello → welcome → subscribe (with `since` after a reconnect) → live.
// The browser twin of `bridge/client.py`: the same close-code table (`CLOSE_CODES` in wire.js,
// printed in docs/websocket.md), full-jitter exponential backoff with the same floor as
// `frames.backoff.Backoff`, dead-server detection after DEAD_AFTER_HEARTBEATS × heartbeat_s of
// silence, and a state reload on `bus_reset`. Matches replies to requests by id and reports
// every state change to `onStatus`.

import { ResumeTracker, backoffDelay, describeClose, missedCounts, unbatch } from "./wire.js";

const HELLO_TIMEOUT_MS = 5000;
/** Silence (no message at all) for this many heartbeats means the server is gone. */
export const DEAD_AFTER_HEARTBEATS = 2.5;
/** A `slow` close (1013, node full): the backoff starts this many doublings higher. */
const SLOW_BACKOFF_STEPS = 3;

/** Both spellings of a reset: an `event` `bus_reset` on the bus stream, or a `bus_reset` message. */
export function isBusReset(m) {
  return m.type === "bus_reset" || (m.type === "event" && m.event === "bus_reset");
}

export class Connection {
  /**
   * @param {object} opts
   * @param {string} opts.url ws:// or wss:// URL of /ws
   * @param {() => string} opts.token returns the token to send in hello
   * @param {(msgs: object[]) => void} opts.onMessages sequenced and unsolicited server messages
   * @param {(status: object) => void} opts.onStatus connection status changes
   * @param {(info: object) => void} opts.onSession welcome + subscribed: {welcome, recovered, missed, resumed}
   */
  constructor({ url, token, onMessages, onStatus, onSession, baseMs = 500, capMs = 10000 }) {
    this.url = url;
    this.token = token;
    this.onMessages = onMessages;
    this.onStatus = onStatus;
    this.onSession = onSession;
    this.baseMs = baseMs;
    this.capMs = capMs;
    this.resume = new ResumeTracker();
    this.ws = null;
    this.attempt = 0;
    this.nextId = 1;
    /** @type {Map<string, {resolve: Function, timer: number, t0: number}>} */
    this.pending = new Map();
    this.status = { state: "idle" };
    this.heartbeatMs = 30000;
    this.watchdog = 0;
    this.retryTimer = 0;
    this.stopped = false;
    this.connects = 0;
    this.lastMessageAt = 0;
    this.pingMs = null;
    this.pingTimer = 0;
  }

  start() {
    this.stopped = false;
    window.addEventListener("online", () => this.retryNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.status.state === "waiting") this.retryNow();
    });
    this.open();
  }

  setStatus(patch) {
    this.status = { ...patch };
    this.onStatus(this.status);
  }

  open() {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    this.setStatus({ state: "connecting", attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.scheduleRetry(`cannot open: ${err.message}`, false);
      return;
    }
    this.ws = ws;
    const helloTimer = setTimeout(() => ws.close(4001, "no welcome"), HELLO_TIMEOUT_MS + 1000);
    ws.onopen = () => {
      this.sendRaw({ type: "hello", id: this.newId(), token: this.token() || "" });
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      this.lastMessageAt = performance.now();
      this.armWatchdog();
      let msgs;
      try {
        msgs = unbatch(ev.data);
      } catch {
        console.warn("framebridge: unparsable message", ev.data);
        return;
      }
      const passOn = [];
      let reset = false;
      for (const m of msgs) {
        if (m.type === "welcome") {
          clearTimeout(helloTimer);
          this.onWelcome(m);
        } else if (m.type === "subscribed") {
          this.onSubscribed(m);
        } else if ((m.type === "reply" || m.type === "pong" || m.type === "error" || m.type === "state") && this.pending.has(String(m.id))) {
          this.settle(m);
        } else if (m.type === "heartbeat") {
          // the watchdog was re-armed above; nothing else to do
        } else {
          // Frames and events share one seq per bus: drop what a replay already delivered.
          if (typeof m.bus === "string" && typeof m.seq === "number") {
            if (this.resume.accept(m.bus, m.epoch, m.seq) === "duplicate") continue;
          } else if (isBusReset(m)) {
            // unsequenced: the old position means nothing now
            if (typeof m.bus === "string") this.resume.buses.delete(m.bus);
            else this.resume.buses.clear();
          }
          if (isBusReset(m)) reset = true;
          passOn.push(m);
        }
      }
      if (passOn.length) this.onMessages(passOn);
      if (reset) this.reloadState();
    };
    ws.onclose = (ev) => {
      clearTimeout(helloTimer);
      if (ws !== this.ws) return;
      this.ws = null;
      clearTimeout(this.watchdog);
      clearInterval(this.pingTimer);
      this.failPending("connection lost");
      const what = describeClose(ev.code);
      if (!what.reconnect) {
        this.setStatus({ state: "refused", code: ev.code, reason: ev.reason || what.label });
        return;
      }
      this.scheduleRetry(`${what.label}${ev.reason ? ": " + ev.reason : ""}`, Boolean(what.slow), ev.code);
    };
    ws.onerror = () => {
      // onclose follows and decides what to do
    };
  }

  onWelcome(w) {
    this.welcome = w;
    this.heartbeatMs = Math.max(1, Number(w.heartbeat_s) || 30) * 1000;
    this.armWatchdog();
    const since = this.resume.since();
    const resumed = this.resume.size > 0;
    this.pendingSubscribe = { since, resumed, missed: missedCounts(since, w.buses) };
    const msg = { type: "subscribe", id: this.newId(), topics: ["*"] };
    if (resumed) msg.since = since;
    this.sendRaw(msg);
  }

  onSubscribed(s) {
    this.attempt = 0;
    this.connects += 1;
    const info = { welcome: this.welcome, recovered: s.recovered || {}, ...this.pendingSubscribe };
    // Buses that are new to us, or not recovered, start from the welcome position: whatever
    // the state snapshot shows is at least that fresh.
    for (const [bus, pos] of Object.entries(this.welcome.buses || {})) {
      if (!info.resumed || info.recovered[bus] !== true) this.resume.set(bus, pos.epoch, pos.seq);
    }
    this.setStatus({ state: "open", session: this.welcome.session, node: this.welcome.node });
    this.onSession(info);
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.ping(), 10000);
    this.ping();
  }

  /** After a `bus_reset`: fetch `state` and hand it on like any message (the page applies it). */
  async reloadState() {
    const r = await this.request({ type: "state" }, 8000);
    if (r.type === "state") this.onMessages([r]);
  }

  async ping() {
    const t0 = performance.now();
    const r = await this.request({ type: "ping" }, 5000);
    if (r.type === "pong") {
      this.pingMs = performance.now() - t0;
      this.onStatus(this.status);
    }
  }

  armWatchdog() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.ws) this.ws.close(4002, "silent");
      // Chrome may take a while to fire onclose for a dead peer: treat it as gone now.
      this.dropSocket("no heartbeat");
    }, DEAD_AFTER_HEARTBEATS * this.heartbeatMs);
  }

  dropSocket(reason) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    try {
      ws.close();
    } catch {
      /* already closing */
    }
    clearTimeout(this.watchdog);
    clearInterval(this.pingTimer);
    this.failPending("connection lost");
    this.scheduleRetry(reason, false);
  }

  scheduleRetry(reason, slow, code) {
    if (this.stopped) return;
    if (slow) this.attempt = Math.max(this.attempt, SLOW_BACKOFF_STEPS);
    // floored at baseMs, as frames.backoff.Backoff floors at min_s: no tight loop on a 0 draw
    const delay = Math.max(this.baseMs, backoffDelay(this.attempt, { baseMs: this.baseMs, capMs: this.capMs }));
    this.attempt += 1;
    const at = Date.now() + delay;
    this.setStatus({ state: "waiting", reason, code, retryAt: at, attempt: this.attempt });
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  /** Drop the socket (if any) and connect again now: a new token goes out in a new hello. */
  reconnect(reason = "reconnect") {
    if (this.ws) this.dropSocket(reason);
    this.retryNow();
  }

  retryNow() {
    if (this.status.state === "waiting" || this.status.state === "refused") {
      clearTimeout(this.retryTimer);
      this.open();
    }
  }

  newId() {
    return `c${this.nextId++}`;
  }

  sendRaw(obj) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  /**
   * Send a message with a fresh id; resolves with the answer (reply, pong, state or error),
   * or a synthetic `{type:"reply", ok:false, error:{code:"timeout"|"disconnected"}}`.
   * Never rejects. `elapsed_ms` is the browser-side round trip.
   */
  request(msg, timeoutMs = 5000) {
    const id = this.newId();
    const t0 = performance.now();
    return new Promise((resolve) => {
      const done = (m) => resolve({ ...m, elapsed_ms: performance.now() - t0 });
      if (!this.sendRaw({ ...msg, id })) {
        done({ type: "reply", id, ok: false, error: { code: "disconnected", message: "not connected" } });
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        done({ type: "reply", id, ok: false, error: { code: "timeout", message: `no answer in ${timeoutMs} ms` } });
      }, timeoutMs);
      this.pending.set(id, { resolve: done, timer, t0 });
    });
  }

  settle(m) {
    const p = this.pending.get(String(m.id));
    if (!p) return;
    this.pending.delete(String(m.id));
    clearTimeout(p.timer);
    p.resolve(m);
  }

  failPending(message) {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.resolve({ type: "reply", id, ok: false, error: { code: "disconnected", message } });
    }
    this.pending.clear();
  }
}
