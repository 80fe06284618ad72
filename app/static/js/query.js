// What the search box means, and the search as it lives in the address bar.
//
// The box takes an object ID or a position. A position is two angles, separated by a comma or
// whitespace: degrees ("150.1 2.2", "150.1, +2.2") or sexagesimal, hours for RA and degrees for
// Dec ("10:00:24 +02:12:00", "10 00 24 +02 12 00", "10h00m24s +2d12m00s"). Anything else is an
// object ID, so IDs with spaces or slashes ("9010/331487/4071") stay IDs. The service parses the
// angles (GET /search/position accepts both forms), so the page only decides which is which.

const DEG = /^[+-]?(\d+\.?\d*|\.\d+)$/;
const COLON = /^[+-]?\d{1,3}:\d{1,2}(:\d{1,2}(\.\d*)?)?$/;
const LETTERS = /^[+-]?\d{1,3}(\.\d*)?[hd°](\d{1,2}(\.\d*)?[m'′](\d{1,2}(\.\d*)?[s"″]?)?)?$/i;

const isAngle = (s) => DEG.test(s) || COLON.test(s) || LETTERS.test(s);

/** {kind: "id", id} | {kind: "position", ra, dec} | null for an empty box. */
export function parseQuery(text) {
  const t = (text || "").trim();
  if (!t) return null;
  if (t.includes(",")) {
    const parts = t.split(",").map((s) => s.trim().replace(/\s+/g, ""));
    if (parts.length === 2 && parts.every(isAngle)) return { kind: "position", ra: parts[0], dec: parts[1], text: t };
    return { kind: "id", id: t, text: t };
  }
  const tokens = t.split(/\s+/);
  if (tokens.length === 2 && tokens.every(isAngle)) return { kind: "position", ra: tokens[0], dec: tokens[1], text: t };
  if (tokens.length === 6 && tokens.every((s) => DEG.test(s))) {
    return { kind: "position", ra: tokens.slice(0, 3).join(":"), dec: tokens.slice(3).join(":"), text: t };
  }
  return { kind: "id", id: t, text: t };
}

export const FILTERS = ["z_min", "z_max", "mag_max"];

/** The search in the address: ?q=…&k=…&z_min=…&z_max=…&mag_max=… (strings, "" when absent). */
export function readUrlState(search = location.search) {
  const p = new URLSearchParams(search);
  const state = { q: p.get("q") || "", k: p.get("k") || "" };
  for (const f of FILTERS) state[f] = p.get(f) || "";
  return state;
}

export function urlFor(state, hash = location.hash) {
  const p = new URLSearchParams();
  for (const key of ["q", "k", ...FILTERS]) if (state[key]) p.set(key, state[key]);
  const qs = p.toString();
  return `${location.pathname}${qs ? "?" + qs : ""}${hash}`;
}

/** "10:00:24.00 +02:12:00.0" from degrees, for people who read coordinates that way. */
export function sexagesimal(raDeg, decDeg) {
  const part = (v, div, per) => {  // per: steps per second of the last field, rounded before splitting
    let total = Math.round(Math.abs(v) / div * 3600 * per) / per;
    const a = Math.floor(total / 3600); total -= a * 3600;
    const b = Math.floor(total / 60); const c = total - b * 60;
    return [a, b, c];
  };
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  const [h24, m, s] = part(raDeg, 15, 100);
  const h = h24 % 24;  // 359.99999 deg rounds up to 24:00:00.00
  const [d, dm, ds] = part(decDeg, 1, 10);
  const sign = decDeg < 0 ? "-" : "+";
  return `${pad(h)}:${pad(m)}:${s.toFixed(2).padStart(5, "0")} ${sign}${pad(d)}:${pad(dm)}:${ds.toFixed(1).padStart(4, "0")}`;
}

export function legacyViewerUrl(ra, dec) {
  const p = new URLSearchParams({ ra: Number(ra).toFixed(6), dec: Number(dec).toFixed(6), layer: "ls-dr10", zoom: "16" });
  return `https://www.legacysurvey.org/viewer?${p}`;
}

/** SIMBAD's objects within 5″ of the position. */
export function simbadUrl(ra, dec) {
  const p = new URLSearchParams({ Coord: `${Number(ra).toFixed(6)} ${Number(dec).toFixed(6)}`, CooFrame: "ICRS",
    Radius: "5", "Radius.unit": "arcsec" });
  return `https://simbad.cds.unistra.fr/simbad/sim-coo?${p}`;
}

/** NED's near-position search, 0.1′ (6″) around the position. */
export function nedUrl(ra, dec) {
  const p = new URLSearchParams({ search_type: "Near Position Search", in_csys: "Equatorial", in_equinox: "J2000.0",
    lon: `${Number(ra).toFixed(6)}d`, lat: `${Number(dec).toFixed(6)}d`, radius: "0.1" });
  return `https://ned.ipac.caltech.edu/cgi-bin/objsearch?${p}`;
}

/** [name, url] of the outside archives at a position: Legacy Survey viewer, SIMBAD, NED. */
export const outsideLinks = (ra, dec) =>
  [["Legacy Survey", legacyViewerUrl(ra, dec)], ["SIMBAD", simbadUrl(ra, dec)], ["NED", nedUrl(ra, dec)]];
