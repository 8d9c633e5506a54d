// One register tile: its value by meaning (a number in its unit, on/off, an enum's label, a
// bitfield's named bits as LEDs), its chart, and the write control this client may use: a
// switch for a bool, a select for an enum, an editor for a number. No control at all where the
// register map says read-only or welcome.access does not allow writing to the device.

import { RegisterChart } from "./charts.js";
import { bitsOf, displayValue, withUnit } from "./registers.js";

export const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) el.append(kid);
  return el;
};

export const slug = (s) => String(s).replace(/[^A-Za-z0-9_-]/g, "_");

/** "5–35", "≥ 0", "≤ 100" or "" from a register's min and max. */
export function limitsText(reg) {
  if (reg.type === "bool" || reg.type === "enum") return "";
  const lo = typeof reg.min === "number" ? reg.min : null;
  const hi = typeof reg.max === "number" ? reg.max : null;
  if (lo !== null && hi !== null) return `${lo}–${hi}`;
  if (lo !== null) return `≥ ${lo}`;
  if (hi !== null) return `≤ ${hi}`;
  return "";
}

export function rttText(r) {
  const parts = [];
  if (typeof r.rtt_ms === "number") parts.push(`device ${r.rtt_ms.toFixed(1)} ms`);
  if (typeof r.elapsed_ms === "number") parts.push(`round trip ${r.elapsed_ms.toFixed(0)} ms`);
  return parts.join(" · ");
}

export class RegisterTile {
  /**
   * @param {object} d the device (model.js)
   * @param {object} reg its register
   * @param {{write: Function, mayWrite: Function, encode: Function}} ctx
   */
  constructor(d, reg, ctx) {
    this.d = d;
    this.name = reg.name;
    this.ctx = ctx;
    this.editing = false;
    const id = `r-${slug(d.bus)}-${d.addr}-${slug(reg.name)}`;
    this.id = id;
    this.value = h("output", { class: "num", id: `${id}-v`, "data-role": "value" });
    this.unit = h("span", { class: "unit", text: reg.unit });
    this.leds = h("div", { class: "leds", "data-role": "bits", hidden: true });
    this.note = h("p", { class: "reg-note", id: `${id}-note`, "aria-live": "polite" });
    this.line = h("div", { class: "reg-value" }, this.value, this.unit);
    this.range = h("span", { class: "reg-range mono", "data-role": "range", hidden: true });
    this.addr = h("span", { class: "reg-addr mono", "data-role": "reg-addr" });
    this.control = null; // Edit button, switch or select
    const charted = reg.type !== "bitfield";
    const chartBox = charted ? h("div", { class: "chart", "data-points": "0", role: "img", "aria-label": `${reg.name} over time` }) : null;
    this.el = h(
      "div",
      { class: "reg", "data-reg": reg.name, "data-type": reg.type },
      h(
        "div",
        { class: "reg-head" },
        h("span", { class: "reg-name", id: `${id}-n`, text: reg.name, title: reg.description || undefined }),
        h("span", { class: "reg-tags" }, this.range, this.addr),
      ),
      this.line,
      this.leds,
      chartBox,
      this.note,
    );
    this.chart = charted ? new RegisterChart(chartBox, reg, (v) => withUnit(this.reg(), v)) : null;
  }

  reg() {
    return this.d.registers.get(this.name);
  }

  /** Write controls, range and unit: redone only when what they depend on changed. */
  sync() {
    const reg = this.reg();
    const allowed = this.ctx.mayWrite(this.d);
    const w = reg.writable === true ? "true" : reg.writable === false ? "false" : "unknown";
    const show = w !== "false" && allowed;
    const rangeText = w === "false" ? "" : limitsText(reg);
    const key = `${w}|${allowed}|${rangeText}|${reg.unit}|${reg.address}|${reg.type}|${JSON.stringify(reg.labels)}`;
    if (this.syncKey === key) return;
    this.syncKey = key;
    this.el.dataset.writable = w;
    this.el.dataset.access = allowed ? "write" : "read";
    this.el.title = w === "false" ? `${reg.name} is read-only` : !allowed ? "this token may not write here" : "";
    this.addr.textContent = reg.address !== null ? `#${reg.address}` : "";
    this.range.hidden = !rangeText || !show;
    this.range.textContent = rangeText;
    this.range.title = rangeText ? `allowed ${rangeText}${reg.unit ? " " + reg.unit : ""}` : "";
    this.unit.textContent = reg.unit;
    this.control?.remove();
    this.control = null;
    if (!show) return;
    if (reg.type === "bool") {
      this.control = h("button", {
        type: "button",
        class: "switch",
        role: "switch",
        "aria-checked": "false",
        "aria-label": `${reg.name} on/off`,
        onclick: () => this.send(this.reg().value ? "off" : "on"),
      });
    } else if (reg.type === "enum" && reg.labels) {
      const sel = h("select", { class: "enum-pick", "aria-label": `Set ${reg.name}` });
      for (const [k, label] of Object.entries(reg.labels)) sel.append(h("option", { value: k, text: label }));
      sel.addEventListener("change", () => this.send(sel.value));
      this.control = sel;
    } else {
      this.control = h("button", {
        type: "button",
        class: "edit",
        "aria-label": `Edit ${reg.name}`,
        text: "Edit",
        title: w === "unknown" ? `Try writing ${reg.name} (the bridge did not say whether it is writable)` : `Write ${reg.name}`,
        onclick: () => this.startEdit(),
      });
    }
    this.line.append(this.control);
  }

  /** The value by meaning; true when it changed (the view flashes it). */
  show() {
    const reg = this.reg();
    this.sync();
    const v = reg.value;
    const text = displayValue(reg, v);
    if (reg.type === "bool") {
      this.el.dataset.on = v === true ? "true" : v === false ? "false" : "";
      if (this.control?.getAttribute("role") === "switch") this.control.setAttribute("aria-checked", v ? "true" : "false");
    }
    if (reg.type === "enum" && this.control?.tagName === "SELECT" && document.activeElement !== this.control) {
      if (typeof v === "number") this.control.value = String(v);
    }
    if (reg.type === "bitfield" && reg.bits) {
      this.leds.hidden = false;
      const bits = bitsOf(reg, v);
      const key = bits.map((b) => `${b.name}${b.on ? 1 : 0}`).join(",");
      if (this.leds.dataset.key !== key) {
        this.leds.dataset.key = key;
        this.leds.replaceChildren(
          ...bits.map((b) => h("span", { class: "led", "data-bit": String(b.bit), "data-on": b.on ? "true" : "false", title: `bit ${b.bit}: ${b.on ? "on" : "off"}`, text: b.name })),
        );
      }
    }
    if (this.value.textContent === text) return false;
    this.value.textContent = text;
    return true;
  }

  async send(text) {
    const reg = this.reg();
    const enc = this.ctx.encode(reg, text);
    if (enc.error) {
      this.say("bad", enc.error);
      return false;
    }
    this.say("", "writing…");
    const r = await this.ctx.write(this.d, reg, text);
    if (r.ok) this.say("ok", `written ${withUnit(reg, enc.value)} · ${rttText(r)}`);
    else this.say("bad", `${r.error?.code || "error"}: ${r.error?.message || ""}`);
    return r.ok;
  }

  say(kind, text) {
    this.note.className = `reg-note${kind ? " " + kind : ""}`;
    this.note.textContent = text;
  }

  startEdit() {
    const reg = this.reg();
    if (!reg || this.editing) return;
    this.editing = true;
    const limits = limitsText(reg);
    // text, not type=number: the whole value stays visible and nothing is silently rounded
    const input = h("input", {
      type: "text",
      inputmode: "decimal",
      class: "reg-input",
      autocomplete: "off",
      spellcheck: "false",
      "aria-label": `New value for ${reg.name}${reg.unit ? " in " + reg.unit : ""}${limits ? ", " + limits : ""}`,
      "aria-describedby": this.note.id,
      value: typeof reg.value === "number" ? displayValue(reg, reg.value) : "",
    });
    const hint = () => this.say("", limits ? `allowed ${limits}${reg.unit ? " " + reg.unit : ""}` : "");
    hint();
    const cancel = () => {
      this.editing = false;
      form.replaceWith(this.line);
      this.say("", "");
      this.control?.focus();
    };
    input.addEventListener("input", () => {
      input.removeAttribute("aria-invalid");
      hint();
    });
    const form = h(
      "form",
      {
        class: "reg-edit",
        novalidate: true,
        onsubmit: async (ev) => {
          ev.preventDefault();
          // checked here, before anything is sent: range, step and type from the register map
          const enc = this.ctx.encode(reg, input.value);
          if (enc.error) {
            input.setAttribute("aria-invalid", "true");
            this.say("bad", enc.error);
            input.focus();
            return;
          }
          cancel();
          await this.send(input.value);
        },
      },
      h("span", { class: "reg-edit-value" }, input, reg.unit ? h("span", { class: "unit", text: reg.unit }) : null),
      h(
        "span",
        { class: "reg-edit-buttons" },
        h("button", { type: "submit", class: "primary small", text: "Set" }),
        h("button", { type: "button", class: "small", text: "✕", title: "Cancel (Esc)", "aria-label": "Cancel", onclick: cancel }),
      ),
    );
    form.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        ev.preventDefault();
        cancel();
      }
    });
    this.line.replaceWith(form);
    input.focus();
    input.select();
  }
}
