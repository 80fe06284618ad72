// The detail panel of one object: a larger cutout, the catalog record, votes, and links (search
// from here, show on the map, FITS download, the Legacy Survey viewer, SIMBAD and NED at the
// object's position; those are plain links: nothing is fetched from outside the service).

import { getJSON } from "./api.js";
import { cutoutUrl, fmt } from "./cards.js";
import { legacyViewerUrl, nedUrl, sexagesimal, simbadUrl } from "./query.js";

const FIRST = ["object_id", "ra", "dec", "row", "z", "mag_r", "class", "anomaly_score", "lens_score"];
const HIDDEN = new Set(["rank", "distance", "score", "x", "y"]);  // belong to a list, not to the object

function value(v) {
  if (v == null) return "—";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  return String(v);
}

export class Panel {
  constructor(el, { votes, selection = null, onSearch, onShowOnMap, onError }) {
    Object.assign(this, { el, votes, selection, onError });  // selection: pick the object as an example too
    this.current = null;
    this.returnFocus = null;
    this.seq = 0;
    el.querySelector(".close").addEventListener("click", () => this.close());
    el.querySelector("#detail-search").addEventListener("click", () => { if (this.current) onSearch(this.current); });
    el.querySelector("#detail-map").addEventListener("click", () => { if (this.current) onShowOnMap(this.current); });
  }

  get isOpen() { return !this.el.hidden; }

  /** Show rec at once, then the service's full record (GET /objects/{id}). */
  async open(rec, returnFocus = null) {
    const seq = ++this.seq;
    this.returnFocus = returnFocus || document.activeElement;
    this.show(rec);
    this.el.hidden = false;
    this.el.focus();
    try {
      const full = await getJSON(`/api/v1/objects/${encodeURIComponent(rec.object_id)}`);
      if (seq === this.seq) this.show({ ...full });
    } catch (err) {
      if (seq === this.seq) this.onError(err);
    }
  }

  show(rec) {
    this.current = rec;
    const id = rec.object_id;
    this.el.dataset.objectId = id;
    this.el.querySelector("#detail-title").textContent = id;
    const img = this.el.querySelector("#detail-img");
    img.alt = `cutout of ${id}`;
    if (img.dataset.cutoutId !== id) { img.dataset.cutoutId = id; img.dataset.size = "256"; img.src = cutoutUrl(id, 256); }
    this.el.querySelector("#detail-fits").href = `/api/v1/cutouts/${encodeURIComponent(id)}.fits`;
    this.el.querySelector("#detail-fits").setAttribute("download", `${id.replace(/[^\w.-]+/g, "_")}.fits`);
    const viewer = this.el.querySelector("#detail-viewer");
    const placed = rec.ra != null && rec.dec != null;  // null: ingested without a position
    viewer.hidden = !placed;
    if (placed) viewer.href = legacyViewerUrl(rec.ra, rec.dec);
    for (const [sel, url] of [["#detail-simbad", simbadUrl], ["#detail-ned", nedUrl]]) {
      const a = this.el.querySelector(sel);
      a.hidden = !placed;
      if (placed) a.href = url(rec.ra, rec.dec);
    }
    this.el.querySelector("#detail-position").textContent = placed
      ? `RA ${fmt(rec.ra, 5)}°, Dec ${fmt(rec.dec, 5)}° (${sexagesimal(rec.ra, rec.dec)})`
      : "position unknown";

    const votesBox = this.el.querySelector("#detail-votes");
    if (votesBox.dataset.for !== id) {
      // a map point opens this panel: its "More like this" / "Less like this" pick the point for the selection
      votesBox.replaceChildren(this.votes.buttons(id), this.votes.relevance(id),
        ...(this.selection ? [this.selection.buttons(id)] : []));
      votesBox.dataset.for = id;
      this.votes.load([id]);
    }

    const keys = [...FIRST.filter((k) => k in rec), ...Object.keys(rec).filter((k) => !FIRST.includes(k) && !HIDDEN.has(k))];
    const rows = keys.map((k) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = k;
      const td = document.createElement("td");
      td.textContent = value(rec[k]);
      tr.append(th, td);
      return tr;
    });
    this.el.querySelector("#detail-table tbody").replaceChildren(...rows);
  }

  close() {
    if (!this.isOpen) return;
    this.el.hidden = true;
    this.seq++;
    const back = this.returnFocus;
    this.returnFocus = null;
    if (back && document.contains(back)) back.focus();
  }
}
