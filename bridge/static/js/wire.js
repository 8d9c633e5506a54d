// Wire contract v1, the parts with no I/O: batching, backoff, resume bookkeeping, formatting.
// Nothing here touches the DOM or a socket, so the tests can import it into a bare page.

/** Server messages arrive as one object or, batched, as an array of objects. */
export function unbatch(text) {
  const parsed = JSON.parse(text);
  if (Array.isArray(parsed)) return parsed.filter((m) => m && typeof m === "object");
  return parsed && typeof parsed === "object" ? [parsed] : [];
}

/**
 * Full-jitter exponential backoff: a uniform delay in [0, min(cap, base * 2^attempt)].
 * `random` is injectable so the bounds can be tested.
 */
export function backoffDelay(attempt, { baseMs = 500, capMs = 10000, random = Math.random } = {}) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * What each close code means: a label, whether to reconnect (and then resume with `since`),
 * and `slow` when the bridge asked for time (the backoff starts three doublings higher).
 * The same table as `bridge/client_policy.py` and docs/websocket.md ("Close codes"); a test
 * holds the three equal. Unknown codes reconnect.
 */
export const CLOSE_CODES = {
  1000: { label: "normal closure", reconnect: true },
  1001: { label: "going away", reconnect: true },
  1005: { label: "closed without a code", reconnect: true },
  1006: { label: "connection lost", reconnect: true },
  1008: { label: "policy violation", reconnect: false },
  1009: { label: "message too big", reconnect: false },
  1011: { label: "server error or missed pongs", reconnect: true },
  1012: { label: "service restart", reconnect: true },
  1013: { label: "node full, try again later", reconnect: true, slow: true },
  4000: { label: "slow consumer", reconnect: true },
  4001: { label: "no hello in time", reconnect: true },
  4002: { label: "server silent (closed by the client)", reconnect: true },
  4003: { label: "unauthorized", reconnect: false },
  4010: { label: "token expired (no refresh in time)", reconnect: false },
};

export function describeClose(code) {
  return CLOSE_CODES[code] || { label: `closed (${code})`, reconnect: true };
}

/**
 * Last epoch/seq seen per bus. `accept` says whether a sequenced message is new (to apply),
 * a duplicate (already applied, e.g. replayed twice) or after a gap.
 */
export class ResumeTracker {
  constructor() {
    /** @type {Map<string, {epoch: unknown, seq: number}>} */
    this.buses = new Map();
    this.gaps = 0;
    this.duplicates = 0;
  }

  /** @returns {"new"|"duplicate"|"gap"|"epoch"} */
  accept(bus, epoch, seq) {
    if (typeof seq !== "number") return "new";
    const last = this.buses.get(bus);
    if (!last || last.epoch !== epoch) {
      this.buses.set(bus, { epoch, seq });
      return last ? "epoch" : "new";
    }
    if (seq <= last.seq) {
      this.duplicates += 1;
      return "duplicate";
    }
    const verdict = seq === last.seq + 1 ? "new" : "gap";
    if (verdict === "gap") this.gaps += 1;
    last.seq = seq;
    return verdict;
  }

  /** Set a bus position without judging it (from welcome or a state snapshot). */
  set(bus, epoch, seq) {
    if (typeof seq === "number") this.buses.set(bus, { epoch, seq });
  }

  /** The `since` object of a resubscribe: every bus we have a position for. */
  since() {
    const out = {};
    for (const [bus, pos] of this.buses) out[bus] = { epoch: pos.epoch, seq: pos.seq };
    return out;
  }

  get size() {
    return this.buses.size;
  }
}

/** How many messages a resume will replay, per bus, from `since` and the welcome positions. */
export function missedCounts(since, welcomeBuses) {
  const out = {};
  for (const [bus, pos] of Object.entries(since || {})) {
    const now = welcomeBuses && welcomeBuses[bus];
    if (now && now.epoch === pos.epoch && typeof now.seq === "number") {
      out[bus] = Math.max(0, now.seq - pos.seq);
    }
  }
  return out;
}

// ---- formatting -------------------------------------------------------------------------

export const COMMAND_NAMES = {
  1: "identify",
  2: "echo",
  3: "read_regs",
  6: "write_reg",
  16: "write_regs",
};

export const DEVICE_ERRORS = {
  1: "illegal command",
  2: "illegal register",
  3: "illegal value",
  4: "device failure",
  5: "busy",
};

export function hex2(n) {
  return (n >>> 0).toString(16).padStart(2, "0");
}

/** "0x03 read_regs", "0x83 read_regs!" for an error reply, or a bare name passed through. */
export function commandLabel(cmd) {
  if (typeof cmd === "string") return cmd;
  if (typeof cmd !== "number") return "";
  const base = cmd & 0x7f;
  const name = COMMAND_NAMES[base] || "";
  const err = cmd & 0x80 ? " error" : "";
  return `0x${hex2(cmd)}${name ? " " + name : ""}${err}`;
}

/** Hex digits grouped in bytes: "0a0b0c" → "0a 0b 0c". */
export function spacedHex(data) {
  if (typeof data !== "string" || !data) return "";
  return data.replace(/(..)(?!$)/g, "$1 ");
}

/** Decoded fields in one compact line: `start=0 count=4` or `values=[215,400]`. */
export function fieldsText(fields) {
  if (!fields || typeof fields !== "object") return "";
  const parts = [];
  for (const [k, v] of Object.entries(fields)) {
    const s = Array.isArray(v) ? `[${v.join(",")}]` : v && typeof v === "object" ? JSON.stringify(v) : String(v);
    parts.push(`${k}=${s}`);
  }
  return parts.join(" ");
}

/** Wall-clock time with milliseconds, local: "14:03:07.123". */
export function clockTime(tsSeconds) {
  const d = new Date(tsSeconds * 1000);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** "now", "3 s ago", "2 min ago", "1 h ago". */
export function ago(tsSeconds, nowSeconds = Date.now() / 1000) {
  if (typeof tsSeconds !== "number" || !tsSeconds) return "never";
  const s = Math.max(0, nowSeconds - tsSeconds);
  if (s < 1.5) return "now";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** A register value for display: scaled numbers keep the decimals their scale implies. */
export function formatValue(value, decimals) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (typeof decimals === "number") return value.toFixed(decimals);
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

/** Even-length hex with optional spaces/0x → lowercase hex, or null when it is not hex. */
export function cleanHex(text) {
  const s = String(text || "").replace(/0x/gi, "").replace(/[\s:,-]/g, "").toLowerCase();
  if (s.length % 2 || /[^0-9a-f]/.test(s)) return null;
  return s;
}
