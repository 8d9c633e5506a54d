// The command panel: pick a device and a command, send it, see the reply or the error with its
// round-trip time. Registers are picked by name; values are in engineering units.

import { withUnit, writeRequest } from "./registers.js";
import { h, limitsText, rttText } from "./tiles.js";
import { cleanHex, commandLabel, fieldsText, spacedHex } from "./wire.js";

const MAX_RESULTS = 20;

export class CommandPanel {
  /**
   * @param {HTMLFormElement} form
   * @param {HTMLElement} results
   * @param {import("./model.js").Model} model
   * @param {{request: (msg: object) => Promise<object>, write: Function}} actions
   */
  constructor(form, results, model, actions) {
    this.form = form;
    this.results = results;
    this.model = model;
    this.actions = actions;
    this.devSel = form.elements["cmd-device"];
    this.cmdSel = form.elements["cmd-name"];
    this.argsBox = form.querySelector('[data-role="cmd-args"]');
    this.errorEl = form.querySelector('[data-role="cmd-error"]');
    this.devicesKey = "";
    this.cmdSel.addEventListener("change", () => this.renderArgs());
    this.devSel.addEventListener("change", () => this.renderArgs());
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.send();
    });
    this.renderArgs();
  }

  /** Refill the device list when devices appear (keeps the selection). */
  refreshDevices(force = false) {
    // every request needs write access (a read-only token's are refused): only those devices
    const devs = this.model.devices().filter((d) => this.model.mayWrite(d.bus, d.addr));
    // the register map arriving (writable, limits) changes the write list, not just its size
    const none = devs.length === 0 && this.model.devices().length > 0;
    const key = `${none}|` + devs.map((d) => `${d.bus}/${d.addr}/${d.model}/${d.name}/${d.registers.size}/${d.mapKnown ? 1 : 0}`).join(",");
    if (key === this.devicesKey && !force) return;
    this.form.hidden = none;
    this.form.parentElement.querySelector('[data-role="cmd-none"]').hidden = !none;
    this.devicesKey = key;
    const keep = this.devSel.value;
    this.devSel.replaceChildren(
      ...devs.map((d) => h("option", { value: `${d.bus}/${d.addr}`, text: `${d.bus} · ${d.addr} · ${d.name || d.model || "device"}` })),
    );
    if (keep && devs.some((d) => `${d.bus}/${d.addr}` === keep)) this.devSel.value = keep;
    this.renderArgs();
  }

  device() {
    const [bus, addr] = (this.devSel.value || "").split("/");
    return this.model.buses.get(bus)?.devices.get(Number(addr)) ?? null;
  }

  renderArgs() {
    const d = this.device();
    const cmd = this.cmdSel.value;
    const regs = d ? [...d.registers.values()].sort((a, b) => (a.address ?? 0) - (b.address ?? 0)) : [];
    const field = (label, input, hint) =>
      h("label", { class: "field" }, h("span", { text: label }), input, hint ? h("small", { class: "muted", text: hint }) : null);
    const kids = [];
    if (cmd === "read") {
      const sel = h("select", { name: "arg-reg" }, h("option", { value: "*", text: "all registers" }));
      for (const r of regs) if (r.address !== null) sel.append(h("option", { value: r.name, text: `${r.name} (#${r.address})` }));
      kids.push(field("Register", sel));
    } else if (cmd === "write") {
      // only what the register map says is writable (a bridge without a map: every register, "?")
      const writable = regs.filter((r) => r.writable !== false && r.address !== null);
      const sel = h("select", { name: "arg-reg", required: true });
      for (const r of writable) {
        const unknown = r.writable === true ? "" : " ?";
        const lim = limitsText(r);
        sel.append(h("option", { value: r.name, text: `${r.name}${r.unit ? " (" + r.unit + ")" : ""}${lim ? " " + lim : ""}${unknown}` }));
      }
      if (!writable.length) sel.append(h("option", { value: "", text: "no writable register" }));
      const val = h("input", { name: "arg-value", type: "text", required: true, inputmode: "decimal", autocomplete: "off", spellcheck: "false" });
      const hint = h("small", { class: "muted", "data-role": "write-hint" });
      const sync = () => {
        const r = d?.registers.get(sel.value);
        const lim = r ? limitsText(r) : "";
        const kinds = r?.type === "bool" ? " · on or off" : r?.type === "enum" && r.labels ? ` · ${Object.values(r.labels).join(", ")}` : "";
        hint.textContent = r ? `now ${withUnit(r, r.value)}${lim ? ` · allowed ${lim}` : ""}${kinds}` : "no writable register";
        if (r && val.value === "" && r.value !== null && r.value !== undefined) val.value = withUnit({ ...r, unit: "" }, r.value);
        check();
      };
      // checked as you type, and again before sending: nothing out of range leaves the page
      const check = () => {
        const r = d?.registers.get(sel.value);
        const bad = r && val.value.trim() !== "" ? this.model.encodeValue(r, val.value).error : null;
        if (bad) val.setAttribute("aria-invalid", "true");
        else val.removeAttribute("aria-invalid");
        this.errorEl.textContent = bad ? `${r.name}: ${bad}` : "";
      };
      val.addEventListener("input", check);
      sel.addEventListener("change", () => {
        val.value = "";
        sync();
      });
      sync();
      kids.push(field("Register", sel), h("label", { class: "field" }, h("span", { text: "Value" }), val, hint));
    } else if (cmd === "echo") {
      kids.push(field("Data (hex)", h("input", { name: "arg-data", class: "mono", placeholder: "01 02 03", autocomplete: "off", spellcheck: "false" })));
    } else if (cmd === "raw") {
      kids.push(
        field("Command", h("input", { name: "arg-cmd", class: "mono", placeholder: "0x03", required: true, autocomplete: "off", spellcheck: "false" }), "0..127, hex or decimal"),
        field("Data (hex)", h("input", { name: "arg-data", class: "mono", placeholder: "00 00 04", autocomplete: "off", spellcheck: "false" })),
      );
    }
    this.argsBox.replaceChildren(...kids);
  }

  /** The request message for the form, or an error string. */
  build() {
    const d = this.device();
    if (!d) return { error: "no device selected" };
    const base = { type: "request", bus: d.bus, addr: d.addr };
    const el = this.form.elements;
    const cmd = this.cmdSel.value;
    if (cmd === "identify") return { msg: { ...base, cmd: "identify" }, label: "identify" };
    if (cmd === "read") {
      const regs = [...d.registers.values()].filter((r) => r.address !== null);
      const pick = el["arg-reg"].value;
      const chosen = pick === "*" ? regs : regs.filter((r) => r.name === pick);
      if (!chosen.length) return { error: "this device has no known registers; use raw" };
      const start = Math.min(...chosen.map((r) => r.address));
      const end = Math.max(...chosen.map((r) => r.address));
      const count = Math.min(120, end - start + 1);
      return { msg: { ...base, cmd: "read_regs", args: { start, count } }, label: `read ${pick === "*" ? "all" : pick}`, start };
    }
    if (cmd === "write") {
      const reg = d.registers.get(el["arg-reg"]?.value);
      if (!reg || reg.writable === false) return { error: "pick a writable register" };
      if (el["arg-value"].value.trim() === "") return { error: `${reg.name}: enter a value` };
      const enc = this.model.encodeValue(reg, el["arg-value"].value);
      if (enc.error) return { error: `${reg.name}: ${enc.error}` };
      const shown = withUnit(reg, enc.value);
      return { msg: { ...base, ...writeRequest(reg, enc.words) }, label: `write ${reg.name} = ${shown}`, reg, words: enc.words };
    }
    if (cmd === "echo") {
      const data = cleanHex(el["arg-data"].value);
      if (data === null) return { error: "data must be hex bytes" };
      return { msg: { ...base, cmd: "echo", data }, label: "echo" };
    }
    const code = Number(el["arg-cmd"].value.trim());
    if (!Number.isInteger(code) || code < 0 || code > 127) return { error: "command must be 0..127" };
    const data = cleanHex(el["arg-data"].value);
    if (data === null) return { error: "data must be hex bytes" };
    return { msg: { ...base, cmd: code, data }, label: `raw ${commandLabel(code)}` };
  }

  async send() {
    const b = this.build();
    this.errorEl.textContent = b.error || "";
    if (b.error) return;
    const d = this.device();
    const item = h("li", { class: "result pending" });
    item.append(
      h("div", { class: "result-head" }, h("strong", { text: b.label }), h("span", { class: "muted", text: ` → ${d.bus} · ${d.addr}` }), h("span", { class: "badge unknown", text: "sent" })),
    );
    this.results.prepend(item);
    while (this.results.children.length > MAX_RESULTS) this.results.lastElementChild.remove();
    const r = await this.actions.request(b.msg);
    item.classList.remove("pending");
    item.classList.add(r.ok ? "ok" : "bad");
    const badge = item.querySelector(".badge");
    badge.className = `badge ${r.ok ? "ok" : "bad"}`;
    badge.textContent = r.ok ? "ok" : r.error?.code || "error";
    const lines = [];
    if (r.ok) {
      let fields = r.fields;
      if (b.msg.cmd === "identify") this.model.setIdentity(d.bus, d.addr, fields);
      if (b.reg) {
        // the device's echo, decoded like a poll: "setpoint = 23.50 °C", not value=2350
        const echoed = Array.isArray(fields?.values) ? fields.values : typeof fields?.value === "number" ? [fields.value] : b.words;
        const named = this.model.decodeRaw(d.bus, d.addr, b.reg.address, echoed);
        if (b.reg.name in named) {
          fields = { [b.reg.name]: withUnit(b.reg, named[b.reg.name]) };
          this.model.setValues(d.bus, d.addr, named, Date.now() / 1000);
        }
      }
      if (b.msg.cmd === "read_regs" && Array.isArray(fields?.values)) {
        const named = this.model.decodeRaw(d.bus, d.addr, b.start, fields.values);
        if (Object.keys(named).length) fields = named;
        this.model.setValues(d.bus, d.addr, named, Date.now() / 1000);
      }
      if (fields && Object.keys(fields).length) lines.push(h("div", { class: "mono wrap", text: fieldsText(fields) }));
      if (r.data) lines.push(h("div", { class: "mono muted wrap", text: `data ${spacedHex(r.data)}` }));
    } else {
      lines.push(h("div", { class: "wrap", text: r.error?.message || JSON.stringify(r.error || r) }));
    }
    lines.push(h("div", { class: "muted small", text: rttText(r) }));
    item.append(...lines);
  }
}
