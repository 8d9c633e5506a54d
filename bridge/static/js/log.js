// The frame log: live tx/rx frames and bus events, newest on top. Entries go into a bounded
// buffer; the table is touched at most once per animation frame and keeps at most MAX_ROWS rows.

import { csvLines, iso } from "./export.js";
import { h } from "./tiles.js";
import { COMMAND_NAMES, clockTime, commandLabel, fieldsText, hex2, spacedHex } from "./wire.js";

const READ_REGS = 3;
const CODES = Object.fromEntries(Object.entries(COMMAND_NAMES).map(([k, v]) => [v, Number(k)]));

export const MAX_ROWS = 500;
const MAX_BUFFER = 2000;

/** A frame or event message → a log entry. */
export function toEntry(m, named = null) {
  if (m.type === "frame") {
    const cmd = typeof m.cmd === "number" ? m.cmd : null;
    const bad = m.crc_ok === false || m.ok === false || Boolean(m.error) || (cmd !== null && (cmd & 0x80) !== 0);
    return {
      kind: "frame",
      ts: m.ts ?? Date.now() / 1000,
      bus: m.bus ?? "",
      seq: m.seq,
      dir: m.dir ?? "",
      addr: typeof m.addr === "number" ? m.addr : null,
      cmd,
      cmdName: cmd !== null ? COMMAND_NAMES[cmd & 0x7f] || "" : String(m.cmd ?? ""),
      hex: m.data ?? "",
      fields: m.fields,
      named,
      crc: m.crc_ok === false,
      kindOf: m.kind || "",
      bad,
    };
  }
  const ev = m.event ?? "";
  const extra = { ...m };
  for (const k of ["type", "bus", "seq", "epoch", "ts", "event", "addr"]) delete extra[k];
  return {
    kind: "event",
    ts: m.ts ?? Date.now() / 1000,
    bus: m.bus ?? "",
    seq: m.seq,
    dir: "",
    // a CRC error belongs to the device whose reply was awaited (`awaiting`), when known
    addr: typeof m.addr === "number" ? m.addr : typeof m.awaiting === "number" ? m.awaiting : null,
    cmd: null,
    cmdName: ev,
    hex: m.raw ?? m.data ?? "",
    fields: extra,
    crc: ev === "crc_error",
    bad: ev === "crc_error" || ev === "bus_down" || ev === "device_offline",
    good: ev === "bus_up" || ev === "device_online",
  };
}

export class FrameLog {
  constructor(root) {
    this.root = root;
    this.tbody = root.querySelector("tbody");
    this.busSel = root.querySelector('[name="log-bus"]');
    this.addrIn = root.querySelector('[name="log-addr"]');
    this.cmdSel = root.querySelector('[name="log-cmd"]');
    this.pauseBtn = root.querySelector('[data-action="pause"]');
    this.clearBtn = root.querySelector('[data-action="clear"]');
    this.statusEl = root.querySelector('[data-role="log-status"]');
    this.buffer = [];
    this.queue = []; // arrived since the last render
    this.paused = false;
    this.heldBack = 0;
    this.total = 0;
    this.rateWindow = [];
    this.buses = new Set();
    this.filter = { bus: "", addr: null, cmd: "", hidePolls: false };
    this.rowCount = 0;
    this.hidePollsBox = root.querySelector('[name="log-hide-polls"]');
    this.openTx = new Map(); // bus/addr/cmd → the request frame awaiting its reply
    this.pairs = 0;
    this.own = new Map(); // bus/addr/cmd → requests this page sent and has not seen on the wire

    const refilter = () => {
      this.readFilter();
      this.rerender();
    };
    this.busSel.addEventListener("change", refilter);
    this.cmdSel.addEventListener("change", refilter);
    this.addrIn.addEventListener("input", refilter);
    this.hidePollsBox.addEventListener("change", refilter);
    this.pauseBtn.addEventListener("click", () => this.setPaused(!this.paused));
    this.clearBtn.addEventListener("click", () => {
      this.buffer = [];
      this.queue = [];
      this.heldBack = 0;
      this.tbody.replaceChildren();
      this.rowCount = 0;
      this.updateStatus();
    });
  }

  readFilter() {
    const a = this.addrIn.value.trim();
    const n = a === "" ? null : Number(a.startsWith("0x") ? parseInt(a, 16) : a);
    this.filter = { bus: this.busSel.value, addr: Number.isFinite(n) ? n : null, cmd: this.cmdSel.value, hidePolls: this.hidePollsBox.checked };
  }

  matches(e) {
    const f = this.filter;
    if (f.bus && e.bus !== f.bus) return false;
    if (f.addr !== null && e.addr !== f.addr) return false;
    if (f.hidePolls && e.poll) return false;
    if (f.cmd) {
      if (f.cmd === "events") return e.kind === "event";
      if (f.cmd === "errors") return e.bad;
      if (e.kind !== "frame" || (e.cmd & 0x7f) !== Number(f.cmd)) return false;
    }
    return true;
  }

  setPaused(p) {
    this.paused = p;
    this.pauseBtn.setAttribute("aria-pressed", p ? "true" : "false");
    this.pauseBtn.textContent = p ? "Resume" : "Pause";
    this.root.classList.toggle("paused", p);
    if (!p) {
      this.heldBack = 0;
      this.rerender();
    }
    this.updateStatus();
  }

  add(m, named = null) {
    this.push(toEntry(m, named));
  }

  /** The page is about to send `msg` (a request): its frames are not the bridge's polls. */
  expectOwn(msg) {
    const code = typeof msg.cmd === "number" ? msg.cmd : CODES[msg.cmd];
    if (typeof code !== "number") return;
    const key = `${msg.bus}/${msg.addr}/${code}`;
    this.own.set(key, (this.own.get(key) || 0) + 1);
  }

  /**
   * Pair a reply with its request (same bus, address and command, the error bit aside): both
   * rows get one pair number, the reply the time since its request. A read_regs pair the page
   * did not ask for is a poll (the "hide polls" filter).
   */
  pair(e) {
    if (e.kind !== "frame" || e.cmd === null || e.kindOf) return;
    const key = `${e.bus}/${e.addr}/${e.cmd & 0x7f}`;
    if (e.dir === "tx") {
      e.pair = ++this.pairs;
      const own = this.own.get(key) || 0;
      if (own) this.own.set(key, own - 1);
      e.poll = (e.cmd & 0x7f) === READ_REGS && !own;
      this.openTx.set(key, e);
      if (this.openTx.size > 512) this.openTx.delete(this.openTx.keys().next().value);
    } else if (e.dir === "rx") {
      const tx = this.openTx.get(key);
      if (!tx) return;
      this.openTx.delete(key);
      e.pair = tx.pair;
      e.rttMs = Math.max(0, (e.ts - tx.ts) * 1000);
      e.poll = tx.poll && (e.cmd & 0x80) === 0; // a failed poll stays visible
    }
  }

  /** The log as CSV: what the filters let through, oldest first. */
  csv() {
    const rows = this.buffer
      .filter((e) => this.matches(e))
      .map((e) => [
        iso(e.ts),
        e.ts.toFixed(6),
        e.bus,
        e.local ? "page" : e.kind === "event" ? "event" : e.dir,
        e.addr ?? "",
        e.kind === "event" ? "" : e.cmd ?? "",
        e.kind === "event" ? e.cmdName : COMMAND_NAMES[(e.cmd ?? 0) & 0x7f] || "",
        e.hex,
        e.named && Object.keys(e.named).length ? fieldsText(e.named) : e.local ? e.fields?.note || "" : fieldsText(e.fields),
        e.pair ?? "",
        typeof e.rttMs === "number" ? e.rttMs.toFixed(1) : "",
      ]);
    return csvLines(["time", "unix_s", "bus", "dir", "addr", "cmd", "name", "hex", "decoded", "pair", "reply_ms"], rows);
  }

  push(e) {
    this.pair(e);
    this.total += 1;
    this.rateWindow.push(performance.now());
    if (e.bus && !this.buses.has(e.bus)) {
      this.buses.add(e.bus);
      this.busSel.append(h("option", { value: e.bus, text: e.bus }));
    }
    this.buffer.push(e);
    if (this.buffer.length > MAX_BUFFER * 1.25) this.buffer.splice(0, this.buffer.length - MAX_BUFFER);
    if (this.paused) this.heldBack += 1;
    else this.queue.push(e);
  }

  /** A local note in the log (connection changes), not from the bridge. */
  note(title, detail = "", bad = false) {
    const e = toEntry({ type: "event", event: title, ts: Date.now() / 1000, bus: "" });
    e.fields = detail ? { note: detail } : null;
    e.bad = bad;
    e.good = !bad;
    e.local = true;
    this.push(e);
  }

  /** Once per animation frame. */
  flush() {
    this.updateStatus();
    if (this.paused || !this.queue.length) return;
    const fresh = this.queue.filter((e) => this.matches(e));
    this.queue = [];
    if (!fresh.length) return;
    const take = fresh.slice(-MAX_ROWS);
    const frag = document.createDocumentFragment();
    for (let i = take.length - 1; i >= 0; i--) frag.append(this.row(take[i]));
    this.tbody.prepend(frag);
    this.rowCount += take.length;
    while (this.rowCount > MAX_ROWS) {
      this.tbody.lastElementChild?.remove();
      this.rowCount -= 1;
    }
  }

  rerender() {
    this.queue = [];
    const rows = [];
    for (let i = this.buffer.length - 1; i >= 0 && rows.length < MAX_ROWS; i--) {
      if (this.matches(this.buffer[i])) rows.push(this.row(this.buffer[i]));
    }
    this.tbody.replaceChildren(...rows);
    this.rowCount = rows.length;
    this.updateStatus();
  }

  row(e) {
    const cls = ["r", e.kind === "event" ? "evt" : e.dir];
    if (e.bad) cls.push("bad");
    if (e.crc) cls.push("crc");
    if (e.good) cls.push("good");
    if (e.local) cls.push("local");
    if (e.pair) cls.push(e.pair % 2 ? "pair-odd" : "pair-even");
    if (e.poll) cls.push("poll");
    const tr = document.createElement("tr");
    tr.className = cls.join(" ");
    if (e.pair) tr.dataset.pair = String(e.pair);
    const decoded = e.local ? e.fields?.note || "" : fieldsText(e.fields);
    const cells = [
      clockTime(e.ts),
      e.bus,
      e.local ? "page" : e.kind === "event" ? "event" : e.dir === "tx" ? "tx →" : e.dir === "rx" ? "← rx" : e.dir,
      e.addr === null ? "" : String(e.addr),
      null,
      spacedHex(e.hex),
      decoded,
    ];
    for (const text of cells) {
      const td = document.createElement("td");
      if (text !== null) td.textContent = text;
      tr.append(td);
    }
    // the command: its code (hidden on a phone) and its name, never cut
    const cmdTd = tr.cells[4];
    if (e.kind === "event") cmdTd.textContent = e.local ? e.cmdName : e.cmdName.replace(/_/g, " ");
    else if (typeof e.cmd === "number") {
      const name = COMMAND_NAMES[e.cmd & 0x7f] || "";
      cmdTd.append(h("span", { class: "code", text: `0x${hex2(e.cmd)}${name ? " " : ""}` }), name || "");
      if (e.cmd & 0x80) cmdTd.append(" error");
      cmdTd.title = commandLabel(e.cmd);
    } else cmdTd.textContent = e.cmdName;
    if (typeof e.rttMs === "number") {
      const rtt = h("span", { class: "rtt", "data-role": "rtt", text: ` ${e.rttMs.toFixed(e.rttMs < 10 ? 1 : 0)} ms` });
      tr.cells[2].append(rtt);
      tr.cells[2].title = `reply ${e.rttMs.toFixed(1)} ms after its request (pair ${e.pair})`;
    }
    if (e.named && Object.keys(e.named).length) {
      // registers by name; the raw decoded fields stay one hover away
      tr.lastElementChild.textContent = fieldsText(e.named);
      tr.lastElementChild.title = decoded;
    }
    return tr;
  }

  /** Once a second: rate and held-back counts. */
  updateStatus() {
    const now = performance.now();
    while (this.rateWindow.length && now - this.rateWindow[0] > 1000) this.rateWindow.shift();
    const parts = [`${this.rateWindow.length}/s`, `${this.total} total`];
    if (this.paused) parts.push(`paused, ${this.heldBack} new`);
    this.statusEl.textContent = parts.join(" · ");
  }
}
