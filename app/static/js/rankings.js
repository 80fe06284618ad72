// A ranking tab (unusual objects, artifacts or lens candidates): pages of cards with their score and vote buttons.
// The page number lives in the address (#anomalies/2), so a page can be shared and reloaded. The filters
// of the search bar (z, magnitude) filter the rankings too; a ranking learned from the votes learns
// again after each vote it learns from (lens candidates: lens / not a lens; unusual objects:
// interesting / boring).

import { getJSON } from "./api.js";
import { fillGrid, installGrid, makeCard } from "./cards.js";
import { downloadLinks, filterText } from "./lists.js";

// What each tab that can learn from the votes learns from, and how its toggle says so.
const LEARNS = {
  lenses: { labels: ["lens", "not_lens"], text: "objects voted “Lens” teach the score, “Not a lens” corrects it" },
  anomalies: { labels: ["interesting", "boring", "relevance"],
    text: "objects voted “Interesting” or rated 4-5 pull their look-alikes up, “Boring” or 0-1 push theirs down" },
};

export class Ranking {
  /** kind: "anomalies" | "artifacts" | "lenses" (the route and the tab's hash). */
  constructor(section, { kind, label, votes, selection, onOpen, onSearch, onError, filters = () => new URLSearchParams(),
    pageSize = 24 }) {
    this.section = section;
    this.kind = kind;
    this.votes = votes;
    this.selection = selection;
    this.onError = onError;
    this.pageSize = pageSize;
    this.filters = filters;  // () => URLSearchParams of the search bar's filters that are set
    this.shownFilters = "";
    this.page = null;
    this.total = null;
    section.innerHTML = `
      <div class="ranking-head">
        <p class="about muted"></p>
        <nav class="pager" aria-label="${label} pages">
          <button type="button" class="prev">← Previous</button>
          <span class="page-info" aria-live="polite"></span>
          <button type="button" class="next">Next →</button>
        </nav>
      </div>
      <label class="known-toggle muted" hidden><input type="checkbox" class="include-known">
        <span></span></label>
      <label class="learn-toggle muted" hidden><input type="checkbox" class="learn">
        learn from the votes (${LEARNS[kind] ? LEARNS[kind].text : ""})</label>
      <p class="learned muted" aria-live="polite" hidden></p>
      <p class="downloads muted">Download this page: </p>
      <p class="note" hidden></p>
      <ul class="grid" aria-label="${label}"></ul>`;
    this.grid = section.querySelector(".grid");
    this.includeKnown = false;  // lens candidates: the known lenses (the score's seeds) are no discovery
    section.querySelector(".include-known").addEventListener("change", (e) => {
      this.includeKnown = e.target.checked;
      this.show(this.page || 1, true);
    });
    this.learn = false;  // rank by the score retrained from the votes cast so far (LEARNS' tabs)
    const learn = section.querySelector(".learn-toggle");
    learn.hidden = !LEARNS[kind];
    learn.querySelector("input").addEventListener("change", (e) => {
      this.learn = e.target.checked;
      this.show(this.page || 1, true);
    });
    this.stale = false;  // a vote it learns from was cast elsewhere since this learned ranking was shown
    votes.onCast((id, label) => {  // learning live: the ranking learns from the vote just cast
      if (!this.learn || !LEARNS[kind].labels.includes(label)) return;
      if (section.hidden) this.stale = true;  // learns when its tab is shown again
      else this.show(this.page || 1, true);
    });
    installGrid(this.grid, { onOpen, onSearch });
    section.querySelector(".prev").addEventListener("click", () => { location.hash = `${kind}/${this.page - 1}`; });
    section.querySelector(".next").addEventListener("click", () => { location.hash = `${kind}/${this.page + 1}`; });
  }

  /** Show a page (1-based); a page already shown is not fetched again unless forced. */
  async show(page = 1, force = false) {
    page = Math.max(1, Math.floor(page) || 1);
    const filters = this.filters();
    if (page === this.page && !force && !this.stale && filters.toString() === this.shownFilters) return;
    this.page = page;
    this.stale = false;
    this.shownFilters = filters.toString();
    const offset = (page - 1) * this.pageSize;
    this.section.setAttribute("aria-busy", "true");
    const known = this.includeKnown ? "&include_known=true" : "";
    const learn = this.learn ? "&learn=true" : "";
    const only = filters.toString() ? `&${filters}` : "";
    const url = `/api/v1/rankings/${this.kind}?limit=${this.pageSize}&offset=${offset}${known}${learn}${only}`;
    const [csv, votable] = downloadLinks({ url });  // the same page as a table
    this.section.querySelector(".downloads").replaceChildren("Download this page: ", csv, " · ", votable);
    try {
      const body = await getJSON(url);
      if (page !== this.page || filters.toString() !== this.shownFilters) return;  // the user moved on meanwhile
      this.total = body.total;
      const pages = Math.max(1, Math.ceil(body.total / this.pageSize));
      this.section.querySelector(".about").textContent = body.description || "";
      const kept = filterText(filters);
      this.section.querySelector(".page-info").textContent = `page ${page} of ${pages} · `
        + `${body.total.toLocaleString()} objects${kept ? ` with ${kept}` : ""} · version ${body.version}`;
      this.section.querySelector(".prev").disabled = page <= 1;
      this.section.querySelector(".next").disabled = page >= pages;
      const toggle = this.section.querySelector(".known-toggle");
      toggle.hidden = !(body.known_left_out > 0 || this.includeKnown);
      toggle.querySelector("span").textContent = this.includeKnown
        ? "show the known lenses (marked “known lens”)"
        : `show the ${body.known_left_out} known lenses the score was trained from (left out: no discovery)`;
      const learned = this.section.querySelector(".learned");
      learned.hidden = body.learned_from_votes == null;
      learned.textContent = body.learned_from_votes == null ? ""
        : `learned from ${body.learned_from_votes} vote${body.learned_from_votes === 1 ? "" : "s"} `
          + `(ranking ${body.ranking_version})`;
      const note = this.section.querySelector(".note");
      const empty = kept && !body.total ? `No object of this ranking has ${kept}: widen the filters or clear them.` : "";
      note.hidden = !(empty || body.note);
      note.textContent = empty || body.note || "";
      const cards = body.items.map((rec) => {
        const extra = document.createElement("div");
        extra.append(this.votes.buttons(rec.object_id), this.selection.buttons(rec.object_id));
        return makeCard(rec, { role: "ranked", flag: this.kind === "artifacts", extra });
      });
      fillGrid(this.grid, cards);
      window.__skysift.marks[`${this.kind}RenderedMs`] = performance.now();
      await this.votes.load(body.items.map((r) => r.object_id));
    } catch (err) {
      this.onError(err);
    } finally {
      if (page === this.page) this.section.setAttribute("aria-busy", "false");
    }
  }

  /** The filters changed: back to the first page, fetched with them. */
  refilter() {
    if (this.page > 1) location.hash = this.kind;  // showTab shows page 1, with the new filters
    else this.show(1, true);
  }
}
