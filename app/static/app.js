// skysift explorer: the page's controller. It uses only the public REST API under /api/v1.
//
// index.html loads this file as a classic script; it pulls the ES modules under /static/js in
// with import() (no build step), and the map module only when the map tab first opens.
// The search lives in the address (?q=…&k=…&z_min=…&z_max=…&mag_max=…), the tab in the hash
// (#search, #anomalies/2, #artifacts, #lenses, #map). Timing marks (performance.now(), ms since navigation)
// go to window.__skysift.marks for tests and bench/bench_explorer.py.
"use strict";

window.__skysift = { marks: {}, ready: false, map: null };

(async function main() {
  const [{ ApiError, errorMessage, getJSON, postJSON, request }, query, cards, lists, { Votes }, { Panel },
    { Ranking }, { Landing }, { Selection }] = await Promise.all([
    import("/static/js/api.js"), import("/static/js/query.js"), import("/static/js/cards.js"),
    import("/static/js/lists.js"), import("/static/js/votes.js"), import("/static/js/panel.js"),
    import("/static/js/rankings.js"), import("/static/js/landing.js"), import("/static/js/selection.js"),
  ]);
  const $ = (sel) => document.querySelector(sel);
  const marks = window.__skysift.marks;
  const el = {
    form: $("#search-form"), query: $("#query"), k: $("#k"), file: $("#file"), chip: $("#file-chip"),
    status: $("#status"), message: $("#message"), results: $("#results"), summary: $("#summary"),
    pixelScale: $("#pixel_scale"), bands: $("#bands"), overlay: $("#drop-overlay"), downloads: $("#downloads"),
  };
  const filterInputs = Object.fromEntries(query.FILTERS.map((f) => [f, document.getElementById(f)]));

  // ---- messages
  const setStatus = (text) => { el.status.textContent = text; };
  function showError(err, context = "") {
    el.message.textContent = errorMessage(err, context);
    el.message.hidden = false;
  }
  const clearError = () => { el.message.hidden = true; el.message.textContent = ""; };

  // ---- shared pieces
  const votes = new Votes($("#voter"), showError);
  const selection = new Selection($("#selection-bar"), {
    votes, onSearch: (like, unlike) => runSearch({ kind: "examples", like, unlike,
      text: `${like.length} example${like.length === 1 ? "" : "s"}` }),
  });
  const panel = new Panel($("#detail"), {
    votes, selection, onError: showError,
    onSearch: (rec) => { panel.close(); searchId(rec.object_id); },
    onShowOnMap: (rec) => { panel.close(); location.hash = "map"; mapReady().then((m) => m?.focusRow(rec.row)); },
  });
  const open = (rec, card) => panel.open(rec, card);
  cards.installGrid(el.results, { onOpen: open, onSearch: (rec) => searchId(rec.object_id) });
  const landing = new Landing($("#landing"), {
    onOpen: open, onError: showError,
    onSearch: (text) => { el.query.value = text; el.form.requestSubmit(); },
  });
  let surveyInfo = null;  // GET /api/v1/version, for the landing view
  // the search bar's filters filter the rankings too (the same z and magnitude parameters)
  const filters = () => new URLSearchParams(Object.entries(filterInputs).filter(([, i]) => i.value.trim())
    .map(([f, i]) => [f, i.value.trim()]));
  const rankings = {
    anomalies: new Ranking($("#panel-anomalies"), { kind: "anomalies", selection, label: "most unusual objects", votes,
      filters, onOpen: open, onSearch: (rec) => searchId(rec.object_id), onError: showError }),
    artifacts: new Ranking($("#panel-artifacts"), { kind: "artifacts", selection, label: "likely artifacts", votes,
      filters, onOpen: open, onSearch: (rec) => searchId(rec.object_id), onError: showError }),
    lenses: new Ranking($("#panel-lenses"), { kind: "lenses", selection, label: "strong-lens candidates", votes,
      filters, onOpen: open, onSearch: (rec) => searchId(rec.object_id), onError: showError }),
  };

  // ---- the map, loaded on first use
  let map = null;
  let mapModule = null;
  let lastHighlight = null;
  async function mapReady() {
    if (!mapModule) mapModule = import("/static/js/map.js");
    const { EmbeddingMap } = await mapModule;
    if (!map) {
      map = window.__skysift.map = new EmbeddingMap($("#map-canvas"), {
        legend: $("#map-legend"), info: $("#map-info"), onError: showError,
        onPick: async (row) => {
          try {
            const rec = await getJSON(`/api/v1/map/points/${row}`);
            marks.mapPickMs = performance.now();
            panel.open(rec, $("#map-canvas"));
          } catch (err) { showError(err); }
        },
      });
      $("#map-zoom-in").addEventListener("click", () => map.zoomAt(map.canvas.width / 2, map.canvas.height / 2, 1.5));
      $("#map-zoom-out").addEventListener("click", () => map.zoomAt(map.canvas.width / 2, map.canvas.height / 2, 1 / 1.5));
      $("#map-reset").addEventListener("click", () => { map.fit(); map.schedule(); });
    }
    await map.load();
    if (lastHighlight) {
      if (map.meta && lastHighlight.version !== map.meta.version) { map.invalidate(); await map.load(); }
      map.setHighlight(lastHighlight.version, lastHighlight.queryRow, lastHighlight.rows);
    }
    return map;
  }

  // ---- tabs (the hash is the source of truth)
  const TABS = ["search", "anomalies", "artifacts", "lenses", "map"];
  let searchStale = false;  // the filters changed on a ranking tab since the search ran: run it when shown
  function showTab() {
    const [name, page] = location.hash.replace(/^#/, "").split("/");
    const tab = TABS.includes(name) ? name : "search";
    for (const t of TABS) {
      const link = document.getElementById(`tab-${t}`);
      link.setAttribute("aria-selected", String(t === tab));
      link.tabIndex = t === tab ? 0 : -1;
      document.getElementById(`panel-${t}`).hidden = t !== tab;
    }
    if (rankings[tab]) rankings[tab].show(Number(page) || 1);
    if (tab === "search") landing.drawIfShown();
    if (tab === "search" && searchStale) { searchStale = false; runSearch(current, "replace"); }
    if (tab === "map") mapReady();
  }
  window.addEventListener("hashchange", showTab);
  $(".tabs").addEventListener("keydown", (e) => {
    const i = TABS.findIndex((t) => document.getElementById(`tab-${t}`) === e.target);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
    if (i < 0 || !step) return;
    e.preventDefault();
    const next = TABS[(i + step + TABS.length) % TABS.length];
    document.getElementById(`tab-${next}`).focus();
    location.hash = next;
  });

  // ---- searching
  let current = null;  // {kind: "id"|"position", text, ...} or {kind: "file", file}
  let inflight = null;
  let requery = null;  // debounce timer of a re-query after k or a filter changed
  let shownSearch = null;  // location.search of the search last run: a tab change does not re-run it

  function filterParams() {
    const p = new URLSearchParams({ k: el.k.value });
    for (const [name, input] of Object.entries(filterInputs)) if (input.value.trim()) p.set(name, input.value.trim());
    return p;
  }

  function searchId(id) {
    el.query.value = id;
    selectFile(null);
    return runSearch({ kind: "id", id, text: id });
  }

  function selectFile(file) {
    el.chip.hidden = !file;
    el.chip.file = file;
    if (file) {
      el.chip.querySelector(".name").textContent = `${file.name} (${(file.size / 1024).toFixed(1)} kB)`;
      el.query.value = "";
    }
  }

  /** Run a search; mode: "push" (a new search), "replace" (filters or k changed), "none" (from the URL). */
  async function runSearch(q, mode = "push") {
    clearTimeout(requery);  // this search already has the latest k and filters
    current = q;
    landing.hide();
    inflight?.abort();
    const abort = inflight = new AbortController();
    const params = filterParams();
    const asked = new URLSearchParams(params);  // k and filters as sent (params gains ra/dec below)
    const t0 = marks.searchStartMs = performance.now();
    setStatus(q.kind === "file" ? `Embedding ${q.file.name}…` : `Searching for ${q.text}…`);
    if (mode !== "none") {
      // One history entry with the new search *and* the search tab. Setting location.hash first
      // (as this did) navigated at once: Chrome fires popstate synchronously, and fromUrl re-ran
      // the previous search from the old address over this one (issue #17).
      const state = { q: q.kind === "file" ? "" : q.text, ...Object.fromEntries(params) };
      const hash = ["", "#search"].includes(location.hash) ? location.hash : "#search";
      history[mode === "push" ? "pushState" : "replaceState"](null, "", query.urlFor(state, hash));
      showTab();  // pushState fires no hashchange
    }
    shownSearch = location.search;
    let res;
    let listUrl = null;  // the GET that answered, for its CSV/VOTable downloads (an upload has none)
    try {
      if (q.kind === "id") {
        listUrl = `/api/v1/objects/${encodeURIComponent(q.id)}/similar?${params}`;
        res = await getJSON(listUrl, { signal: abort.signal });
      } else if (q.kind === "examples") {
        const body = { positive: q.like, negative: q.unlike, k: Number(params.get("k")) };
        for (const f of ["z_min", "z_max", "mag_max"]) if (params.has(f)) body[f] = Number(params.get(f));
        res = await postJSON("/api/v1/search/examples", body, { signal: abort.signal });
      } else if (q.kind === "position") {
        params.set("ra", q.ra);
        params.set("dec", q.dec);
        listUrl = `/api/v1/search/position?${params}`;
        res = await getJSON(listUrl, { signal: abort.signal });
      } else {
        res = await request("/api/v1/search/cutout", { method: "POST", body: uploadForm(q.file, params),
          signal: abort.signal });
      }
    } catch (err) {
      if (err.name === "AbortError") return;
      el.results.replaceChildren();
      el.summary.replaceChildren();
      el.downloads.hidden = true;
      setStatus("");
      showError(err, q.kind === "file" ? q.file.name : "");
      return;
    }
    if (abort !== inflight) return;
    clearError();
    render(res, q, t0, asked);
    showDownloads(res, q, listUrl, asked);
  }

  /** The multipart body of an upload search: the file, k and filters, the upload options. */
  function uploadForm(file, params) {
    const form = new FormData();
    form.append("file", file, file.name);
    for (const [name, value] of params) form.append(name, value);
    if (el.pixelScale.value.trim()) form.append("pixel_scale_arcsec", el.pixelScale.value.trim());
    if (el.bands.value.trim()) form.append("bands", el.bands.value.trim());
    return form;
  }

  /** "Download these 12 results: CSV · VOTable" under the summary. */
  function showDownloads(res, q, listUrl, asked) {
    const n = res.neighbours.length;
    el.downloads.hidden = !n;
    if (!n) return;
    const links = lists.downloadLinks(listUrl ? { url: listUrl } : {
      stem: `similar-to-${q.file.name}`, onError: (err) => showError(err, q.file.name),
      fetchTable: (fmt) => request(`/api/v1/search/cutout?format=${fmt}`,
        { method: "POST", body: uploadForm(q.file, asked), as: "arrayBuffer" }),
    });
    el.downloads.replaceChildren(`Download these ${n} result${n === 1 ? "" : "s"}: `, links[0], " · ", links[1]);
  }

  function render(res, q, t0, params) {
    const qid = res.query && res.query.object_id;
    const list = res.neighbours.map((n) => cards.makeCard(n, { role: n.object_id === qid ? "query" : "neighbour",
      extra: selection.buttons(n.object_id) }));
    cards.fillGrid(el.results, list);
    marks.gridRenderedMs = performance.now() - t0;
    marks.gridShownAt = performance.now();
    marks.renders = (marks.renders || 0) + 1;
    trackImages(list, t0);

    const s = el.summary;
    s.replaceChildren();
    const line = document.createElement("p");
    const n = res.neighbours.length;
    // With filters on, say which, and whether the query object itself is among the results.
    const filters = lists.filterText(params);
    const kept = filters ? ` with ${filters}` : "";
    const missing = filters && qid && n && !res.neighbours.some((x) => x.object_id === qid)
      ? ` (${qid} itself does not pass the filters)` : "";
    const few = filters && n && n < Number(params.get("k")) ? ` Only ${n} objects pass the filters.` : "";
    if (q.kind === "file") {
      const u = res.query;
      line.textContent = `${n} objects${kept} most similar to the uploaded ${u.format.toUpperCase()} ` +
        `“${u.filename || "cutout"}” (${u.shape.join("×")}, ${u.pixel_scale_arcsec.toPrecision(3)}″/px from ` +
        `${u.pixel_scale_source}).${few} Uploads are not part of the address: share an object ID or a position instead.`;
      s.append(line);
      if (u.notes && u.notes.length) {
        const notes = document.createElement("ul");
        notes.className = "notes muted";
        notes.replaceChildren(...u.notes.map((t) => Object.assign(document.createElement("li"), { textContent: t })));
        s.append(notes);
      }
    } else if (q.kind === "examples") {
      line.textContent = `${n} objects${kept} most like ${q.like.join(", ")}` +
        (q.unlike.length ? ` and least like ${q.unlike.join(", ")}` : "") +
        `, the examples left out.${few} A selection is not part of the address.`;
      s.append(line);
    } else {
      const m = res.matched;
      line.textContent = (m
        ? `Nearest object to RA ${m.ra.toFixed(5)}°, Dec ${m.dec.toFixed(5)}°: ${m.object_id}, ` +
          `${m.separation_arcsec.toFixed(2)}″ away. ${n} most similar objects${kept}${missing}:`
        : `${n} objects${kept} most similar to ${qid}${missing}:`) + few;
      s.append(line);
    }
    if (!n) s.append(lists.emptyNote(filters, () => $("#clear-filters").click()));
    setStatus(`${n} result${n === 1 ? "" : "s"} · version ${res.version}`);

    lastHighlight = { version: res.version, queryRow: res.query && res.query.row, rows: res.neighbours.map((x) => x.row) };
    map?.setHighlight(lastHighlight.version, lastHighlight.queryRow, lastHighlight.rows);
  }

  function trackImages(list, t0) {
    const imgs = list.map((c) => c.querySelector("img"));
    let left = imgs.length;
    const done = () => { if (--left === 0) marks.gridImagesMs = performance.now() - t0; };
    delete marks.gridImagesMs;
    for (const img of imgs) {
      if (img.complete && img.naturalWidth) done();
      else { img.addEventListener("load", done, { once: true }); img.addEventListener("error", done, { once: true }); }
    }
  }

  // ---- inputs
  el.form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = el.query.value.trim();
    if (text) { selectFile(null); runSearch(query.parseQuery(text)); return; }
    if (el.chip.file) { runSearch({ kind: "file", file: el.chip.file }); return; }
    showError(new ApiError(0, "invalid_parameter", "type an object ID or a position, or drop a cutout file"));
    el.query.focus();
  });
  el.query.addEventListener("input", () => { if (el.query.value) selectFile(null); });
  el.chip.querySelector(".clear-file").addEventListener("click", () => { selectFile(null); el.query.focus(); });
  el.file.addEventListener("change", () => {
    const file = el.file.files[0];
    el.file.value = "";
    if (file) { selectFile(file); runSearch({ kind: "file", file }); }
  });

  const reQuery = () => {
    clearTimeout(requery);
    requery = setTimeout(() => {
      const shown = Object.values(rankings).find((r) => !r.section.hidden);
      if (shown) {  // filtering a ranking: the search (if any) runs with the filters when its tab is shown
        shown.refilter();
        searchStale = Boolean(current);
      } else if (current) {
        runSearch(current, "replace");
      }
    }, 350);
  };
  for (const input of Object.values(filterInputs)) input.addEventListener("input", reQuery);
  el.k.addEventListener("change", reQuery);
  $("#clear-filters").addEventListener("click", () => {
    for (const input of Object.values(filterInputs)) input.value = "";
    reQuery();
  });

  // the cutouts' stretch, kept in this browser like the voter's name
  const stretch = $("#stretch");
  stretch.value = localStorage.getItem("skysift.stretch") || "";
  if (stretch.selectedIndex < 0) stretch.value = "";
  cards.setStretch(stretch.value);
  stretch.addEventListener("change", () => {
    localStorage.setItem("skysift.stretch", stretch.value);
    cards.setStretch(stretch.value);
  });

  // files dropped or pasted anywhere on the page
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragover", (e) => { if (hasFiles(e)) { e.preventDefault(); el.overlay.hidden = false; } });
  document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) el.overlay.hidden = true; });
  document.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    el.overlay.hidden = true;
    const file = e.dataTransfer.files[0];
    if (file) { selectFile(file); runSearch({ kind: "file", file }); }
  });
  document.addEventListener("paste", (e) => {
    const file = e.clipboardData?.files?.[0];
    if (!file) return;  // text pastes into the box as usual
    e.preventDefault();
    selectFile(file);
    runSearch({ kind: "file", file });
  });
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    if (!el.overlay.hidden) el.overlay.hidden = true;
    else if (panel.isOpen) { e.preventDefault(); panel.close(); }
  });

  // ---- the address: restore a shared search, follow back/forward
  function fromUrl() {
    const state = query.readUrlState();
    if (state.k) {
      if (![...el.k.options].some((o) => o.value === state.k)) el.k.append(new Option(state.k));
      el.k.value = state.k;
    }
    for (const [name, input] of Object.entries(filterInputs)) input.value = state[name];
    el.query.value = state.q;
    const q = query.parseQuery(state.q);
    if (q && location.search !== shownSearch) runSearch(q, "none");  // a tab link also fires popstate
    else if (!q && current?.kind !== "file") showLanding();  // an upload's address has no q either
  }

  /** Back to the start: no search, the survey's summary instead of results. */
  function showLanding() {
    inflight?.abort();
    current = null;
    shownSearch = location.search;
    el.results.replaceChildren();
    el.summary.replaceChildren();
    el.downloads.hidden = true;
    setStatus("");
    if (surveyInfo) landing.show(surveyInfo);
  }
  window.addEventListener("popstate", fromUrl);

  try {
    const v = surveyInfo = await getJSON("/api/v1/version");
    $("#version").textContent = `${v.survey.name} · ${v.n_objects.toLocaleString()} objects · ${v.version}`;
  } catch (err) {
    showError(err);
  }
  showTab();
  fromUrl();
  window.__skysift.ready = true;
})().catch((err) => {
  const box = document.getElementById("message");
  box.textContent = `The page could not start: ${err.message || err}`;
  box.hidden = false;
});
