// skysift explorer: uses only the public REST API under /api/v1.
"use strict";

const $ = (sel) => document.querySelector(sel);
const api = (path) => fetch(path).then(async (r) => {
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail || `request failed (${r.status})`);
  return body;
});

function setStatus(text, isError = false) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function card(n, isQuery) {
  const el = document.createElement("article");
  el.className = "card" + (isQuery ? " query" : "");
  el.tabIndex = 0;
  el.dataset.objectId = n.object_id;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = n.object_id;
  img.src = `/api/v1/cutouts/${encodeURIComponent(n.object_id)}.png?size=128`;
  const id = document.createElement("div");
  id.className = "id";
  id.textContent = n.object_id;
  const meta = document.createElement("div");
  meta.className = "meta";
  const z = n.z != null ? ` · z ${Number(n.z).toFixed(3)}` : "";
  meta.textContent = isQuery ? `query${z}` : `d ${n.distance.toFixed(3)}${z}`;
  el.append(img, id, meta);
  const go = () => search(n.object_id);
  el.addEventListener("click", go);
  el.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
  return el;
}

async function search(objectId, push = true) {
  const k = $("#k").value;
  $("#query").value = objectId;
  if (push) history.pushState({ q: objectId }, "", `?q=${encodeURIComponent(objectId)}&k=${k}`);
  setStatus("searching…");
  const results = $("#results");
  try {
    const res = await api(`/api/v1/objects/${encodeURIComponent(objectId)}/similar?k=${k}`);
    results.replaceChildren(...res.neighbours.map((n, i) => card(n, i === 0 && n.object_id === res.query.object_id)));
    setStatus(`${res.neighbours.length} most similar to ${res.query.object_id} (version ${res.version})`);
  } catch (err) {
    results.replaceChildren();
    setStatus(err.message, true);
  }
}

$("#search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = $("#query").value.trim();
  if (q) search(q);
});

window.addEventListener("popstate", (e) => { if (e.state && e.state.q) search(e.state.q, false); });

(async function init() {
  try {
    const v = await api("/api/v1/version");
    $("#version").textContent = `${v.survey.name} · ${v.n_objects.toLocaleString()} objects · ${v.version}`;
  } catch (err) {
    setStatus(err.message, true);
  }
  const params = new URLSearchParams(location.search);
  if (params.get("k")) $("#k").value = params.get("k");
  if (params.get("q")) search(params.get("q"), false);
})();
