// Buses and device cards: status, identity, error counters, register tiles with a live value,
// an inline editor for writable registers and a chart each. Keyed DOM, updated per frame.

import { RegisterChart } from "./charts.js";
import { ERROR_KINDS } from "./model.js";
import { ago, formatValue } from "./wire.js";

const h = (tag, attrs = {}, ...kids) => {
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

export { h };

const slug = (s) => String(s).replace(/[^A-Za-z0-9_-]/g, "_");

export class DevicesView {
  /**
   * @param {HTMLElement} root
   * @param {import("./model.js").Model} model
   * @param {{write: (dev: object, reg: object, value: number) => Promise<object>}} actions
   */
  constructor(root, model, actions) {
    this.root = root;
    this.model = model;
    this.actions = actions;
    this.busEls = new Map();
    this.devEls = new Map();
    this.chartTick = 0;
  }

  /** Called once per animation frame when the model changed, and once a second for ages. */
  render(full = false) {
    const m = this.model;
    if (m.structureChanged || full) {
      m.structureChanged = false;
      this.layout();
    }
    for (const [name, b] of m.buses) {
      if (full || m.dirty.has(name)) this.updateBus(b);
    }
    for (const d of m.devices()) {
      const key = `${d.bus}/${d.addr}`;
      if (full || m.dirty.has(key) || m.dirty.has(d.bus)) this.updateDevice(d);
    }
    m.dirty.clear();
    const empty = this.root.querySelector(".empty");
    if (empty) empty.hidden = m.buses.size > 0;
  }

  /** Charts redraw at most a few times a second, whatever the frame rate of the data. */
  renderCharts(force = false) {
    for (const d of this.model.devices()) {
      const de = this.devEls.get(`${d.bus}/${d.addr}`);
      if (!de) continue;
      for (const [name, re] of de.regs) {
        const s = d.series.get(name);
        if (s) re.chart.update(s, force);
      }
    }
  }

  layout() {
    for (const b of [...this.model.buses.values()].sort((x, y) => x.name.localeCompare(y.name))) {
      let be = this.busEls.get(b.name);
      if (!be) {
        be = this.makeBus(b);
        this.busEls.set(b.name, be);
      }
      this.root.append(be.el);
      for (const d of [...b.devices.values()].sort((x, y) => x.addr - y.addr)) {
        const key = `${b.name}/${d.addr}`;
        let de = this.devEls.get(key);
        if (!de) {
          de = this.makeDevice(d);
          this.devEls.set(key, de);
        }
        be.grid.append(de.el);
        this.ensureRegisters(d, de);
      }
    }
  }

  makeBus(b) {
    const state = h("span", { class: "badge", "data-role": "bus-state" });
    const port = h("span", { class: "muted mono", "data-role": "bus-port" });
    const counters = h("span", { class: "muted small", "data-role": "bus-counters" });
    const error = h("p", { class: "bus-error", "data-role": "bus-error", hidden: true });
    const grid = h("div", { class: "device-grid" });
    const el = h(
      "section",
      { class: "bus", "data-bus": b.name, "aria-labelledby": `bus-${slug(b.name)}` },
      h("header", { class: "bus-head" }, h("h2", { id: `bus-${slug(b.name)}`, text: b.name }), state, port, counters),
      error,
      grid,
    );
    return { el, state, port, counters, error, grid };
  }

  updateBus(b) {
    const be = this.busEls.get(b.name);
    if (!be) return;
    const up = b.up;
    be.el.dataset.state = up === true ? "up" : up === false ? "down" : "unknown";
    be.state.textContent = up === true ? "bus up" : up === false ? "bus down" : "bus …";
    be.state.className = `badge ${up === true ? "ok" : up === false ? "bad" : "unknown"}`;
    be.port.textContent = b.port || "";
    be.counters.textContent = countersText(b.counters);
    be.error.hidden = up !== false;
    be.error.textContent = up === false ? `Port unavailable${b.error ? ": " + b.error : ""}. Devices show their last known values.` : "";
  }

  makeDevice(d) {
    const dot = h("span", { class: "dot", "aria-hidden": "true" });
    const title = h("h3", { class: "dev-title" });
    const status = h("span", { class: "badge", "data-role": "online" });
    const meta = h("dl", { class: "dev-meta" });
    const regs = h("div", { class: "regs" }, h("p", { class: "muted small no-regs", text: "No register values yet." }));
    const el = h(
      "article",
      { class: "device", "data-bus": d.bus, "data-addr": String(d.addr), tabindex: "-1" },
      h("header", { class: "dev-head" }, dot, title, status),
      meta,
      regs,
    );
    return { el, dot, title, status, meta, regsEl: regs, regs: new Map() };
  }

  ensureRegisters(d, de) {
    for (const reg of d.registers.values()) {
      if (de.regs.has(reg.name)) continue;
      const re = this.makeRegister(d, reg);
      de.regs.set(reg.name, re);
      de.regsEl.querySelector(".no-regs")?.remove();
      de.regsEl.append(re.el);
    }
  }

  makeRegister(d, reg) {
    const id = `r-${slug(d.bus)}-${d.addr}-${slug(reg.name)}`;
    const value = h("output", { class: "num", id: `${id}-v`, "data-role": "value" });
    const unit = h("span", { class: "unit", text: reg.unit });
    const chartBox = h("div", { class: "chart", "data-points": "0", role: "img", "aria-label": `${reg.name} over time` });
    const note = h("p", { class: "reg-note", id: `${id}-note`, "aria-live": "polite" });
    const line = h("div", { class: "reg-value" }, value, unit);
    const range = h("span", { class: "reg-range mono", "data-role": "range", hidden: true });
    const addr = h("span", { class: "reg-addr mono", "data-role": "reg-addr" });
    const el = h(
      "div",
      { class: "reg", "data-reg": reg.name },
      h(
        "div",
        { class: "reg-head" },
        h("span", { class: "reg-name", id: `${id}-n`, text: reg.name, title: reg.description || undefined }),
        h("span", { class: "reg-tags" }, range, addr),
      ),
      line,
      chartBox,
      note,
    );
    const re = { el, value, unit, line, note, range, addr, editBtn: null, chart: new RegisterChart(chartBox, reg.name, reg.unit), editing: false };
    this.syncWritable(d, reg, re);
    return re;
  }

  /**
   * Writable (the register map says so): an Edit button and the allowed range. Read-only: no
   * button at all. Unknown (a bridge without a register map): Edit, dashed, the device decides.
   */
  syncWritable(d, reg, re) {
    const w = reg.writable === true ? "true" : reg.writable === false ? "false" : "unknown";
    const rangeText = w === "false" ? "" : limitsText(reg);
    const key = `${w}|${rangeText}|${reg.unit}|${reg.address}`;
    if (re.syncKey === key) return;
    re.syncKey = key;
    re.el.dataset.writable = w;
    re.el.title = w === "false" ? `${reg.name} is read-only` : "";
    re.addr.textContent = reg.address !== null ? `#${reg.address}` : "";
    re.range.hidden = !rangeText;
    re.range.textContent = rangeText;
    re.range.title = rangeText ? `allowed ${rangeText}${reg.unit ? " " + reg.unit : ""}` : "";
    re.unit.textContent = reg.unit;
    if (w === "false") {
      re.editBtn?.remove();
      re.editBtn = null;
      return;
    }
    if (!re.editBtn) {
      re.editBtn = h("button", {
        type: "button",
        class: "edit",
        "aria-label": `Edit ${reg.name}`,
        text: "Edit",
        onclick: () => this.startEdit(d, reg.name, re),
      });
      re.line.append(re.editBtn);
    }
    re.editBtn.title = w === "unknown" ? `Try writing ${reg.name} (the bridge did not say whether it is writable)` : `Write ${reg.name}${rangeText ? " (" + rangeText + (reg.unit ? " " + reg.unit : "") + ")" : ""}`;
  }

  startEdit(d, name, re) {
    const reg = d.registers.get(name);
    if (!reg || re.editing) return;
    re.editing = true;
    const limits = limitsText(reg);
    const input = h("input", {
      type: "number",
      class: "reg-input",
      step: "any",
      min: reg.min ?? undefined,
      max: reg.max ?? undefined,
      "aria-label": `New value for ${name}${reg.unit ? " in " + reg.unit : ""}${limits ? ", " + limits : ""}`,
      "aria-describedby": re.note.id,
      value: typeof reg.value === "number" ? String(reg.value) : "",
      required: true,
    });
    const hint = () => {
      re.note.className = "reg-note";
      re.note.textContent = limits ? `allowed ${limits}${reg.unit ? " " + reg.unit : ""}` : "";
    };
    hint();
    const cancel = () => {
      re.editing = false;
      form.replaceWith(re.line);
      re.note.className = "reg-note";
      re.note.textContent = "";
      re.editBtn?.focus();
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
          const text = input.value.trim();
          const v = Number(text);
          // checked here, before anything is sent: range, step and type from the register map
          const enc = text === "" ? { error: "enter a value" } : this.model.encodeValue(reg, v);
          if (enc.error) {
            input.setAttribute("aria-invalid", "true");
            re.note.className = "reg-note bad";
            re.note.textContent = enc.error;
            input.focus();
            return;
          }
          cancel();
          re.note.className = "reg-note";
          re.note.textContent = "writing…";
          const r = await this.actions.write(d, reg, v);
          if (r.ok) {
            re.note.className = "reg-note ok";
            re.note.textContent = `written ${formatValue(v, reg.decimals)}${reg.unit ? " " + reg.unit : ""} · ${rttText(r)}`;
          } else {
            re.note.className = "reg-note bad";
            re.note.textContent = `${r.error?.code || "error"}: ${r.error?.message || ""}`;
          }
        },
      },
      input,
      reg.unit ? h("span", { class: "unit", text: reg.unit }) : null,
      h("button", { type: "submit", class: "primary small", text: "Set" }),
      h("button", { type: "button", class: "small", text: "✕", title: "Cancel (Esc)", "aria-label": "Cancel", onclick: cancel }),
    );
    form.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        ev.preventDefault();
        cancel();
      }
    });
    re.line.replaceWith(form);
    input.focus();
    input.select();
  }

  updateDevice(d) {
    const de = this.devEls.get(`${d.bus}/${d.addr}`);
    if (!de) return;
    this.ensureRegisters(d, de);
    const online = d.online;
    de.el.dataset.online = online === true ? "true" : online === false ? "false" : "unknown";
    de.title.textContent = `${d.name || d.model || "device"} @ ${d.addr}`;
    de.status.textContent = online === true ? "online" : online === false ? "offline" : "unknown";
    de.status.className = `badge ${online === true ? "ok" : online === false ? "bad" : "unknown"}`;
    const meta = [
      ["addr", `${d.addr} · 0x${d.addr.toString(16).padStart(2, "0")}`],
      ["model", d.model || "–"],
      ["firmware", d.firmware || "–"],
    ];
    if (d.uid !== null && d.uid !== undefined) meta.push(["uid", `0x${Number(d.uid).toString(16).padStart(8, "0")}`]);
    meta.push(["last seen", ago(d.lastSeen)], ["errors", countersText(d.errors) || "none"]);
    const counts = ERROR_KINDS.map((k) => `${k}=${d.errors[k] ?? 0}`);
    const text = meta.map(([k, v]) => `${k}=${v}`).join("|") + counts.join("|");
    if (de.metaText !== text) {
      de.metaText = text;
      de.meta.replaceChildren(
        ...meta.map(([k, v]) => {
          const role = k.replace(" ", "-");
          const bad = role === "errors" && v !== "none";
          const dd = h("dd", { text: v, "data-role": role });
          if (role === "errors") {
            // every counter, zero or not, for a hover and for tests: data-timeouts="3" …
            for (const k of ERROR_KINDS) dd.dataset[k.replace(/_(\w)/g, (_, c) => c.toUpperCase())] = String(d.errors[k] ?? 0);
            dd.title = ERROR_KINDS.map((k) => `${ERROR_LABELS[k]}: ${d.errors[k] ?? 0}`).join(", ");
          }
          return h("div", { class: bad ? "bad" : undefined }, h("dt", { text: k }), dd);
        }),
      );
    }
    for (const [name, re] of de.regs) {
      const reg = d.registers.get(name);
      if (!reg) continue;
      this.syncWritable(d, reg, re);
      re.chart.decimals = reg.decimals;
      const text = formatValue(reg.value, reg.decimals);
      if (re.value.textContent !== text) {
        re.value.textContent = text;
        re.el.classList.remove("flash");
        void re.el.offsetWidth; // restart the CSS animation
        re.el.classList.add("flash");
      }
    }
  }

  /** Once a second: "last seen" ages even when nothing arrives. */
  tick() {
    for (const d of this.model.devices()) {
      const de = this.devEls.get(`${d.bus}/${d.addr}`);
      const dd = de?.meta.querySelector('[data-role="last-seen"]');
      if (dd) dd.textContent = ago(d.lastSeen);
    }
  }
}

const ERROR_LABELS = { timeouts: "timeouts", device_errors: "device errors", crc_errors: "CRC errors", crc: "CRC errors" };

export function countersText(c) {
  if (!c) return "";
  return Object.entries(c)
    .filter(([, v]) => typeof v === "number" && v > 0)
    .map(([k, v]) => `${ERROR_LABELS[k] ?? k.replace(/_/g, " ")} ${v}`)
    .join(" · ");
}

/** "5–35", "≥ 0", "≤ 100" or "" from a register's min and max. */
export function limitsText(reg) {
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
