// "More like these, less like those": cards picked on any tab as examples to look like or unlike,
// searched together (POST /api/v1/search/examples, Rocchio relevance feedback) and voted on in one
// go ("interesting" for the ones to look like, "boring" for the others). One selection for the page:
// every card of an object shows the same state, whichever tab it is on.

export class Selection {
  constructor(bar, { onSearch, votes }) {
    this.bar = bar;
    this.like = new Set();
    this.unlike = new Set();
    this.onSearch = onSearch;
    this.votes = votes;
    bar.innerHTML = `
      <span class="selection-count" aria-live="polite"></span>
      <button type="button" class="search-selected">Search: more like these</button>
      <button type="button" class="vote-selected">Vote them interesting / boring</button>
      <button type="button" class="clear-selected">Clear</button>`;
    bar.querySelector(".search-selected").addEventListener("click", () => {
      if (this.like.size) this.onSearch([...this.like], [...this.unlike]);
    });
    bar.querySelector(".vote-selected").addEventListener("click", async () => {
      const casts = [...[...this.like].map((id) => [id, "interesting"]), ...[...this.unlike].map((id) => [id, "boring"])];
      for (const [id, label] of casts) await this.votes.cast(id, label, null);
    });
    bar.querySelector(".clear-selected").addEventListener("click", () => {
      this.like.clear();
      this.unlike.clear();
      this.refresh();
    });
    this.refresh();
  }

  /** Two toggles for one card: pick the object as an example to look like, or unlike. */
  buttons(id) {
    const group = document.createElement("div");
    group.className = "pick";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", `example ${id}`);
    group.dataset.objectId = id;
    for (const [which, text] of [["like", "More like this"], ["unlike", "Less like this"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `pick-${which}`;
      b.textContent = text;
      b.addEventListener("click", () => this.toggle(id, which));
      group.append(b);
    }
    this.mark(group);
    return group;
  }

  toggle(id, which) {
    const [mine, other] = which === "like" ? [this.like, this.unlike] : [this.unlike, this.like];
    if (mine.has(id)) mine.delete(id);
    else { mine.add(id); other.delete(id); }
    this.refresh();
  }

  mark(group) {
    const id = group.dataset.objectId;
    group.querySelector(".pick-like").setAttribute("aria-pressed", String(this.like.has(id)));
    group.querySelector(".pick-unlike").setAttribute("aria-pressed", String(this.unlike.has(id)));
  }

  refresh() {
    document.querySelectorAll(".pick").forEach((g) => this.mark(g));
    const n = this.like.size + this.unlike.size;
    this.bar.hidden = n === 0;
    this.bar.querySelector(".selection-count").textContent =
      `${this.like.size} to look like · ${this.unlike.size} to look unlike`;
    this.bar.querySelector(".search-selected").disabled = this.like.size === 0;
  }
}
