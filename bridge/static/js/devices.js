// Buses and device cards: status, identity, error counters, register tiles with a live value,
// an inline editor for writable registers and a chart each. Keyed DOM, updated per frame.

import { ERROR_KINDS } from "./model.js";
import { RegisterTile, h, limitsText, rttText, slug } from "./tiles.js";
import { ago } from "./wire.js";

export { h, limitsText, rttText };

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
        if (s && re.chart) re.chart.update(s, force);
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
    be.port.textContent = b.port ? `port ${b.port}` : "";
    be.port.title = b.port ? "the serial port (or URL) this bus owner talks to" : "";
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
    const m = this.model;
    return new RegisterTile(d, reg, {
      write: this.actions.write,
      mayWrite: (dev) => m.mayWrite(dev.bus, dev.addr),
      encode: (r, text) => m.encodeValue(r, text),
    });
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
      if (!d.registers.get(name)) continue;
      if (re.show()) {
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
