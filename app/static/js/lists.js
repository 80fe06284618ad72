// What a result list says about itself: its filters in words, what an empty result means, and its
// CSV/VOTable downloads (the same query with format=csv|votable: every search and ranking route
// answers those formats).

import { FILTERS } from "./query.js";

/** "0.1 ≤ z ≤ 0.3 and mag ≤ 20" for the filters in params (URLSearchParams), "" when none is set. */
export function filterText(params) {
  const [lo, hi, mag] = FILTERS.map((f) => params.get(f));
  const parts = [];
  if (lo && hi) parts.push(`${lo} ≤ z ≤ ${hi}`);
  else if (lo) parts.push(`z ≥ ${lo}`);
  else if (hi) parts.push(`z ≤ ${hi}`);
  if (mag) parts.push(`mag ≤ ${mag}`);
  return parts.join(" and ");
}

/** The note of an empty result. The service searched every object that passes the filters, so
 *  none of the survey does: say which filters, how to widen them, and offer to clear them. */
export function emptyNote(filters, onClear) {
  const note = document.createElement("p");
  note.className = "empty";
  if (!filters) { note.textContent = "No results."; return note; }
  const clear = Object.assign(document.createElement("button"), { type: "button", textContent: "Clear the filters" });
  clear.addEventListener("click", onClear);
  note.append(`No object in the survey has ${filters}. Widen the redshift range or raise the magnitude ` +
    "limit under Filters, or ", clear, ".");
  return note;
}

const FORMATS = { csv: ["CSV", "csv", "text/csv"], votable: ["VOTable", "xml", "application/x-votable+xml"] };

/**
 * [CSV link, VOTable link] of a result list. url: the GET that gave the list (the service's
 * Content-Disposition names the file). Without one (an upload is a POST of a file in this browser),
 * fetchTable(format) -> ArrayBuffer fetches the table on the first click, saved as `${stem}.csv|xml`.
 */
export function downloadLinks({ url = null, fetchTable = null, stem = "results", onError = () => {} }) {
  return Object.entries(FORMATS).map(([fmt, [label, ext, media]]) => {
    const a = Object.assign(document.createElement("a"), { textContent: label, className: fmt, download: "" });
    if (url) { a.href = `${url}${url.includes("?") ? "&" : "?"}format=${fmt}`; return a; }
    a.download = `${stem.replace(/[^\w.-]+/g, "_")}.${ext}`;
    a.href = "#";
    a.addEventListener("click", async (e) => {
      if (a.href.startsWith("blob:")) return;  // fetched already: this click saves it
      e.preventDefault();
      try {
        a.href = URL.createObjectURL(new Blob([await fetchTable(fmt)], { type: media }));
        a.click();
      } catch (err) { onError(err); }
    });
    return a;
  });
}
