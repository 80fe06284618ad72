"""Server memory under decode bombs: peak RSS above idle while uploads that decode to huge images
arrive 8 at a time, next to the same number of ordinary uploads, in one run.

A decode bomb is a small file under the byte limit whose header announces far more pixels than
the service will decode (a 65 kB PNG of 4096^2 RGBA, a 263 kB JPEG of 4096^2, a ~100 kB
tile-compressed FITS of 3 x 4096^2, an NPY header of 3 x 4096^2): the service must refuse them from
the header (413 image_too_large) before allocating anything like their decoded size (issue #17's
target: <= 300 MB above idle). The files are the ones the suite's probe refuses
(tests/app/bad_uploads.py). The reference is 8 concurrent ordinary uploads (a 64 px FITS of the
model's bands), which load and run the encoder.

Runs `skysift serve` on a published version in a subprocess and samples its resident memory
(/proc/<pid>/status VmRSS) every 5 ms; the kernel's own high-water mark (VmHWM, which no sampling
interval can miss) is recorded too. RSS rarely shrinks, so each kind's peak includes what the kinds
before it left behind: the figures are upper bounds for each kind.

    .venv/bin/python bench/bench_upload_bombs.py --artifacts artifacts --rounds 5

Writes bench/results/upload_bombs.json (or --out); exits 1 without JSON if nothing was measured.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import (
    RESULTS_DIR,
    ROOT,
    command_line,
    git_sha,
    host_machine,
    log,
    require_measured,
    utc_now_iso,
    write_json,
)

sys.path.insert(0, str(ROOT / "tests" / "app"))


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


class RssSampler:
    """Max VmRSS of a process between start() and stop(), sampled every `period_s`."""

    def __init__(self, pid: int, period_s: float = 0.005) -> None:
        self.pid, self.period_s, self.peak_kb, self.samples = pid, period_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))
            self.samples += 1
            time.sleep(self.period_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path, required=True, help="a root with a published version")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5, help="rounds of `concurrency` uploads per kind")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "upload_bombs.json")
    a = ap.parse_args()

    import httpx
    from bad_uploads import (
        BANDS,
        SCALE,
        fits_bytes,
        fits_compressed_bomb,
        galaxy,
        jpeg_bomb,
        npy_header_only,
        png_rgba_bomb,
        scale_header,
    )

    bombs = {"png_rgba_4096": ("bomb.png", png_rgba_bomb()), "jpeg_4096": ("bomb.jpg", jpeg_bomb()),
             "fits_tile_compressed_3x4096": ("bomb.fits", fits_compressed_bomb()),
             "npy_header_3x4096": ("bomb.npy", npy_header_only((3, 4096, 4096)))}
    ordinary = ("galaxy.fits", fits_bytes(galaxy(), scale_header(SCALE), bands=BANDS))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    skysift = str(Path(sys.executable).with_name("skysift"))
    server_log = Path(tempfile.gettempdir()) / f"bench_upload_bombs-{port}.log"  # not beside the results
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(server_log, "w") as logf:
        proc = subprocess.Popen([skysift, "serve", "--artifacts", str(a.artifacts), "--port", str(port)],
                                stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"bench_upload_bombs: error: the server did not start; see {server_log}")
                time.sleep(0.2)

            def upload(name: str, data: bytes) -> int:
                return c.post("/api/v1/search/cutout", files={"file": (name, data, "application/octet-stream")},
                              data={"k": "5"}).status_code

            for _ in range(2):  # warm: the encoder loads and the allocator settles on the first uploads
                assert upload(*ordinary) == 200
            idle_kb = status_kb(proc.pid, "VmRSS")

            def measure(files: list[tuple[str, bytes]]) -> dict[str, Any]:
                statuses: list[int] = []
                t0 = time.perf_counter()
                with RssSampler(proc.pid) as sampler, ThreadPoolExecutor(a.concurrency) as pool:
                    for _ in range(a.rounds):
                        statuses += list(pool.map(lambda f: upload(*f), files))
                return {"requests": len(statuses), "statuses": sorted(set(statuses)),
                        "seconds": round(time.perf_counter() - t0, 3), "rss_samples": sampler.samples,
                        "peak_rss_above_idle_mb": round((sampler.peak_kb - idle_kb) / 1024, 1)}

            results = {"ordinary_fits_64px": measure([ordinary] * a.concurrency)}
            for name, f in bombs.items():
                results[name] = measure([f] * a.concurrency)
            mixed = [f for f in bombs.values()] * (a.concurrency // len(bombs) or 1)
            results["all_bombs_mixed"] = measure(mixed[: a.concurrency])
            hwm_kb = status_kb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    require_measured("bench_upload_bombs", requests=sum(r["requests"] for r in results.values()),
                     samples=min(r["rss_samples"] for r in results.values()))
    bomb_peak = max(v["peak_rss_above_idle_mb"] for k, v in results.items() if k != "ordinary_fits_64px")
    ref = results["ordinary_fits_64px"]["peak_rss_above_idle_mb"]
    out = {"benchmark": "upload_bombs", "date": utc_now_iso(), "git_sha": git_sha(), "command": command_line(),
           "machine": host_machine(), "artifacts": str(a.artifacts), "concurrency": a.concurrency,
           "rounds": a.rounds, "idle_rss_mb": round(idle_kb / 1024, 1), "vmhwm_mb": round(hwm_kb / 1024, 1),
           "results": results,
           "metrics": {"bomb_peak_rss_above_idle_mb": bomb_peak, "ordinary_peak_rss_above_idle_mb": ref,
                       # the kernel's high-water mark since start-up: catches a peak between two samples
                       "vmhwm_above_idle_mb": round((hwm_kb - idle_kb) / 1024, 1),
                       "target_mb": 300, "meets_target": bomb_peak <= 300,
                       "bombs_refused_413": all(v["statuses"] == [413] for k, v in results.items()
                                                if k != "ordinary_fits_64px")}}
    write_json(a.out, out)
    log(f"idle {out['idle_rss_mb']} MB; peak above idle: ordinary {ref} MB, bombs {bomb_peak} MB "
        f"(target <= 300); -> {a.out}")


if __name__ == "__main__":
    main()
