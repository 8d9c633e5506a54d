// Register values by meaning, the browser twin of frames/register.py: words ↔ value for every
// type of the device map (u16 i16 bool enum bitfield u32 i32 f32), scale, labels and bits.
// Pure: no DOM, so the tests import it into a bare page and compare with the Python side.

export const WIDE = new Set(["u32", "i32", "f32"]);
const UNSCALED = new Set(["bool", "enum", "bitfield"]);
const INT_RANGE = {
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
  bool: [0, 1],
  enum: [0, 0xffff],
  bitfield: [0, 0xffff],
};

/** Display decimals a scale implies: 0.01 → 2, 1 → 0. */
export function digitsOf(scale) {
  if (!scale || scale >= 1) return 0;
  return Math.min(6, Math.max(0, Math.ceil(-Math.log10(scale) - 1e-9)));
}

/** Words a register takes on the wire. */
export function wordCount(reg) {
  return WIDE.has(reg.type) ? 2 : 1;
}

/** A whole number from the register's words (high word first unless word_order is little). */
function rawInt(reg, words) {
  if (!WIDE.has(reg.type)) return words[0] & 0xffff;
  const [hi, lo] = reg.wordOrder === "little" ? [words[1], words[0]] : [words[0], words[1]];
  return ((hi & 0xffff) * 0x10000 + (lo & 0xffff)) >>> 0;
}

/** Words → value: numbers scaled, bool true/false, f32 NaN → null (no reading). */
export function decodeWords(reg, words) {
  if (words.length < wordCount(reg) || words.some((w) => typeof w !== "number")) return undefined;
  const n = rawInt(reg, words);
  if (reg.type === "bool") return n !== 0;
  if (reg.type === "enum" || reg.type === "bitfield") return n;
  let v = n;
  if (reg.type === "i16" && n >= 0x8000) v = n - 0x10000;
  else if (reg.type === "i32" && n >= 0x80000000) v = n - 0x100000000;
  else if (reg.type === "f32") {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setUint32(0, n);
    v = dv.getFloat32(0);
    if (!Number.isFinite(v)) return null;
    v = Number(v.toPrecision(7));
  }
  return reg.scale === 1 ? v : Number((v * reg.scale).toFixed(Math.max(reg.decimals, digitsOf(reg.scale))));
}

/**
 * A value typed by a person → the words to write, or an error that says why not.
 * Bools take on/off/true/false/1/0; enums a label or its number; numbers their unit's value
 * (23.5 for 23.5 °C at scale 0.01, not 2350), checked against min, max, step and type.
 */
export function encodeText(reg, text) {
  const s = String(text ?? "").trim();
  if (s === "") return { error: "enter a value" };
  if (reg.type === "bool") {
    const on = { on: 1, true: 1, 1: 1, off: 0, false: 0, 0: 0 }[s.toLowerCase()];
    return on === undefined ? { error: "on or off" } : { words: [on], value: on === 1 };
  }
  if (reg.type === "enum" && reg.labels) {
    for (const [k, label] of Object.entries(reg.labels)) if (label === s) return encodeNumber(reg, Number(k));
    const n = Number(s);
    if (Number.isInteger(n) && String(n) in reg.labels) return encodeNumber(reg, n);
    return { error: `one of ${Object.values(reg.labels).join(", ")}` };
  }
  if (!/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s)) return { error: "not a number" };
  return encodeNumber(reg, Number(s));
}

export function encodeNumber(reg, value) {
  if (!Number.isFinite(value)) return { error: "not a number" };
  if (reg.writable === false && reg.writableKnown) return { error: "read-only register" };
  if (reg.min !== null && value < reg.min) return { error: `below minimum ${reg.min}` };
  if (reg.max !== null && value > reg.max) return { error: `above maximum ${reg.max}` };
  if (reg.type === "f32") {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setFloat32(0, value / reg.scale);
    const n = dv.getUint32(0);
    return { words: splitWords(reg, n), value };
  }
  const scale = UNSCALED.has(reg.type) ? 1 : reg.scale;
  const n = Math.round(value / scale);
  if (Math.abs(value / scale - n) > 1e-6) return { error: `not a multiple of ${scale} (its step)` };
  const [lo, hi] = !reg.typeKnown ? [-0x8000, 0xffff] : INT_RANGE[reg.type] || INT_RANGE.u16;
  if (n < lo || n > hi) return { error: `does not fit ${reg.type}${scale !== 1 ? " at scale " + scale : ""}` };
  if (!WIDE.has(reg.type)) return { words: [n & 0xffff], value };
  return { words: splitWords(reg, n >>> 0), value };
}

function splitWords(reg, n) {
  const hi = Math.floor(n / 0x10000) & 0xffff;
  const lo = n & 0xffff;
  return reg.wordOrder === "little" ? [lo, hi] : [hi, lo];
}

/** The request that writes `words` to a register: write_reg for one word, write_regs for two
 * (a device answers a single write_reg to half a 32-bit register with error 2). */
export function writeRequest(reg, words) {
  if (words.length === 1) return { cmd: "write_reg", args: { reg: reg.address, value: words[0] } };
  return { cmd: "write_regs", args: { start: reg.address, values: words } };
}

/** A value as the page shows it: "on"/"off", an enum's label, a scaled number with its
 * decimals; bitfields as their number (the view draws the bits). */
export function displayValue(reg, value) {
  if (value === null || value === undefined) return "–";
  if (reg.type === "bool" || typeof value === "boolean") return value ? "on" : "off";
  if (reg.type === "enum" && reg.labels && typeof value === "number") return reg.labels[String(value)] ?? String(value);
  if (typeof value !== "number") return String(value);
  if (reg.type === "f32" && reg.scale === 1) return String(Number(value.toPrecision(6)));
  return value.toFixed(reg.decimals);
}

/** The text of a value with its unit: "23.50 °C". */
export function withUnit(reg, value) {
  const text = displayValue(reg, value);
  return reg.unit && text !== "–" ? `${text} ${reg.unit}` : text;
}

/** A bitfield's named bits, lowest first: [{bit, name, on}]. */
export function bitsOf(reg, value) {
  const out = [];
  for (const [bit, name] of Object.entries(reg.bits || {}).sort((a, b) => a[0] - b[0])) {
    out.push({ bit: Number(bit), name, on: typeof value === "number" && ((value >> Number(bit)) & 1) === 1 });
  }
  return out;
}

/** A register value as a chart point (bool → 0/1; not a number → null). */
export function chartPoint(value) {
  if (typeof value === "boolean") return value ? 1 : 0;
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/**
 * May this client write to bus/addr? `write` holds welcome.access.write patterns: `*`,
 * `bus/*`, `bus/addr`, or a tenant's `bus/addr:write_reg` (only the named commands: a control is
 * shown when one of the page's write commands is among them). No access in welcome (an older
 * bridge): unknown → true, the bridge decides.
 */
// Commands the page writes registers with (names and codes, as tenant patterns may name them).
const WRITE_COMMANDS = new Set(["write_reg", "write_regs", "6", "16"]);

export function mayWrite(access, bus, addr) {
  if (!access || !Array.isArray(access.write)) return true;
  return access.write.some((pattern) => {
    // "bus0/2:write_reg": a tenant pattern limited to some commands (docs/tenants.md)
    const [target, commands] = String(pattern).split(":", 2);
    const hit = target === "*" || target === `${bus}/*` || target === `${bus}/${addr}`;
    if (!hit) return false;
    return commands === undefined || commands.split(",").some((c) => WRITE_COMMANDS.has(c.trim()));
  });
}
