// A register's recent values in the page: a fixed-capacity ring of (time, value), filled live
// and, on load, from the bridge's own recent values (`/api/series`, merged under the live ones).

import { chartPoint } from "./registers.js";

export const SERIES_POINTS = 2400; // per register: 10 min at four polls a second

/** A fixed-capacity (time, value) series backed by two ring arrays. */
export class Series {
  constructor(capacity = SERIES_POINTS) {
    this.capacity = capacity;
    this.t = new Float64Array(capacity);
    this.v = new Float64Array(capacity);
    this.start = 0;
    this.length = 0;
    this.version = 0;
  }

  /** A break in the line (the device or its bus went away): stored as NaN, drawn as a gap. */
  gap(ts) {
    if (!this.length || Number.isNaN(this.v[(this.start + this.length - 1) % this.capacity])) return;
    this.append(ts, NaN);
  }

  push(ts, value) {
    const v = chartPoint(value);
    if (v !== null) this.append(ts, v);
  }

  /** Points the bridge kept (`/api/series`: times and values, null = a gap) merged under what
   * arrived live: one time line, oldest first, no point twice. */
  merge(ts, vs) {
    const [xs, ys] = this.toArrays();
    const first = xs.length ? xs[0] : Infinity;
    const t = [];
    const v = [];
    for (let i = 0; i < ts.length; i++) {
      if (typeof ts[i] !== "number" || ts[i] >= first) continue;
      t.push(ts[i]);
      v.push(typeof vs[i] === "number" ? vs[i] : NaN);
    }
    if (!t.length) return false;
    this.start = 0;
    this.length = 0;
    for (let i = 0; i < t.length; i++) this.append(t[i], v[i]);
    for (let i = 0; i < xs.length; i++) this.append(xs[i], ys[i] === null ? NaN : ys[i]);
    return true;
  }

  append(ts, value) {
    // The same poll seen twice (a replay, or state after a frame) adds nothing.
    if (this.length && ts <= this.t[(this.start + this.length - 1) % this.capacity]) return;
    const i = (this.start + this.length) % this.capacity;
    this.t[i] = ts;
    this.v[i] = value;
    if (this.length < this.capacity) this.length += 1;
    else this.start = (this.start + 1) % this.capacity;
    this.version += 1;
  }

  /** uPlot's data layout: [[times...], [values...]] as plain arrays, oldest first. */
  toArrays() {
    const xs = new Array(this.length);
    const ys = new Array(this.length);
    for (let k = 0; k < this.length; k++) {
      const i = (this.start + k) % this.capacity;
      xs[k] = this.t[i];
      ys[k] = Number.isNaN(this.v[i]) ? null : this.v[i];
    }
    return [xs, ys];
  }
}
