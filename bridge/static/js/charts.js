// One uPlot time-series chart per register value: a time axis, a hover read-out (time and
// value with its unit), drag to zoom into a time span, double-click to go back to the live
// window. uPlot is loaded as a classic script (vendor/uplot/uPlot.iife.min.js) on `window.uPlot`.

const CHART_HEIGHT = 96;
let windowSeconds = 120;

export function setWindowSeconds(s) {
  windowSeconds = s;
}

export function getWindowSeconds() {
  return windowSeconds;
}

/** The live x range: the last `windowSeconds`, or less while the data is younger than that (a
 * fresh page shows a full chart, not a sliver at the right edge); at least 10 s. */
export function xRange(first, last, nowS = Date.now() / 1000) {
  const now = Math.max(last || 0, nowS);
  const start = typeof first === "number" ? first : now;
  return [Math.max(now - windowSeconds, Math.min(start, now - 10)), now];
}

/**
 * The y range of a register's chart. Two-state registers (bool, or an integer limited to 0..1
 * like a relay) get exactly 0..1; enums their labelled values. A flat or nearly flat line gets
 * a span of at least ten display steps around it, rounded to the order of the value (22.00 →
 * 21..23, 230.0 → 220..240), never 21.99/22.00/22.01; otherwise the data's range plus 10 %.
 */
export function yRange(min, max, reg) {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (isTwoState(reg)) return [0, 1];
  if (reg.type === "enum" && reg.labels) {
    const keys = Object.keys(reg.labels).map(Number);
    return [Math.min(min, ...keys), Math.max(max, ...keys)];
  }
  const mid = (min + max) / 2;
  const order = mid === 0 ? 1 : 10 ** Math.floor(Math.log10(Math.abs(mid)));
  const step = reg.type === "f32" ? order / 100 : 10 ** -(reg.decimals || 0);
  const minSpan = Math.max(10 * step, order / 5);
  if (max - min < minSpan) {
    const unit = Math.max(step, minSpan / 2);
    let lo = Math.floor((mid - minSpan / 2) / unit) * unit;
    let hi = Math.ceil((mid + minSpan / 2) / unit) * unit;
    if (min >= 0 && lo < 0) [lo, hi] = [0, hi - lo];
    return [lo, hi];
  }
  const pad = (max - min) * 0.1;
  const lo = min >= 0 && min - pad < 0 ? 0 : min - pad;
  return [lo, max + pad];
}

export function isTwoState(reg) {
  return reg.type === "bool" || (reg.min === 0 && reg.max === 1 && (reg.decimals || 0) === 0);
}

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

const pad2 = (n) => String(n).padStart(2, "0");
const clock = (s) => {
  const d = new Date(s * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
};

/** A chart for one register (`reg`: its description; `format(value)` → "21.53 °C"). */
export class RegisterChart {
  constructor(container, reg, format) {
    this.container = container;
    this.reg = reg;
    this.format = format;
    this.plot = null;
    this.seenVersion = -1;
    this.width = 0;
    this.zoom = null; // [min, max] while zoomed; null: the live window
    this.readout = document.createElement("div");
    this.readout.className = "chart-readout";
    this.readout.dataset.role = "readout";
    this.readout.setAttribute("aria-live", "off");
    container.after(this.readout);
  }

  ensure() {
    if (this.plot || !window.uPlot) return Boolean(this.plot);
    const width = Math.max(120, Math.floor(this.container.clientWidth));
    const reg = this.reg;
    const text = cssVar("--muted", "#888");
    const grid = cssVar("--grid", "rgba(128,128,128,0.15)");
    const font = "10px system-ui, sans-serif";
    const stepped = reg.type === "bool" || reg.type === "enum" || isTwoState(reg);
    const yValues = (u, splits) =>
      splits.map((v) => {
        if (reg.type === "bool") return v === 1 ? "on" : v === 0 ? "off" : "";
        if (reg.type === "enum" && reg.labels) return reg.labels[String(v)] ?? "";
        return compact(v, splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1, reg.type === "f32" ? 6 : reg.decimals);
      });
    this.plot = new window.uPlot(
      {
        width,
        height: CHART_HEIGHT,
        padding: [6, 4, 0, 22], // room at the left for the first time label
        legend: { show: false },
        cursor: {
          y: false,
          points: { size: 6 },
          drag: { x: true, y: false, setScale: false },
          bind: { dblclick: () => null }, // ours: back to the live window
        },
        select: { show: true },
        scales: { x: { time: true, auto: false }, y: { range: (u, min, max) => yRange(min, max, reg) } },
        axes: [
          {
            stroke: text,
            font,
            size: 18,
            gap: 2,
            space: 64,
            ticks: { size: 3 },
            grid: { stroke: grid, width: 1 },
            // one line, local wall-clock time: "12:52:30" (uPlot's default adds a date line)
            values: (u, splits) => splits.map((t) => clock(t)),
          },
          {
            side: 1,
            size: reg.type === "enum" ? 52 : 36,
            gap: 3,
            font,
            stroke: text,
            space: 22,
            ticks: { show: false },
            grid: { stroke: grid, width: 1 },
            incrs: reg.decimals || reg.type === "f32" ? undefined : [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 1e5, 1e6, 1e7],
            values: yValues,
          },
        ],
        series: [
          {},
          {
            label: reg.name + (reg.unit ? ` (${reg.unit})` : ""),
            stroke: cssVar("--accent", "#2f7fd8"),
            width: 1.5,
            fill: cssVar("--accent-fill", "rgba(47,127,216,0.12)"),
            paths: stepped && window.uPlot.paths?.stepped ? window.uPlot.paths.stepped({ align: 1 }) : undefined,
            points: { show: (u) => u.data[0].length < 40, size: 3 },
          },
        ],
        hooks: {
          setCursor: [(u) => this.showReadout(u.cursor.idx)],
          setSelect: [
            (u) => {
              if (u.select.width < 4) return;
              const min = u.posToVal(u.select.left, "x");
              const max = u.posToVal(u.select.left + u.select.width, "x");
              u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
              this.setZoom([min, max]);
            },
          ],
        },
      },
      [[], []],
      this.container,
    );
    this.plot.over.addEventListener("dblclick", () => this.setZoom(null));
    this.plot.over.addEventListener("mouseleave", () => this.showReadout(null));
    this.width = width;
    return true;
  }

  /** Zoom into [min, max] (seconds) or, null, back to the live window. */
  setZoom(range) {
    this.zoom = range;
    this.container.dataset.zoomed = range ? "true" : "false";
    this.container.title = range ? "zoomed: double-click for the live window" : "drag to zoom";
    this.applyX();
  }

  applyX() {
    const [min, max] = this.zoom || xRange(this.plot.data[0][0], null);
    this.plot.setScale("x", { min, max });
  }

  /** The hovered point's time and value with its unit; the newest when not hovering. */
  showReadout(idx) {
    const d = this.plot?.data;
    if (!d) return;
    const i = typeof idx === "number" ? idx : d[0].length - 1;
    const hovering = typeof idx === "number";
    this.readout.dataset.hover = hovering ? "true" : "false";
    if (i < 0 || i >= d[0].length) {
      this.readout.textContent = "";
      return;
    }
    const v = d[1][i];
    this.readout.textContent = `${clock(d[0][i])} · ${v === null ? "no reading" : this.format(v)}`;
  }

  /** Redraw if the series changed (or the window moved); cheap when nothing changed. */
  update(series, force = false) {
    if (!this.ensure()) return;
    const w = Math.floor(this.container.clientWidth);
    if (w > 0 && Math.abs(w - this.width) > 2) {
      this.width = w;
      this.plot.setSize({ width: w, height: CHART_HEIGHT });
      force = true;
    }
    if (force || series.version !== this.seenVersion) {
      this.seenVersion = series.version;
      const data = series.toArrays();
      this.plot.setData(data, false);
      this.container.dataset.points = String(data[0].length);
      if (this.readout.dataset.hover !== "true") this.showReadout(null);
    }
    this.applyX(); // the live window slides even when nothing arrives, so a stall shows
  }

  /** The points inside the visible x range: what "export visible" writes. */
  visible() {
    if (!this.plot) return [];
    const { min, max } = this.plot.scales.x;
    const [xs, ys] = this.plot.data;
    const out = [];
    for (let i = 0; i < xs.length; i++) if (xs[i] >= min && xs[i] <= max) out.push([xs[i], ys[i]]);
    return out;
  }

  destroy() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}

/** A tick label with the decimals the tick spacing needs, never more than the value shows. */
function compact(v, step, maxDecimals) {
  if (Math.abs(v) >= 10000) return (v / 1000).toFixed(0) + "k";
  const need = step > 0 && step < 1 ? Math.ceil(-Math.log10(step) - 1e-9) : 0;
  const text = v.toFixed(Math.abs(v) >= 1000 ? 0 : Math.min(need, Math.max(maxDecimals, need ? 1 : 0)));
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text; // no "-0"
}
