// CSV exports: the points the charts show right now (their visible time span, zoomed or live)
// and the frame log as filtered. RFC 4180 quoting; times as ISO 8601 UTC and Unix seconds.

/** One CSV field: quoted when it holds a comma, a quote or a line break. */
export function csvField(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvLines(header, rows) {
  return [header, ...rows].map((r) => r.map(csvField).join(",")).join("\r\n") + "\r\n";
}

export const iso = (ts) => new Date(ts * 1000).toISOString();

/** Every chart's visible points: time, bus, device, register, value (in its unit), unit. */
export function seriesCsv(model, view) {
  const rows = [];
  for (const d of model.devices()) {
    const de = view.devEls.get(`${d.bus}/${d.addr}`);
    if (!de) continue;
    for (const [name, tile] of de.regs) {
      if (!tile.chart) continue;
      const reg = d.registers.get(name);
      for (const [t, v] of tile.chart.visible()) {
        rows.push([iso(t), t.toFixed(3), d.bus, d.addr, d.name || d.model, name, v === null ? "" : v, reg?.unit || ""]);
      }
    }
  }
  return csvLines(["time", "unix_s", "bus", "addr", "device", "register", "value", "unit"], rows);
}

/** Offer `text` as a file download (no server round trip). */
export function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
