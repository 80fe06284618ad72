// The embedding map: every object as a point of the version's 2-D projection, drawn on a canvas.
//
// Fast at 10^6 points because no point is ever a DOM node or a canvas path: each frame bins the
// points into per-pixel counts (and summed class colours) in typed arrays, tone-maps the counts
// logarithmically into one ImageData and puts it at once; only the handful of highlighted points
// (the query and its neighbours) are stroked as circles on top. Clicks find the nearest point
// through a uniform grid over the map (counting sort of the points into G x G cells), so a pick
// reads a few cells instead of scanning every point. Points come from GET /api/v1/map/points.bin
// (float32 x, y pairs then uint8 colour indices; see app/routes/map.py); point i is catalog row i.

import { getJSON, request } from "./api.js";

// Tableau-like categorical colours, distinct on a dark background; index 255 = no class.
const PALETTE = ["#4e9bf5", "#f5a340", "#e8575a", "#63c7c0", "#6cc04a", "#edc948", "#c88ad9", "#ff9da7",
  "#b0866b", "#bab0ac", "#86bcb6", "#f1ce63", "#d37295", "#a0cbe8", "#ffbe7d", "#8cd17d"];
const NO_CLASS = "#9ec5ff";
const BG = [11, 13, 18];
const LUT_SIZE = 4096;

const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

export class EmbeddingMap {
  constructor(canvas, { onPick, onError, legend, info }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    Object.assign(this, { onPick, onError, legend, info });
    this.meta = null;
    this.n = 0;
    this.view = { s: 1, tx: 0, ty: 0, fit: 1 };
    this.highlight = { version: null, queryRow: null, rows: [] };
    this.selected = null;
    this.pending = false;
    this.loading = null;
    this.frames = [];
    this.installEvents();
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  /** Fetch meta and points once (again after invalidate()), then draw. */
  load() {
    if (!this.loading) this.loading = this._load().catch((err) => { this.loading = null; this.onError(err); });
    return this.loading;
  }

  invalidate() { this.loading = null; this.meta = null; }

  async _load() {
    const marks = window.__skysift.marks;
    const t0 = performance.now();
    const meta = await getJSON("/api/v1/map");
    const buf = await request(meta.points_url, { as: "arrayBuffer" });
    const t1 = performance.now();
    if (buf.byteLength !== meta.n * 9) throw new Error(`map: expected ${meta.n * 9} bytes, got ${buf.byteLength}`);
    this.meta = meta;
    this.n = meta.n;
    this.xy = new Float32Array(buf, 0, 2 * meta.n);
    this.cls = new Uint8Array(buf, 8 * meta.n, meta.n);
    this.palette = [new Uint8Array(256), new Uint8Array(256), new Uint8Array(256)];
    for (let c = 0; c < 256; c++) {
      const [r, g, b] = rgb(c < meta.classes.length ? PALETTE[c % PALETTE.length] : NO_CLASS);
      this.palette[0][c] = r; this.palette[1][c] = g; this.palette[2][c] = b;
    }
    this.grid = null;
    const t2 = performance.now();
    this.renderLegend();
    this.resize(true);
    this.drawNow();  // the first frame straight from the fetched arrays ...
    marks.mapFetchMs = t1 - t0;
    marks.mapFirstFrameMs = performance.now() - t2;
    marks.mapDrawnMs = performance.now();  // since navigation start
    marks.mapPoints = meta.n;
    setTimeout(() => this.ensureIndex(), 0);  // ... then the cell index, off the first frame's path
  }

  ensureIndex() {
    if (this.grid || !this.meta) return;
    const t = performance.now();
    this.buildIndex();
    window.__skysift.marks.mapIndexMs = performance.now() - t;
  }

  // ---- a uniform grid of G x G cells over the bounds, with the points copied in cell order:
  // a pick reads the few cells around the cursor, and a zoomed-in frame bins only the points of
  // the visible cells (each row of visible cells is one contiguous run of the sorted arrays).
  buildIndex() {
    const { n, xy } = this;
    const [x0, y0, x1, y1] = this.meta.bounds;
    const G = Math.max(8, Math.min(1024, Math.ceil(Math.sqrt(n / 4))));
    const cw = (x1 - x0) / G || 1, ch = (y1 - y0) / G || 1;
    const cellOf = new Int32Array(n);
    const start = new Int32Array(G * G + 1);
    for (let i = 0; i < n; i++) {
      const x = xy[2 * i], y = xy[2 * i + 1];
      if (!(Number.isFinite(x) && Number.isFinite(y))) { cellOf[i] = -1; continue; }
      const cx = Math.min(G - 1, Math.max(0, Math.floor((x - x0) / cw)));
      const cy = Math.min(G - 1, Math.max(0, Math.floor((y - y0) / ch)));
      const c = cy * G + cx;
      cellOf[i] = c;
      start[c + 1]++;
    }
    for (let c = 0; c < G * G; c++) start[c + 1] += start[c];
    const cursor = start.slice(0, G * G);
    const rows = new Int32Array(start[G * G]);
    for (let i = 0; i < n; i++) if (cellOf[i] >= 0) rows[cursor[cellOf[i]]++] = i;
    const sxy = new Float32Array(2 * rows.length), scls = new Uint8Array(rows.length);
    for (let k = 0; k < rows.length; k++) {
      const i = rows[k];
      sxy[2 * k] = xy[2 * i]; sxy[2 * k + 1] = xy[2 * i + 1]; scls[k] = this.cls[i];
    }
    this.grid = { G, x0, y0, cw, ch, start, rows, sxy, scls };
  }

  /** [begin, end) runs of the cell-sorted arrays covering the visible cells (null: draw everything). */
  visibleRuns(pad) {
    const g = this.grid;
    if (!g) return null;
    const { s, tx, ty } = this.view;
    const W = this.canvas.width, H = this.canvas.height;
    const cell = (v, v0, w) => Math.min(g.G - 1, Math.max(0, Math.floor((v - v0) / w)));
    const cx0 = cell((-pad - tx) / s, g.x0, g.cw), cx1 = cell((W + pad - tx) / s, g.x0, g.cw);
    const cy0 = cell((ty - H - pad) / s, g.y0, g.ch), cy1 = cell((ty + pad) / s, g.y0, g.ch);
    const runs = [];
    if ((cx1 - cx0 + 1) * (cy1 - cy0 + 1) > 0.6 * g.G * g.G) return [[0, g.rows.length]];
    for (let cy = cy0; cy <= cy1; cy++) runs.push([g.start[cy * g.G + cx0], g.start[cy * g.G + cx1 + 1]]);
    return runs;
  }

  /** The row nearest to canvas pixel (px, py) within radius canvas pixels, or -1. */
  pick(px, py, radius = 10 * (window.devicePixelRatio || 1)) {
    this.ensureIndex();
    if (!this.grid) return -1;
    const { G, x0, y0, cw, ch, start, rows, sxy } = this.grid;
    const { s, tx, ty } = this.view;
    const x = (px - tx) / s, y = (ty - py) / s, r = radius / s;
    const cx0 = Math.max(0, Math.floor((x - r - x0) / cw)), cx1 = Math.min(G - 1, Math.floor((x + r - x0) / cw));
    const cy0 = Math.max(0, Math.floor((y - r - y0) / ch)), cy1 = Math.min(G - 1, Math.floor((y + r - y0) / ch));
    let best = -1, bestD = radius * radius;
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        const c = cy * G + cx;
        for (let k = start[c]; k < start[c + 1]; k++) {
          const dx = sxy[2 * k] * s + tx - px, dy = ty - sxy[2 * k + 1] * s - py;
          const d = dx * dx + dy * dy;
          if (d <= bestD) { bestD = d; best = rows[k]; }
        }
      }
    }
    return best;
  }

  // ---- view
  resize(refit = false) {
    const dpr = Math.min(window.devicePixelRatio || 1, 2);
    const w = Math.round(this.canvas.clientWidth * dpr), h = Math.round(this.canvas.clientHeight * dpr);
    if (!w || !h) return;
    const changed = w !== this.canvas.width || h !== this.canvas.height;
    if (changed) {
      const { s, tx, ty } = this.view;  // keep the centre where it was
      const cx = (this.canvas.width / 2 - tx) / s, cy = (ty - this.canvas.height / 2) / s;
      this.canvas.width = w;
      this.canvas.height = h;
      this.view.tx = w / 2 - cx * s;
      this.view.ty = h / 2 + cy * s;
    }
    if ((refit || !this.fitted) && this.meta) this.fit();
    if (changed || refit) this.schedule();
  }

  fit() {
    const [x0, y0, x1, y1] = this.meta.bounds;
    const W = this.canvas.width, H = this.canvas.height;
    const s = 0.92 * Math.min(W / ((x1 - x0) || 1), H / ((y1 - y0) || 1));
    this.view = { s, fit: s, tx: W / 2 - ((x0 + x1) / 2) * s, ty: H / 2 + ((y0 + y1) / 2) * s };
    this.fitted = true;
  }

  zoomAt(px, py, f) {
    const v = this.view;
    const s = Math.min(Math.max(v.s * f, v.fit * 0.5), v.fit * 4096);
    f = s / v.s;
    v.tx = px - (px - v.tx) * f;
    v.ty = py - (py - v.ty) * f;
    v.s = s;
    this.schedule();
  }

  panBy(dx, dy) { this.view.tx += dx; this.view.ty += dy; this.schedule(); }

  /** Centre a row at a comfortable zoom and mark it as selected. */
  focusRow(row) {
    if (!this.meta || row == null || row < 0 || row >= this.n) return;
    this.selected = row;
    const v = this.view;
    v.s = Math.max(v.s, v.fit * 4);
    v.tx = this.canvas.width / 2 - this.xy[2 * row] * v.s;
    v.ty = this.canvas.height / 2 + this.xy[2 * row + 1] * v.s;
    this.schedule();
  }

  setHighlight(version, queryRow, rows) {
    this.highlight = { version, queryRow, rows };
    this.schedule();
  }

  /** Client (CSS px) position of a row's point: what a test or a tooltip needs. */
  toClient(row) {
    const rect = this.canvas.getBoundingClientRect();
    const k = rect.width / this.canvas.width;
    const { s, tx, ty } = this.view;
    return { x: rect.left + (this.xy[2 * row] * s + tx) * k, y: rect.top + (ty - this.xy[2 * row + 1] * s) * k };
  }

  // ---- drawing
  schedule() {
    if (this.pending || !this.meta) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.drawNow(); });
  }

  dotSize() {
    const n = this.n;
    const base = n <= 2e3 ? 4 : n <= 2e4 ? 3 : n <= 2e5 ? 2 : 1;
    const zoom = Math.floor(Math.log2(Math.max(1, this.view.s / this.view.fit)) / 2);
    return Math.min(7, base + zoom);
  }

  drawNow() {
    const W = this.canvas.width, H = this.canvas.height;
    if (!this.meta || !W || !H) return;
    const t0 = performance.now();
    if (!this.image || this.image.width !== W || this.image.height !== H) {
      this.image = this.ctx.createImageData(W, H);
      this.out = new Uint32Array(this.image.data.buffer);
      this.cnt = new Uint32Array(W * H);
      this.sums = [new Uint32Array(W * H), new Uint32Array(W * H), new Uint32Array(W * H)];
    }
    this.cnt.fill(0);
    for (const a of this.sums) a.fill(0);
    const d = this.dotSize();
    const xy = this.grid ? this.grid.sxy : this.xy, cls = this.grid ? this.grid.scls : this.cls;
    let drawn = 0;
    for (const [begin, end] of this.visibleRuns(d) || [[0, this.n]]) {
      this.bin(xy, cls, begin, end, d);
      drawn += end - begin;
    }
    this.lastDrawn = drawn;  // points looked at (all of them unless zoomed in)
    this.toneMap();
    this.ctx.putImageData(this.image, 0, 0);
    this.drawOverlay();
    const dt = performance.now() - t0;
    this.frames.push(dt);
    if (this.frames.length > 200) this.frames.shift();
    window.__skysift.marks.mapLastFrameMs = dt;
  }

  /** Add points [begin, end) as d x d squares to the per-pixel counts and colour sums. */
  bin(xy, cls, begin, end, d) {
    const W = this.canvas.width, H = this.canvas.height;
    const { cnt } = this;
    const [rs, gs, bs] = this.sums;
    const [pr, pg, pb] = this.palette;
    const { s, tx, ty } = this.view;
    const half = (d - 1) / 2;
    for (let i = begin, j = 2 * begin; i < end; i++, j += 2) {
      const fx = xy[j] * s + tx - half;
      const fy = ty - xy[j + 1] * s - half;
      if (!(fx > -d && fx < W && fy > -d && fy < H)) continue;  // also drops NaN
      const c = cls[i], r = pr[c], g = pg[c], b = pb[c];
      if (d === 1) {
        const p = (fy | 0) * W + (fx | 0);
        cnt[p]++; rs[p] += r; gs[p] += g; bs[p] += b;
        continue;
      }
      const x0 = Math.max(0, Math.floor(fx)), x1 = Math.min(W, Math.floor(fx) + d);
      const y0 = Math.max(0, Math.floor(fy)), y1 = Math.min(H, Math.floor(fy) + d);
      for (let y = y0; y < y1; y++) {
        for (let p = y * W + x0, e = y * W + x1; p < e; p++) { cnt[p]++; rs[p] += r; gs[p] += g; bs[p] += b; }
      }
    }
  }

  /** Counts -> pixels: mean class colour, brightness 0.45..1 by log(count) over the frame's densest
   *  pixel, so a lone point stays visible and dense cores do not saturate early. */
  toneMap() {
    const { cnt, out } = this;
    const [rs, gs, bs] = this.sums;
    let max = 1;
    for (let p = 0; p < cnt.length; p++) if (cnt[p] > max) max = cnt[p];
    const lut = this.lut || (this.lut = new Float32Array(LUT_SIZE));
    const lmax = Math.log1p(max);
    for (let c = 1; c < LUT_SIZE; c++) lut[c] = 0.45 + 0.55 * Math.min(1, Math.log1p(c) / lmax);
    const [br, bg, bb] = BG;
    const bgPixel = (255 << 24) | (bb << 16) | (bg << 8) | br;
    for (let p = 0; p < cnt.length; p++) {
      const c = cnt[p];
      if (c === 0) { out[p] = bgPixel; continue; }
      const t = c < LUT_SIZE ? lut[c] : 0.45 + 0.55 * Math.min(1, Math.log1p(c) / lmax);
      const u = 1 - t, k = t / c;
      out[p] = (255 << 24) | ((bs[p] * k + bb * u) << 16) | ((gs[p] * k + bg * u) << 8) | (rs[p] * k + br * u);
    }
  }

  drawOverlay() {
    const ctx = this.ctx;
    const dpr = Math.min(window.devicePixelRatio || 1, 2);
    const { s, tx, ty } = this.view;
    const ring = (row, radius, colour, width) => {
      if (row == null || row < 0 || row >= this.n) return;
      const x = this.xy[2 * row] * s + tx, y = ty - this.xy[2 * row + 1] * s;
      ctx.beginPath();
      ctx.arc(x, y, radius * dpr, 0, 2 * Math.PI);
      ctx.lineWidth = width * dpr;
      ctx.strokeStyle = colour;
      ctx.stroke();
    };
    const h = this.highlight;
    if (h.version === this.meta.version) {
      for (const row of h.rows) if (row !== h.queryRow) ring(row, 6, "#ffffff", 1.5);
      ring(h.queryRow, 10, "#f0c674", 3);
    }
    ring(this.selected, 14, "#ff7b72", 2);
  }

  renderLegend() {
    const m = this.meta;
    const items = [];
    if (m.colour_by) {
      const counts = new Uint32Array(256);
      for (let i = 0; i < this.n; i++) counts[this.cls[i]]++;
      m.classes.forEach((name, c) => {
        const li = document.createElement("li");
        const sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = PALETTE[c % PALETTE.length];
        li.append(sw, `${name} (${counts[c].toLocaleString()})`);
        items.push(li);
      });
    }
    this.legend.replaceChildren(...items);
    this.info.textContent = `${m.n.toLocaleString()} objects · ${m.method.toUpperCase()} map` +
      (m.source === "service" ? " (computed by the service)" : "") + (m.colour_by ? ` · colour: ${m.colour_by}` : "") +
      ` · version ${m.version}`;
  }

  // ---- input: wheel zooms about the cursor, drag pans, a click (no drag) picks a point
  canvasPoint(e) {
    const rect = this.canvas.getBoundingClientRect();
    const k = this.canvas.width / rect.width;
    return [(e.clientX - rect.left) * k, (e.clientY - rect.top) * k];
  }

  installEvents() {
    const c = this.canvas;
    c.addEventListener("wheel", (e) => {
      if (!this.meta) return;
      e.preventDefault();
      const dy = e.deltaMode === 1 ? e.deltaY * 40 : e.deltaMode === 2 ? e.deltaY * 800 : e.deltaY;
      const [px, py] = this.canvasPoint(e);
      this.zoomAt(px, py, Math.exp(-dy * 0.0015));
    }, { passive: false });
    let drag = null;
    c.addEventListener("pointerdown", (e) => {
      if (!this.meta || e.button !== 0) return;
      c.setPointerCapture(e.pointerId);
      drag = { x: e.clientX, y: e.clientY, tx: this.view.tx, ty: this.view.ty, moved: false };
    });
    c.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const k = c.width / c.getBoundingClientRect().width;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.moved) {
        this.view.tx = drag.tx + dx * k;
        this.view.ty = drag.ty + dy * k;
        c.classList.add("dragging");
        this.schedule();
      }
    });
    const end = (e) => {
      if (!drag) return;
      const moved = drag.moved;
      drag = null;
      c.classList.remove("dragging");
      if (moved || e.type === "pointercancel") return;
      const row = this.pick(...this.canvasPoint(e));
      if (row >= 0) { this.selected = row; this.schedule(); this.onPick(row); }
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
    c.addEventListener("dblclick", (e) => { e.preventDefault(); this.zoomAt(...this.canvasPoint(e), 2); });
    c.addEventListener("keydown", (e) => {
      if (!this.meta) return;
      const W = c.width, H = c.height, step = 60;
      const act = {
        "+": () => this.zoomAt(W / 2, H / 2, 1.5), "=": () => this.zoomAt(W / 2, H / 2, 1.5),
        "-": () => this.zoomAt(W / 2, H / 2, 1 / 1.5), "0": () => { this.fit(); this.schedule(); },
        ArrowLeft: () => this.panBy(step, 0), ArrowRight: () => this.panBy(-step, 0),
        ArrowUp: () => this.panBy(0, step), ArrowDown: () => this.panBy(0, -step),
      }[e.key];
      if (act) { e.preventDefault(); act(); }
    });
  }
}
