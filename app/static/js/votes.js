// Votes: lens / not a lens, interesting / boring and a 0-5 relevance, POSTed to /api/v1/votes and read back with
// GET /api/v1/votes?object_id=…, so a vote shows as marked after a reload too.
//
// The service keeps every vote (a re-ranking step reads them all); the page shows, per object,
// how many votes each label has and marks the voter's latest choice in each pair.

import { getJSON, postJSON } from "./api.js";

export const PAIRS = [["lens", "not_lens"], ["interesting", "boring"]];
export const LABELS = { lens: "Lens", not_lens: "Not a lens", interesting: "Interesting", boring: "Boring",
  relevance: "Relevance" };

export class Votes {
  constructor(voterInput, onError) {
    this.voterInput = voterInput;
    this.onError = onError;
    this.items = new Map();  // object_id -> votes, oldest first
    this.listeners = [];  // called with (object_id, label) after a vote is saved
    voterInput.addEventListener("change", () => {
      localStorage.setItem("skysift.voter", this.voter);
      this.refreshAll();
    });
    voterInput.value = localStorage.getItem("skysift.voter") || voterInput.value;
  }

  get voter() { return this.voterInput.value.trim() || "anonymous"; }

  /** Call fn(object_id, label) after each vote the service saved (a learned ranking re-learns). */
  onCast(fn) { this.listeners.push(fn); }

  /** Read the votes of these objects (one request each, in parallel), then mark their buttons. */
  async load(ids) {
    await Promise.all([...new Set(ids)].map(async (id) => {
      try {
        const body = await getJSON(`/api/v1/votes?object_id=${encodeURIComponent(id)}&limit=1000`, { quiet: true });
        this.items.set(id, body.items);
      } catch (err) {
        this.onError(err);
      }
      this.refresh(id);
    }));
  }

  summary(id) {
    const items = this.items.get(id) || [];
    const counts = Object.fromEntries(Object.keys(LABELS).map((l) => [l, 0]));
    const mine = new Set();
    for (const v of items) counts[v.label] = (counts[v.label] || 0) + 1;
    for (const pair of PAIRS) {
      const last = items.filter((v) => v.voter === this.voter && pair.includes(v.label)).pop();
      if (last) mine.add(last.label);
    }
    return { counts, mine };
  }

  async cast(id, label, group, extra = {}) {
    group?.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    try {
      const saved = await postJSON("/api/v1/votes", { object_id: id, label, voter: this.voter, ...extra });
      this.items.set(id, [...(this.items.get(id) || []), saved]);
      for (const fn of this.listeners) fn(id, label);
    } catch (err) {
      this.onError(err);
    } finally {
      group?.querySelectorAll("button").forEach((b) => { b.disabled = false; });
      this.refresh(id);
    }
  }

  /** A group of four vote buttons for one object (kept in step with every other group for it). */
  buttons(id) {
    const group = document.createElement("div");
    group.className = "votes";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", `votes on ${id}`);
    group.dataset.objectId = id;
    for (const pair of PAIRS) {
      for (const label of pair) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = `vote vote-${label}`;
        b.dataset.label = label;
        b.setAttribute("aria-pressed", "false");
        b.innerHTML = `<span class="label"></span> <span class="count"></span>`;
        b.querySelector(".label").textContent = LABELS[label];
        b.addEventListener("click", () => this.cast(id, label, group));
        group.append(b);
      }
    }
    this.paint(group);
    return group;
  }

  /** A 0-5 relevance rating for one object (Astronomaly's scale): a choice and a button that casts it. */
  relevance(id) {
    const box = document.createElement("div");
    box.className = "relevance";
    box.innerHTML = `<label>Relevance <select class="relevance-score">${[0, 1, 2, 3, 4, 5].map((n) =>
      `<option value="${n}"${n === 3 ? " selected" : ""}>${n}</option>`).join("")}</select> of 5</label>
      <button type="button" class="relevance-cast">Rate</button> <span class="relevance-mine muted"></span>`;
    box.querySelector(".relevance-cast").addEventListener("click", async () => {
      const score = Number(box.querySelector(".relevance-score").value);
      await this.cast(id, "relevance", box, { score });
      const mine = (this.items.get(id) || []).filter((v) => v.label === "relevance" && v.voter === this.voter).pop();
      box.querySelector(".relevance-mine").textContent = mine ? `you rated it ${mine.score}` : "";
    });
    return box;
  }

  paint(group) {
    const { counts, mine } = this.summary(group.dataset.objectId);
    for (const b of group.querySelectorAll("button")) {
      const label = b.dataset.label;
      b.setAttribute("aria-pressed", String(mine.has(label)));
      b.querySelector(".count").textContent = counts[label] ? String(counts[label]) : "";
      b.title = `${LABELS[label]}: ${counts[label]} vote(s)${mine.has(label) ? ", including yours" : ""}`;
    }
  }

  refresh(id) {
    document.querySelectorAll(`.votes[data-object-id="${CSS.escape(id)}"]`).forEach((g) => this.paint(g));
  }

  refreshAll() { document.querySelectorAll(".votes").forEach((g) => this.paint(g)); }
}
