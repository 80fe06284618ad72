// The one place the page talks to the service: every call goes through `request`, which turns
// the API's JSON errors ({"error": code, "detail": sentence}) into ApiError and keeps the page's
// loading state (aria-busy on <main> and the visible indicator) while any request is in flight.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

let inFlight = 0;

function setBusy(delta) {
  inFlight = Math.max(0, inFlight + delta);
  const busy = inFlight > 0;
  document.querySelector("main")?.setAttribute("aria-busy", String(busy));
  const indicator = document.getElementById("busy");
  if (indicator) indicator.hidden = !busy;
}

/** fetch + JSON; `as: "arrayBuffer"` for binary bodies. Throws ApiError for any non-2xx answer. */
export async function request(path, { method = "GET", body, signal, as = "json", quiet = false } = {}) {
  if (!quiet) setBusy(+1);
  try {
    let r;
    try {
      r = await fetch(path, { method, body, signal, headers: body && !(body instanceof FormData)
        ? { "Content-Type": "application/json" } : undefined });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "network", `the service did not answer (${err.message}); is it still running?`);
    }
    if (!r.ok) {
      const text = await r.text();
      let parsed = null;
      try { parsed = JSON.parse(text); } catch { /* not JSON: a proxy's error page */ }
      if (parsed && parsed.error) throw new ApiError(r.status, parsed.error, parsed.detail || parsed.error);
      throw new ApiError(r.status, "http_error", `the service answered ${r.status} ${r.statusText}`.trim());
    }
    return as === "arrayBuffer" ? await r.arrayBuffer() : await r.json();
  } finally {
    if (!quiet) setBusy(-1);
  }
}

export const getJSON = (path, opts) => request(path, opts);
export const postJSON = (path, data, opts = {}) => request(path, { ...opts, method: "POST", body: JSON.stringify(data) });

const TITLES = {
  unknown_object: "Unknown object",
  unknown_point: "Unknown map point",
  no_object_in_radius: "Nothing at that position",
  invalid_parameter: "Please check the input",
  unsupported_format: "Unsupported file",
  unsupported_media_type: "Unsupported upload",
  format_mismatch: "File name and contents disagree",
  upload_too_large: "File too large",
  image_too_large: "Image too large",
  empty_upload: "Empty upload",
  empty_image: "Empty image",
  missing_pixel_scale: "Pixel scale needed",
  unsupported_array: "Unsupported array",
  unreadable_cutout: "Could not read that file",
  incompatible_cutout: "That cutout does not fit the model",
  bad_upload: "Could not use that file",
  encoder_unavailable: "Uploads are unavailable",
  no_index: "No index published yet",
  network: "No answer",
};

/** A sentence for the page: "Unknown object: no object with id 'x' in this survey."; context names the
 *  input (an uploaded file's name) when the detail may not. */
export function errorMessage(err, context = "") {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err.message || err}`;
  const title = (TITLES[err.code] || `Error ${err.status || ""}`.trim()) + (context ? ` (${context})` : "");
  const detail = String(err.detail || "").replace(/\.?$/, ".");
  const hint = err.code === "missing_pixel_scale" ? " Set the pixel scale under “Upload options” and try again." : "";
  return `${title}: ${detail}${hint}`;
}
