"""How fast does the explorer page draw a 10^6-point embedding map, and a grid of search results?

    nice -n 10 .venv/bin/python bench/bench_explorer.py                      # builds a tiny version first
    nice -n 10 .venv/bin/python bench/bench_explorer.py --artifacts artifacts --repeats 5
    .venv/bin/python bench/bench_explorer.py --table-only                    # docs table from the JSON

The page runs in headless Debian chromium (the browser tests' launch flags) against a real
uvicorn server. The map is synthetic: 10^6 points in seeded Gaussian clusters, with 8 colour
classes, packed by the real `app.routes.map.build_payload` and served by the real
`/api/v1/map/points.bin` route in place of the version's own map (the served version keeps its
own catalog, so only the map is large). The search grid comes from the served version as is.

Timings are the page's own `performance.now()` marks (app.js, window.__skysift.marks):
  map_drawn_ms       navigation start -> first map frame on screen (#map opened directly)
  map_fetch_ms       GET /map + points.bin (9 MB at 10^6) as seen by the page
  map_index_ms       the cell index (counting sort of the points into cells), built just after
                     the first frame; picks and zoomed-in frames read it
  map_first_frame_ms binning + tone mapping + putImageData of the first frame
  map_frame_ms       median / p95 of the frames redrawn while zooming and panning
  map_pick_ms        one nearest-point lookup through the grid (mean of 200 random clicks)
  grid_rendered_ms   search start -> the k cards in the DOM (the API answer included)
  grid_images_ms     search start -> every cutout <img> of the grid loaded
Each repeat uses a fresh browser context (cold HTTP cache); the first run is a warm-up and is
dropped. Writes bench/results/explorer.json (or --out), the table in docs/explorer.md between the
`bench:explorer` markers and the screenshot docs/img/explorer_map_1e6.png (--no-docs: neither; the
smoke run in tests/test_bench_smoke.py uses it with a few thousand points).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    RESULTS_DIR,
    ROOT,
    fill_markers,
    git_sha,
    host_machine,
    median_min_max,
    require_measured,
    utc_now_minutes,
    write_json,
)

RESULTS = RESULTS_DIR / "explorer.json"
DOC = ROOT / "docs" / "explorer.md"
SHOT = ROOT / "docs" / "img" / "explorer_map_1e6.png"
CHROMIUM = os.environ.get("SKYSIFT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1200, "height": 800}
MARK_START, MARK_END = "<!-- bench:explorer:start -->", "<!-- bench:explorer:end -->"


def synthetic_map(n: int, seed: int, n_classes: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) float32 points in 24 anisotropic Gaussian clusters of uneven sizes (a UMAP-like
    layout), and a class name per point (the cluster's class)."""
    rng = np.random.default_rng(seed)
    k = 24
    sizes = rng.dirichlet(np.full(k, 0.8)) * n
    counts = np.floor(sizes).astype(int)
    counts[: n - counts.sum()] += 1
    centres = rng.uniform(-8, 8, size=(k, 2))
    parts, labels = [], []
    for c in range(k):
        a = rng.normal(size=(2, 2)) * rng.uniform(0.2, 1.2)
        parts.append(rng.normal(size=(counts[c], 2)) @ a + centres[c])
        labels.append(np.full(counts[c], c % n_classes))
    order = rng.permutation(n)
    xy = np.concatenate(parts)[order].astype(np.float32)
    names = np.array([f"class_{i}" for i in range(n_classes)], dtype=object)[np.concatenate(labels)[order]]
    return xy, names


def build_tiny_version(where: Path, seed: int) -> Path:
    """The browser tests' tiny published version (simulate 240 objects, 4 training steps, index)."""
    from indexer.pipeline import index_survey
    from indexer.settings import IndexSettings
    from survey.simulate.settings import SimSettings
    from survey.simulate.survey import simulate
    from training.augment import AugmentSettings
    from training.loop import train
    from training.settings import TrainSettings

    survey = where / "survey"
    simulate(SimSettings(out_dir=survey, preset="tiny", seed=seed, shard_size=100, workers=2))
    run = where / "run"
    run.mkdir()
    weights = train(TrainSettings(
        survey=survey, out_dir=run, epochs=1, max_steps=4, batch_size=32, queue_size=128,
        backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, proj_hidden=64, proj_dim=32,
        augment=AugmentSettings(crop_size_px=32), workers=0, monitor_size=64, device="cpu",
        produced_by="bench/bench_explorer.py"))
    artifacts = where / "artifacts"
    index_survey(IndexSettings(survey=survey, encoder=weights, artifacts=artifacts, job="bench", device="cpu",
                               shard_size=64, recall_sample=100))
    return artifacts


class Server:
    """uvicorn on a bound socket in a thread (the same arrangement as tests/app/conftest.py)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def one_run(browser: Any, url: str, query_id: str, k: int, shot: Path | None) -> dict[str, float]:
    ctx = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/#map")
    page.wait_for_function("() => window.__skysift.marks.mapDrawnMs > 0 && window.__skysift.marks.mapIndexMs > 0")
    marks = page.evaluate("() => window.__skysift.marks")
    # interaction: 12 wheel steps in, 12 out, 10 drags; every redraw is one frame
    box = page.locator("#map-canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.evaluate("() => { window.__skysift.map.frames.length = 0; }")
    for dy in [-120] * 12 + [120] * 12:
        page.mouse.wheel(0, dy)
        page.wait_for_timeout(40)
    for i in range(10):
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + (40 if i % 2 else -40), cy + 25, steps=4)
        page.mouse.up()
    page.wait_for_timeout(200)
    frames = page.evaluate("() => window.__skysift.map.frames.slice()")
    pick_ms = page.evaluate("""() => {
        const m = window.__skysift.map, W = m.canvas.width, H = m.canvas.height;
        let s = 12345; const rnd = () => (s = (s * 16807) % 2147483647) / 2147483647;
        const t0 = performance.now();
        for (let i = 0; i < 200; i++) m.pick(rnd() * W, rnd() * H);
        return (performance.now() - t0) / 200;
    }""")
    if shot is not None:
        page.get_by_role("button", name="Reset view").click()
        page.wait_for_timeout(300)
        page.screenshot(path=str(shot))
    page.goto(f"{url}/?q={query_id}&k={k}")
    page.wait_for_function("() => window.__skysift.marks.gridImagesMs > 0")
    grid = page.evaluate("() => window.__skysift.marks")
    ctx.close()
    if errors:
        raise RuntimeError(f"page errors: {errors}")
    return {
        "map_drawn_ms": marks["mapDrawnMs"], "map_fetch_ms": marks["mapFetchMs"], "map_index_ms": marks["mapIndexMs"],
        "map_first_frame_ms": marks["mapFirstFrameMs"], "map_frame_median_ms": statistics.median(frames),
        "map_frame_p95_ms": float(np.percentile(frames, 95)), "map_frames": len(frames), "map_pick_ms": pick_ms,
        "grid_rendered_ms": grid["gridRenderedMs"], "grid_images_ms": grid["gridImagesMs"],
    }


def machine(browser_version: str) -> dict[str, Any]:
    return host_machine(os=platform.platform(), python=platform.python_version(),
                        browser=f"chromium {browser_version} (headless, --disable-gpu)",
                        load_avg_1m=round(os.getloadavg()[0], 2))


def summarise(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {key: median_min_max([r[key] for r in runs]) for key in runs[0]}


ROWS = [("map_drawn_ms", "map: navigation → first frame of 10^6 points"),
        ("map_fetch_ms", "map: GET /map + points.bin"),
        ("map_index_ms", "map: cell index built (after the first frame)"),
        ("map_first_frame_ms", "map: first frame (bin + tone map + put)"),
        ("map_frame_median_ms", "map: redraw while zooming/panning, median"),
        ("map_frame_p95_ms", "map: redraw while zooming/panning, p95"),
        ("map_pick_ms", "map: nearest-point pick"),
        ("grid_rendered_ms", "grid: search → k cards in the page"),
        ("grid_images_ms", "grid: search → all k cutouts loaded")]


def table(result: dict[str, Any]) -> str:
    s, m = result["settings"], result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores (shared; 1-min load {m['load_avg_1m']}), {m['browser']}. "
             f"Date: {result['date']}. Code: `{result['git_sha'][:12]}`.",
             f"Command: `{result['command']}`. {s['map_points']:,} map points ({s['points_bin_bytes'] / 1e6:.1f} MB), "
             f"grid k={s['k']}, viewport {s['viewport']}, {result['repeats']} timed runs after {s['warmup']} warm-up "
             f"(fresh browser context each).",
             "", "| measurement | median (ms) | min | max |", "|---|---:|---:|---:|"]
    for key, label in ROWS:
        v = result["metrics"][key]
        lines.append(f"| {label} | {v['median']:.1f} | {v['min']:.1f} | {v['max']:.1f} |")
    lines.append(f"| server: pack 10^6 points into points.bin (once per version) | "
                 f"{result['metrics']['payload_build_ms']:.0f} | | |")
    return "\n".join(lines)


def write_table(result: dict[str, Any]) -> None:
    fill_markers(DOC, MARK_START, MARK_END, table(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--artifacts", type=Path, help="a published artifacts root to serve (default: build a tiny one)")
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table-only", action="store_true", help="rebuild the docs table from the JSON and stop")
    ap.add_argument("--out", type=Path, default=RESULTS, help="JSON result file")
    ap.add_argument("--no-docs", action="store_true",
                    help="leave docs/explorer.md and the screenshot in docs/img alone (smoke runs)")
    args = ap.parse_args()
    if args.table_only:
        write_table(json.loads(RESULTS.read_text()))
        return

    from playwright.sync_api import sync_playwright

    from app.main import create_app
    from app.routes import map as map_routes
    from app.settings import ServiceSettings

    with tempfile.TemporaryDirectory(prefix="bench_explorer_") as tmp:
        artifacts = args.artifacts or build_tiny_version(Path(tmp), args.seed)
        app = create_app(ServiceSettings(artifacts=artifacts, votes_db=Path(tmp) / "votes.sqlite", watch_interval_s=0))
        store = app.state.holder.get()
        xy, classes = synthetic_map(args.points, args.seed)
        t0 = time.perf_counter()
        payload = map_routes.build_payload(store.version, xy, "synthetic", "artifact", "class", classes)
        build_ms = (time.perf_counter() - t0) * 1000
        # the version's map is built once, on first use: taking that slot first makes the real route serve the
        # synthetic map for this version
        assert store.derived("map_payload", lambda: payload) is payload
        query_id = str(store.catalog["object_id"][0])
        with Server(app) as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            runs = []
            for i in range(args.warmup + args.repeats):
                shot = SHOT if i == args.warmup and not args.no_docs else None
                run = one_run(browser, server.url, query_id, args.k, shot)
                print(f"run {i}{' (warm-up)' if i < args.warmup else ''}: " + ", ".join(
                    f"{k}={v:.1f}" for k, v in run.items()), flush=True)
                if i >= args.warmup:
                    runs.append(run)
            info = machine(browser.version)
            browser.close()

    require_measured("explorer", timed_runs=len(runs), **{k: min(r[k] for r in runs) for k in (
        "map_drawn_ms", "map_first_frame_ms", "map_frames", "grid_rendered_ms", "grid_images_ms")} if runs else {})
    metrics: dict[str, Any] = summarise(runs)
    metrics["payload_build_ms"] = build_ms
    result = {
        "name": "explorer", "git_sha": git_sha(), "date": utc_now_minutes(),
        "command": "nice -n 10 .venv/bin/python bench/bench_explorer.py" + (
            f" --artifacts {args.artifacts}" if args.artifacts else ""),
        "machine": info,
        "settings": {"map_points": args.points, "points_bin_bytes": len(payload.body), "k": args.k,
                     "viewport": f"{VIEWPORT['width']}x{VIEWPORT['height']}", "warmup": args.warmup,
                     "seed": args.seed, "artifacts": str(args.artifacts or "tiny version built by the bench"),
                     "served_version": payload.version, "wheel_steps": 24, "drags": 10},
        "repeats": len(runs), "metrics": metrics, "runs": runs,
    }
    write_json(args.out, result)
    if not args.no_docs:
        write_table(result)
    print(table(result))


if __name__ == "__main__":
    main()
