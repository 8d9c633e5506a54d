// What the page knows: buses → devices → registers, with a bounded time series per register.
// Fed by the `state` snapshot, `/api/series` (the bridge's recent values, so charts start full)
// and live frames/events; views read it and never write it.

import { decodeWords, digitsOf, encodeNumber, encodeText, mayWrite, wordCount } from "./registers.js";
import { Series } from "./series.js";

export { SERIES_POINTS, Series } from "./series.js";
const VERSION_KEYS = ["firmware", "firmware_version", "fw", "version"];
/** The per-device counters the bridge keeps (`errors` in a device's state). */
export const ERROR_KINDS = ["timeouts", "device_errors", "crc_errors"];

/** A register description, whatever shape the bridge sends (array item or name → value). */
function normRegister(raw, nameHint) {
  const r = raw && typeof raw === "object" ? raw : { value: raw };
  const scale = typeof r.scale === "number" && r.scale > 0 ? r.scale : 1;
  const address = [r.address, r.reg, r.addr, r.index].find((x) => typeof x === "number");
  return {
    name: String(r.name ?? nameHint ?? `reg${address}`),
    address: address ?? null,
    unit: r.unit || "",
    writable: typeof r.writable === "boolean" ? r.writable : false,
    writableKnown: typeof r.writable === "boolean",
    typeKnown: typeof r.type === "string",
    scale,
    type: r.type || "u16",
    decimals: digitsOf(scale),
    min: typeof r.min === "number" ? r.min : typeof r.minimum === "number" ? r.minimum : null,
    max: typeof r.max === "number" ? r.max : typeof r.maximum === "number" ? r.maximum : null,
    description: r.description || "",
    labels: r.labels && typeof r.labels === "object" ? r.labels : null,
    bits: r.bits && typeof r.bits === "object" ? r.bits : null,
    wordOrder: r.word_order || "big",
    value: r.value ?? null,
    ts: typeof r.ts === "number" ? r.ts : null,
  };
}

function firmwareText(d) {
  for (const k of VERSION_KEYS) {
    const v = d[k];
    if (Array.isArray(v)) return v.join(".");
    if (v !== undefined && v !== null && v !== "") return String(v);
  }
  return "";
}

/** Descriptions are objects with a name or an address; raw words are plain numbers. */
function isDescriptions(x) {
  const items = Array.isArray(x) ? x : x && typeof x === "object" ? Object.values(x) : [];
  return items.length > 0 && items.every((v) => v && typeof v === "object" && ("name" in v || "writable" in v || "unit" in v));
}

function asList(x) {
  if (Array.isArray(x)) return x.map((v) => [undefined, v]);
  if (x && typeof x === "object") return Object.entries(x);
  return [];
}

export class Model {
  constructor() {
    /** @type {Map<string, object>} */
    this.buses = new Map();
    this.listeners = new Set();
    this.dirty = new Set(); // "bus" or "bus/addr" keys changed since the views last looked
    this.structureChanged = true; // buses/devices/registers added or removed
    this.node = "";
    this.access = null; // welcome.access: {read, write} patterns; null = not said (allow)
  }

  /** May this page write to the device (welcome.access.write)? */
  mayWrite(busName, addr) {
    return mayWrite(this.access, busName, addr);
  }

  /** `/api/series` of one bus: {devices: {addr: {register: {t, v}}}} under the live points. */
  applySeries(busName, answer) {
    for (const [a, regs] of Object.entries(answer?.devices || {})) {
      const d = this.buses.get(busName)?.devices.get(Number(a));
      if (!d) continue;
      for (const [name, pts] of Object.entries(regs)) {
        if (Array.isArray(pts?.t) && Array.isArray(pts?.v)) this.seriesOf(d, name).merge(pts.t, pts.v);
      }
    }
  }

  subscribe(fn) {
    this.listeners.add(fn);
  }

  changed(key, structural = false) {
    this.dirty.add(key);
    if (structural) this.structureChanged = true;
    for (const fn of this.listeners) fn();
  }

  bus(name) {
    let b = this.buses.get(name);
    if (!b) {
      // stateAt: the bus position ({epoch, seq}) the last `state` reflects; live events at or
      // before it are already in its counters.
      b = { name, up: null, port: "", error: "", since: null, devices: new Map(), counters: {}, stateAt: null };
      this.buses.set(name, b);
      this.structureChanged = true;
    }
    return b;
  }

  device(busName, addr) {
    const b = this.bus(busName);
    let d = b.devices.get(addr);
    if (!d) {
      d = {
        bus: busName,
        addr,
        online: null,
        model: "",
        name: "",
        firmware: "",
        uid: null,
        identityKnown: false, // the bridge's state carries model/firmware/uid (null until identified)
        profile: "",
        lastSeen: null,
        errors: {},
        registers: new Map(),
        series: new Map(),
      };
      b.devices.set(addr, d);
      this.structureChanged = true;
    }
    return d;
  }

  /** Apply a `state` answer. Tolerant of lists or maps at each level. */
  applyState(state) {
    const buses = state.buses ?? state.state?.buses ?? {};
    for (const [key, rb] of asList(buses)) {
      const name = String(rb.name ?? rb.bus ?? key);
      const b = this.bus(name);
      if (typeof rb.up === "boolean") b.up = rb.up;
      else if (typeof rb.state === "string") b.up = rb.state === "up";
      b.port = rb.url || rb.port || b.port;
      // why the bus is down ("" when up); a bridge without `reason` keeps what an event said
      if (typeof rb.reason === "string" || typeof rb.error === "string") b.error = rb.reason || rb.error || "";
      else if (b.up) b.error = "";
      if (typeof rb.seq === "number") b.stateAt = { epoch: rb.epoch ?? null, seq: rb.seq };
      if (rb.counters && typeof rb.counters === "object") b.counters = { ...rb.counters };
      const profiles = state.profiles ?? rb.profiles;
      for (const [dkey, rd] of asList(rb.devices)) this.applyDeviceState(name, dkey, rd, profiles);
      // the bridge may remember a device as online; on a bus that is down it cannot be reached
      if (b.up === false) for (const d of b.devices.values()) this.markOffline(d);
      this.changed(name, true);
    }
  }

  applyDeviceState(busName, key, rd, profiles) {
    const addr = Number(rd.addr ?? rd.address ?? key);
    if (!Number.isFinite(addr)) return;
    const d = this.device(busName, addr);
    if (typeof rd.online === "boolean") d.online = rd.online;
    // model, firmware ([major, minor, patch]) and uid: null until the bridge has identified
    // the device; a null never erases what an identify reply frame already told the page.
    if ("model" in rd || rd.identity) d.identityKnown = true;
    d.model = rd.model ?? rd.identity?.model ?? d.model;
    d.name = rd.name ?? d.name;
    d.firmware = firmwareText(rd) || firmwareText(rd.identity || {}) || d.firmware;
    d.uid = rd.uid ?? rd.identity?.uid ?? d.uid;
    d.profile = rd.profile ?? d.profile;
    const seen = rd.last_seen ?? rd.lastSeen;
    if (typeof seen === "number") d.lastSeen = seen;
    const errs = rd.errors ?? rd.error_counters ?? rd.counters;
    if (errs && typeof errs === "object") {
      d.errors = {};
      for (const k of ERROR_KINDS) d.errors[k] = 0;
      for (const [k, v] of Object.entries(errs)) if (typeof v === "number") d.errors[k] = v;
      d.errorsKnown = true;
    }
    // Register descriptions (name, address, unit, scale, writable) from wherever they come:
    // the device itself, or the profile table of the snapshot.
    const maps = [rd.register_map, rd.map, rd.profile_registers, profiles?.[d.profile]?.registers ?? profiles?.[d.profile]];
    if (isDescriptions(rd.registers)) maps.push(rd.registers);
    for (const map of maps) {
      for (const [rkey, rr] of asList(map)) {
        this.mergeRegister(d, normRegister({ ...rr, value: rr.value ?? null }, rkey), false);
        d.mapKnown = true;
      }
    }
    // Live values: name → {value, unit, raw, ts} (or a bare number).
    for (const [rkey, rr] of asList(rd.values)) this.mergeRegister(d, normRegister(rr, rkey), true, d.lastSeen);
    if (!d.mapKnown) this.inferMap(d, rd);
    // Raw words by address, decoded with the map when there is no named value.
    if (rd.registers && !isDescriptions(rd.registers) && !rd.values) {
      const raws = Object.entries(rd.registers).filter(([, v]) => typeof v === "number");
      for (const [a, raw] of raws) this.setValuesQuiet(d, this.decodeRaw(busName, addr, Number(a), [raw]), d.lastSeen);
    }
    this.changed(`${busName}/${addr}`);
  }

  /**
   * No register map in the snapshot: recover addresses and scales from what it does have.
   * `registers` is address → raw word and `values` is name → {value, raw}, both in address
   * order, so walking them together pairs each name with its address; a pair is taken only
   * when the raw words agree. Writability stays unknown (null): the page offers a write and
   * lets the device say no.
   */
  inferMap(d, rd) {
    const raws = rd.registers && typeof rd.registers === "object" && !isDescriptions(rd.registers) ? rd.registers : null;
    const values = rd.values && typeof rd.values === "object" ? Object.entries(rd.values) : [];
    if (!raws || !values.length) return;
    const addrs = Object.keys(raws).map(Number).filter(Number.isFinite).sort((a, b) => a - b);
    let i = 0;
    for (const [name, v] of values) {
      if (!v || typeof v !== "object" || typeof v.raw !== "number") continue;
      while (i < addrs.length && raws[addrs[i]] !== v.raw) i++;
      if (i >= addrs.length) break;
      const reg = d.registers.get(name);
      if (reg) {
        reg.address = addrs[i];
        if (reg.writable === false && !reg.writableKnown) reg.writable = null;
        if (typeof v.value === "number" && v.raw !== 0 && v.value !== v.raw) {
          const signed = v.raw >= 0x8000 && v.value < 0 ? v.raw - 0x10000 : v.raw;
          const scale = Number((v.value / signed).toPrecision(6));
          if (scale > 0) {
            reg.scale = scale;
            reg.decimals = digitsOf(scale);
          }
          if (v.value < 0) reg.type = "i16";
        } else if (typeof v.value === "number" && !Number.isInteger(v.value)) {
          reg.decimals = 2;
        }
        reg.typeKnown = false;
      }
      i++;
    }
    this.structureChanged = true;
  }

  mergeRegister(d, reg, isValue, fallbackTs) {
    const old = d.registers.get(reg.name);
    if (!old) {
      this.structureChanged = true;
      d.registers.set(reg.name, reg);
    } else {
      for (const [k, v] of Object.entries(reg)) {
        if (v === null || v === undefined || v === "") continue;
        if (!isValue || k === "value" || k === "ts" || k === "unit") old[k] = v;
      }
      if (!isValue) Object.assign(old, { writable: reg.writable, writableKnown: reg.writableKnown, scale: reg.scale, decimals: reg.decimals });
    }
    if (isValue && typeof reg.value === "number") {
      this.seriesOf(d, reg.name).push(reg.ts ?? fallbackTs ?? Date.now() / 1000, reg.value);
    }
  }

  setValuesQuiet(d, values, ts) {
    for (const [name, value] of Object.entries(values)) {
      const reg = d.registers.get(name);
      if (!reg) continue;
      reg.value = value;
      this.seriesOf(d, name).push(ts ?? Date.now() / 1000, value);
    }
  }

  seriesOf(d, name) {
    let s = d.series.get(name);
    if (!s) {
      s = new Series();
      d.series.set(name, s);
    }
    return s;
  }

  /** Named values for a device at time ts (from a decoded poll or a write echo). */
  setValues(busName, addr, values, ts) {
    const d = this.device(busName, addr);
    for (const [name, value] of Object.entries(values)) {
      let reg = d.registers.get(name);
      if (!reg) {
        reg = normRegister({ name }, name);
        d.registers.set(name, reg);
        this.structureChanged = true;
      }
      reg.value = value;
      reg.ts = ts;
      this.seriesOf(d, name).push(ts, value);
    }
    d.lastSeen = Math.max(d.lastSeen || 0, ts);
    if (d.online !== true) d.online = true;
    this.changed(`${busName}/${addr}`);
  }

  /** Raw words read from `start` → named engineering values, using the device's register map. */
  decodeRaw(busName, addr, start, raws) {
    const d = this.buses.get(busName)?.devices.get(addr);
    if (!d) return {};
    const byAddr = new Map();
    for (const r of d.registers.values()) if (r.address !== null) byAddr.set(r.address, r);
    const out = {};
    raws.forEach((raw, i) => {
      const r = byAddr.get(start + i);
      if (!r || typeof raw !== "number") return;
      const v = decodeWords(r, raws.slice(i, i + wordCount(r)));
      if (v !== undefined) out[r.name] = v; // a two-word register cut by the read: skipped
    });
    return out;
  }

  /** A typed value (text, as a person wrote it) → {words, value} for a write, or {error}. */
  encodeValue(reg, value) {
    return typeof value === "number" ? encodeNumber(reg, value) : encodeText(reg, value);
  }

  setBusUp(busName, up, reason = "") {
    const b = this.bus(busName);
    b.up = up;
    b.error = up ? "" : reason;
    if (!up) {
      for (const d of b.devices.values()) this.markOffline(d);
    }
    this.changed(busName, true);
  }

  markOffline(d) {
    d.online = false;
    const now = Date.now() / 1000;
    for (const s of d.series.values()) s.gap(now);
  }

  setOnline(busName, addr, online, ts) {
    const d = this.device(busName, addr);
    if (!online) this.markOffline(d);
    d.online = online;
    if (online && typeof ts === "number") d.lastSeen = ts;
    this.changed(`${busName}/${addr}`);
  }

  /**
   * Count an error seen live (`at`: the message's {epoch, seq}). The bridge's `state` is the
   * truth: a message it already covers (same epoch, seq at or before the snapshot's) is skipped,
   * and the next `state` replaces these counts.
   */
  bumpError(busName, addr, kind, n = 1, at = null) {
    const b = this.bus(busName);
    const s = b.stateAt;
    if (at && s && typeof at.seq === "number" && (at.epoch ?? null) === s.epoch && at.seq <= s.seq) return false;
    if (typeof addr === "number") {
      const d = this.device(busName, addr);
      d.errors[kind] = (d.errors[kind] || 0) + n;
      this.changed(`${busName}/${addr}`);
    } else {
      b.counters[kind] = (b.counters[kind] || 0) + n;
      this.changed(busName);
    }
    return true;
  }

  /** What an identify reply said (fields of the reply frame). */
  setIdentity(busName, addr, f) {
    if (!f || !f.model) return;
    const d = this.device(busName, addr);
    d.model = String(f.model);
    if (Array.isArray(f.firmware)) d.firmware = f.firmware.join(".");
    else if (f.firmware) d.firmware = String(f.firmware);
    if (typeof f.uid === "number") d.uid = f.uid;
    this.changed(`${busName}/${addr}`);
  }

  /** Every known device, sorted by bus then address. */
  devices() {
    const out = [];
    for (const b of [...this.buses.values()].sort((x, y) => x.name.localeCompare(y.name))) {
      for (const d of [...b.devices.values()].sort((x, y) => x.addr - y.addr)) out.push(d);
    }
    return out;
  }
}
