// One small uPlot time-series chart per register value. uPlot is loaded as a classic script
// (vendor/uplot/uPlot.iife.min.js) and found on `window.uPlot`.

const CHART_HEIGHT = 64;
let windowSeconds = 120;

export function setWindowSeconds(s) {
  windowSeconds = s;
}

export function getWindowSeconds() {
  return windowSeconds;
}

/** The x range: the last `windowSeconds`, or less while the data is younger than that (a
 * fresh page shows a full chart, not a sliver at the right edge); at least 10 s. */
function xRange(first, last) {
  const now = Math.max(last || 0, Date.now() / 1000);
  const start = typeof first === "number" ? first : now;
  return [Math.max(now - windowSeconds, Math.min(start, now - 10)), now];
}

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/** A sparkline-sized chart with a y axis: created lazily, sized to its container. */
export class RegisterChart {
  constructor(container, label, unit) {
    this.container = container;
    this.label = label;
    this.unit = unit;
    this.plot = null;
    this.seenVersion = -1;
    this.width = 0;
    this.decimals = 2; // the register's display decimals, set by the view
  }

  ensure() {
    if (this.plot || !window.uPlot) return Boolean(this.plot);
    const width = Math.max(120, Math.floor(this.container.clientWidth));
    const stroke = cssVar("--accent", "#2f7fd8");
    const grid = cssVar("--grid", "rgba(128,128,128,0.15)");
    const text = cssVar("--muted", "#888");
    const unit = this.unit;
    this.plot = new window.uPlot(
      {
        width,
        height: CHART_HEIGHT,
        padding: [6, 0, 2, 0],
        legend: { show: false },
        cursor: { show: false },
        select: { show: false },
        scales: {
          x: {
            time: true,
            // the last `windowSeconds`, or less while the data is younger than that, so a
            // fresh page shows a full chart instead of a sliver at the right edge
            range: (u, min, max) => xRange(u.data[0][0], max),
          },
          y: {
            range: (u, min, max) => {
              if (min === null || max === null) return [0, 1];
              // a flat line sits in the middle, its neighbours one display digit away
              if (min === max) {
                const pad = 1.25 * 10 ** -this.decimals;
                return [min - pad, max + pad];
              }
              const pad = (max - min) * 0.15;
              return [min - pad, max + pad];
            },
          },
        },
        axes: [
          { show: false },
          {
            side: 1,
            size: 44,
            gap: 3,
            font: "10px system-ui, sans-serif",
            stroke: text,
            ticks: { show: false },
            grid: { stroke: grid, width: 1 },
            splits: (u, i, min, max) => [min + (max - min) * 0.1, (min + max) / 2, max - (max - min) * 0.1],
            values: (u, splits) => {
              const step = Math.abs(splits[splits.length - 1] - splits[0]) / 2;
              return splits.map((v) => compact(v, step, this.decimals));
            },
          },
        ],
        series: [
          {},
          {
            label: this.label + (unit ? ` (${unit})` : ""),
            stroke,
            width: 1.5,
            fill: cssVar("--accent-fill", "rgba(47,127,216,0.12)"),
            points: { show: (u) => u.data[0].length < 40, size: 3 },
          },
        ],
      },
      [[], []],
      this.container,
    );
    this.width = width;
    return true;
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
    if (!force && series.version === this.seenVersion) {
      // still slide the time window so a stalled value visibly ages
      const [min, max] = xRange(this.plot.data[0][0], null);
      this.plot.setScale("x", { min, max });
      return;
    }
    this.seenVersion = series.version;
    const data = series.toArrays();
    this.plot.setData(data);
    this.container.dataset.points = String(data[0].length);
  }

  destroy() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}

/** A tick label with the decimals the tick spacing needs, never more than the value shows. */
function compact(v, step, maxDecimals) {
  if (Math.abs(v) >= 10000) return (v / 1000).toFixed(0) + "k";
  const need = step > 0 && step < 1 ? Math.ceil(-Math.log10(step)) + 1 : 0;
  const text = v.toFixed(Math.abs(v) >= 1000 ? 0 : Math.min(need, maxDecimals));
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text; // no "-0"

}
