// The landing view, before any search: what the survey holds (GET /api/v1/version: objects, bands,
// pixel scale, the sky footprint when positions exist), how to search, with an object ID and a
// position to try, and a few objects drawn at random (GET /api/v1/rankings/anomalies at random
// offsets: every object with a score is in that ranking, so a random rank is a random object).

import { getJSON } from "./api.js";
import { fillGrid, installGrid, makeCard } from "./cards.js";

const N_RANDOM = 6;

/** "150.02°–160.00°" (through 0h when lo > hi, as the API says). */
const span = (lo, hi, signed = false) => {
  const f = (v) => `${signed && v >= 0 ? "+" : ""}${v.toFixed(2)}°`;
  return `${f(lo)}–${f(hi)}`;
};

export class Landing {
  /** onSearch(text): run that search as if typed; onOpen(rec, card): the detail panel. */
  constructor(section, { onSearch, onOpen, onError }) {
    this.section = section;
    this.onError = onError;
    this.seq = 0;
    section.innerHTML = `
      <h2>What this survey holds</h2>
      <p class="facts"></p>
      <p class="footprint"></p>
      <h3>How to search</h3>
      <ul class="how">
        <li>Type an <strong>object ID</strong> in the box above: <button type="button" class="example id"></button></li>
        <li class="by-position">or a <strong>position</strong>, RA and Dec in degrees or sexagesimal (RA in hours):
          <button type="button" class="example position"></button></li>
        <li>or drop a <strong>cutout</strong> (FITS, PNG, JPEG or NPY) anywhere on this page, paste one, or use
          <strong>Upload…</strong>;</li>
        <li>or browse the <a href="#anomalies">most anomalous objects</a>, the <a href="#lenses">lens candidates</a>
          and the <a href="#map">embedding map</a>. A click on a cutout opens its details, Enter searches from it.</li>
      </ul>
      <div class="random-head">
        <h3>Objects drawn at random</h3>
        <button type="button" class="reroll">Draw others</button>
      </div>
      <ul class="grid" aria-label="objects drawn at random"></ul>`;
    this.grid = section.querySelector(".grid");
    installGrid(this.grid, { onOpen, onSearch: (rec) => onSearch(rec.object_id) });
    for (const b of section.querySelectorAll(".example")) b.addEventListener("click", () => onSearch(b.textContent));
    section.querySelector(".reroll").addEventListener("click", () => this.draw());
  }

  /** v: the body of GET /api/v1/version. */
  show(v) {
    this.version = v;
    const s = v.survey;
    this.section.querySelector(".facts").textContent =
      `${s.name}: ${v.n_objects.toLocaleString()} objects in the ${s.bands.join(", ")} band${s.bands.length === 1 ? "" : "s"}` +
      ` at ${s.pixel_scale_arcsec}″/px, index version ${v.version}.`;
    const fp = v.footprint;
    this.section.querySelector(".footprint").textContent = fp
      ? `Footprint: RA ${span(fp.ra_min_deg, fp.ra_max_deg)}${fp.ra_min_deg > fp.ra_max_deg ? " (through 0h)" : ""}, ` +
        `Dec ${span(fp.dec_min_deg, fp.dec_max_deg, true)}, a box of ${fp.box_area_deg2.toFixed(1)} deg²; ` +
        `${fp.n_positioned.toLocaleString()} of ${v.n_objects.toLocaleString()} objects have a sky position.`
      : "No object has a sky position (the survey was ingested without a catalogue): search by object ID or with a cutout.";
    this.section.hidden = false;
    this.drawIfShown();
  }

  hide() { this.section.hidden = true; }

  /** Draw the random objects once the view is on screen (not behind another tab, e.g. /#map). */
  drawIfShown() {
    if (this.version && !this.grid.children.length && !this.section.closest("[hidden]")) this.draw();
  }

  async draw() {
    const seq = ++this.seq;
    const n = this.version.n_objects;
    const offsets = new Set();
    while (offsets.size < Math.min(N_RANDOM, n)) offsets.add(Math.floor(Math.random() * n));
    try {
      const pages = await Promise.all([...offsets].map((o) => getJSON(`/api/v1/rankings/anomalies?limit=1&offset=${o}`)));
      if (seq !== this.seq) return;
      const recs = pages.flatMap((p) => p.items);
      fillGrid(this.grid, recs.map((rec) => makeCard(rec, { role: "example" })));
      const first = recs[0];
      this.section.querySelector(".example.id").textContent = first ? first.object_id : "";
      const placed = recs.find((r) => r.ra != null && r.dec != null);
      this.section.querySelector(".by-position").hidden = !placed;
      if (placed) this.section.querySelector(".example.position").textContent = `${placed.ra.toFixed(5)} ${placed.dec.toFixed(5)}`;
      window.__skysift.marks.landingRenderedMs = performance.now();
    } catch (err) {
      this.onError(err);
    }
  }
}
