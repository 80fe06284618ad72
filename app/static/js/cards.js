// Cutout cards and the keyboard model of a grid of them.
//
// A grid is a <ul> of focusable cards with one tab stop (roving tabindex): arrow keys move the
// focus by one card or one row, Home/End jump to the ends, Enter searches from the focused card
// and Space (or a click) opens its detail panel.

import { outsideLinks } from "./query.js";

export const fmt = (v, digits = 3) => (v == null || Number.isNaN(Number(v)) ? "—" : Number(v).toFixed(digits));

// The cutouts' Lupton stretch (the PNG route's `stretch`, nanomaggies); "" is the service's default,
// left out of the address so those images stay one cached URL.
let stretch = "";
export const cutoutUrl = (id, size = 128) =>
  `/api/v1/cutouts/${encodeURIComponent(id)}.png?size=${size}${stretch ? `&stretch=${stretch}` : ""}`;

/** Use this stretch for every cutout: those on the page (img[data-cutout-id]) reload with it. */
export function setStretch(value) {
  stretch = value;
  for (const img of document.querySelectorAll("img[data-cutout-id]")) {
    img.src = cutoutUrl(img.dataset.cutoutId, Number(img.dataset.size));
  }
}

/** "Legacy Survey · SIMBAD · NED" links at rec's position (new tab), or null when it has none. */
export function positionLinks(rec, { focusable = true } = {}) {
  if (rec.ra == null || rec.dec == null) return null;  // ingested without a position
  const box = document.createElement("div");
  box.className = "links";
  outsideLinks(rec.ra, rec.dec).forEach(([name, url], i) => {
    const a = Object.assign(document.createElement("a"), { href: url, textContent: name, target: "_blank",
      rel: "noopener noreferrer" });
    a.setAttribute("aria-label", `${name} at the position of ${rec.object_id} (new tab)`);
    if (!focusable) a.tabIndex = -1;  // the grid keeps one tab stop; the detail panel has the same links
    if (i) box.append(" · ");
    box.append(a);
  });
  return box;
}

const records = new WeakMap();  // card element -> its record
export const recordOf = (el) => records.get(el);

/**
 * One card. rec: an ObjectRecord with optional distance/rank (search) or score/rank (rankings).
 * opts.role: "query" | "neighbour" | "ranked" | "example" (landing); opts.extra: a node appended (vote buttons);
 * opts.flag: name the data-quality detector on a ranked card (the artifact list).
 */
export function makeCard(rec, { role = "neighbour", extra = null, flag = false } = {}) {
  const el = document.createElement("li");
  el.className = `card ${role}`;
  el.tabIndex = -1;
  el.dataset.objectId = rec.object_id;
  el.dataset.row = rec.row;
  records.set(el, rec);

  const img = document.createElement("img");
  img.loading = "lazy";
  img.decoding = "async";
  img.width = img.height = 128;
  img.alt = `cutout of ${rec.object_id}`;
  img.dataset.cutoutId = rec.object_id;
  img.dataset.size = "128";
  img.src = cutoutUrl(rec.object_id, 128);

  const id = document.createElement("div");
  id.className = "id";
  id.textContent = rec.object_id;

  const head = document.createElement("div");
  head.className = "meta head";
  if (role === "query") head.textContent = "query";
  else if (role === "ranked") {
    head.textContent = `#${rec.rank} · score ${fmt(rec.score)}` + (rec.known_lens ? " · known lens" : "")
      + (flag && rec.quality_flag ? ` · ${rec.quality_flag}` : "");
  }
  else if (role === "example") head.textContent = `anomaly rank #${rec.rank}`;
  else head.textContent = `#${rec.rank} · distance ${fmt(rec.distance, 4)}`;

  const meta = document.createElement("div");
  meta.className = "meta";
  const parts = [];
  if (rec.z != null) parts.push(`z ${fmt(rec.z)}`);
  if (rec.mag_r != null) parts.push(`r ${fmt(rec.mag_r, 2)}`);
  meta.textContent = parts.join(" · ") || " ";

  const scores = document.createElement("div");
  scores.className = "meta scores";
  scores.textContent = `anomaly ${fmt(rec.anomaly_score)}` + (rec.lens_score != null ? ` · lens ${fmt(rec.lens_score)}` : "");

  if (rec.known_lens) el.classList.add("known");
  el.append(img, id, head, meta, scores);
  const links = positionLinks(rec, { focusable: false });
  if (links) el.append(links);
  if (extra) el.append(extra);
  el.setAttribute("aria-label", `${rec.object_id}, ${head.textContent}, ${parts.join(", ")}`);
  return el;
}

/** Fill a grid with cards; the first card takes the tab stop. */
export function fillGrid(container, cards) {
  container.replaceChildren(...cards);
  if (cards.length) cards[0].tabIndex = 0;
}

function columns(cards) {
  if (!cards.length) return 1;
  const top = cards[0].offsetTop;
  let n = 0;
  while (n < cards.length && cards[n].offsetTop === top) n++;
  return Math.max(1, n);
}

function moveFocus(cards, from, to) {
  const target = cards[Math.max(0, Math.min(cards.length - 1, to))];
  if (!target || target === cards[from]) return;
  if (cards[from]) cards[from].tabIndex = -1;
  target.tabIndex = 0;
  target.focus();
  target.scrollIntoView({ block: "nearest" });
}

/** Keyboard and click handling for a grid container (installed once; cards may be replaced). */
export function installGrid(container, { onOpen, onSearch }) {
  container.addEventListener("keydown", (e) => {
    const card = e.target.closest?.(".card");
    if (!card || e.target !== card) return;  // keys inside a card's buttons keep their own meaning
    const cards = [...container.querySelectorAll(".card")];
    const i = cards.indexOf(card);
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(cards), ArrowUp: -columns(cards) }[e.key];
    if (step) { e.preventDefault(); moveFocus(cards, i, i + step); return; }
    if (e.key === "Home") { e.preventDefault(); moveFocus(cards, i, 0); return; }
    if (e.key === "End") { e.preventDefault(); moveFocus(cards, i, cards.length - 1); return; }
    if (e.key === "Enter") { e.preventDefault(); onSearch(recordOf(card), card); return; }
    if (e.key === " ") { e.preventDefault(); onOpen(recordOf(card), card); }
  });
  container.addEventListener("click", (e) => {
    if (e.target.closest("button, a, input, select")) return;
    const card = e.target.closest(".card");
    if (!card) return;
    const cards = container.querySelectorAll(".card");
    cards.forEach((c) => { c.tabIndex = c === card ? 0 : -1; });
    onOpen(recordOf(card), card);
  });
}
