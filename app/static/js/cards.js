// Cutout cards and the keyboard model of a grid of them.
//
// A grid is a <ul> of focusable cards with one tab stop (roving tabindex): arrow keys move the
// focus by one card or one row, Home/End jump to the ends, Enter searches from the focused card
// and Space (or a click) opens its detail panel.

export const fmt = (v, digits = 3) => (v == null || Number.isNaN(Number(v)) ? "—" : Number(v).toFixed(digits));
export const cutoutUrl = (id, size = 128) => `/api/v1/cutouts/${encodeURIComponent(id)}.png?size=${size}`;

const records = new WeakMap();  // card element -> its record
export const recordOf = (el) => records.get(el);

/**
 * One card. rec: an ObjectRecord with optional distance/rank (search) or score/rank (rankings).
 * opts.role: "query" | "neighbour" | "ranked" | "example" (landing); opts.extra: a node appended (vote buttons).
 */
export function makeCard(rec, { role = "neighbour", extra = null } = {}) {
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
  img.src = cutoutUrl(rec.object_id, 128);

  const id = document.createElement("div");
  id.className = "id";
  id.textContent = rec.object_id;

  const head = document.createElement("div");
  head.className = "meta head";
  if (role === "query") head.textContent = "query";
  else if (role === "ranked") head.textContent = `#${rec.rank} · score ${fmt(rec.score)}`;
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

  el.append(img, id, head, meta, scores);
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
