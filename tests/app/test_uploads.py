"""POST /search/cutout refuses bad uploads with a 4xx that names the problem, bounds what it reads,
and converts what it accepts correctly (display stretch, pixel scale, encoder per version)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from bad_uploads import CASES, MAX_UPLOAD_BYTES, URL, BadUpload, galaxy, good_fits, multipart, npy_bytes
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import uploads
from app.main import create_app
from app.routes import search
from app.settings import ServiceSettings
from encoder import upload as decoding
from indexer.store import IndexedSurvey


@pytest.fixture(scope="module")
def app(tiny_artifacts: Path) -> FastAPI:
    return create_app(ServiceSettings(artifacts=tiny_artifacts, watch_interval_s=0, max_upload_bytes=MAX_UPLOAD_BYTES))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def store(tiny_artifacts: Path) -> IndexedSurvey:
    return IndexedSurvey.open_current(tiny_artifacts)


def test_the_corpus_is_large_and_names_are_unique() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_upload_is_refused_naming_the_problem(client: TestClient, case: BadUpload) -> None:
    r = client.post(URL, **case.request())
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    assert (r.status_code, body["error"]) == (case.status, case.code), body
    assert case.keyword.lower() in body["detail"].lower(), body["detail"]


def test_a_good_upload_passes_the_same_client(client: TestClient) -> None:
    """The corpus fails for the stated reason, not because every upload fails."""
    r = client.post(URL, files={"file": ("cube.fits", good_fits())}, data={"k": "3"})
    assert r.status_code == 200, r.text
    assert len(r.json()["neighbours"]) == 3


# ---- reading within the limit, at the ASGI level (TestClient would buffer the whole body first)


def _call(app: FastAPI, headers: list[tuple[bytes, bytes]], first: bytes, chunk: bytes,
          n_chunks: int) -> tuple[int, dict, int]:
    """POST a body of `first` then n_chunks - 1 x `chunk`; returns (status, json, chunks the app pulled)."""
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        if pulled >= n_chunks:
            return {"type": "http.disconnect"}
        pulled += 1
        return {"type": "http.request", "body": first if pulled == 1 else chunk, "more_body": pulled < n_chunks}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": URL, "raw_path": URL.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("test", 1), "server": ("test", 80)}
    # A fresh thread has no event loop; the main thread may hold Playwright's (sync API) loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


def test_chunked_body_is_cut_off_once_over_the_limit(app: FastAPI) -> None:
    _, ctype = multipart({}, [])
    boundary = ctype.split("boundary=")[1]
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.npy"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + b"\x93NUMPY"
    chunk, n = b"\0" * 65536, 1000  # 64 MiB offered, no Content-Length
    status, body, pulled = _call(app, [(b"content-type", ctype.encode())], head, chunk, n)
    assert status == 413 and body["error"] == "upload_too_large", body
    limit_chunks = uploads.body_limit(MAX_UPLOAD_BYTES) // len(chunk) + 2
    assert pulled <= limit_chunks, f"read {pulled} chunks of an unbounded body"


def test_declared_content_length_is_refused_before_reading(app: FastAPI) -> None:
    _, ctype = multipart({}, [])
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(10 * 2**30).encode())]
    status, body, pulled = _call(app, headers, b"\0" * 65536, b"\0" * 65536, 1000)
    assert status == 413 and body["error"] == "upload_too_large"
    assert "10737418240 bytes" in body["detail"] and pulled == 0


def test_a_file_just_under_the_limit_is_read(client: TestClient) -> None:
    x = np.zeros((3, 64, 64), np.float32) + galaxy()
    data = npy_bytes(x)
    padded = data + b"\0" * (MAX_UPLOAD_BYTES - len(data))  # trailing bytes after the array are ignored
    r = client.post(URL, files={"file": ("c.npy", padded)}, data={"k": "2"})
    assert r.status_code == 200, r.text


# ---- conversions


def test_png_display_stretch_is_inverted_to_flux(store: IndexedSurvey) -> None:
    from encoder.card import ModelCard
    from survey.render import png_bytes

    card = ModelCard.load(store.encoder_dir)
    pixels = store.images([5])[0]
    up = decoding.decode_upload(png_bytes(pixels, store.bands), "x.png", card)
    assert up.flux == "display" and up.bands == store.bands and up.pixel_scale_source == "assumed"
    bright = pixels > 0.3 * pixels.max(axis=(1, 2), keepdims=True)  # unclipped by 8 bits and by the sky floor
    ratio = np.median(up.pixels[bright] / pixels[bright])
    assert ratio == pytest.approx(1.0, abs=0.05), "inverting the service's own PNG stretch recovers flux"
    for c in range(3):  # same orientation (north up), same band order
        assert np.corrcoef(up.pixels[c].ravel(), pixels[c].ravel())[0, 1] > 0.8


def test_finer_upload_is_resampled_onto_the_model_grid(store: IndexedSurvey) -> None:
    from encoder.card import ModelCard
    from survey.readers.resize import resample

    card = ModelCard.load(store.encoder_dir)
    pixels = store.images([7])[0]
    fine = resample(pixels, 0.262, 0.131)  # (3, 128, 128) covering the same sky
    up = decoding.DecodedUpload(fine, "npy", fine.shape, card.bands, 0.131, "field", "linear")
    grid = decoding.to_model_grid(up, card, 64)
    assert grid.shape == (3, 64, 64) and any("resampled from 0.131" in n for n in up.notes)
    np.testing.assert_allclose(np.nansum(grid, axis=(1, 2)), pixels.sum(axis=(1, 2)), rtol=0.05)
    centre = (slice(None), slice(16, 48), slice(16, 48))  # what the model sees
    for c in range(3):
        assert np.corrcoef(grid[centre][c].ravel(), pixels[centre][c].ravel())[0, 1] > 0.9


def test_large_coarse_image_is_cropped_before_upsampling(store: IndexedSurvey) -> None:
    """A 4096 px image at 2"/px would be 31k px a side at 0.262"/px; only the centre is resampled."""
    from encoder.card import ModelCard

    card = ModelCard.load(store.encoder_dir)
    big = np.broadcast_to(np.float32(0.01), (3, 4096, 4096))
    up = decoding.DecodedUpload(big, "npy", big.shape, card.bands, 2.0, "field", "linear")
    assert decoding.to_model_grid(up, card, 64).shape == (3, 64, 64)


def test_encoder_is_loaded_once_per_version_and_goes_with_it(store: IndexedSurvey) -> None:
    import gc
    import weakref

    handle = IndexedSurvey(store.dir)  # a version as the holder loads it
    a, card = uploads.encoder_for(handle)
    b, _ = uploads.encoder_for(handle)
    assert a is b and card.weights_sha256 == store.weights_sha256
    gone = weakref.ref(a)
    del a, b, handle  # the holder drops a swapped-out version: its encoder is not kept anywhere else
    gc.collect()
    assert gone() is None


def test_mutated_files_never_cause_a_server_error(client: TestClient) -> None:
    """Flip bytes of valid FITS/NPY/PNG files: every answer is 200 or a JSON 4xx, never a 500."""
    from survey.render import png_bytes

    rng = np.random.default_rng(0)
    seeds = {"c.fits": good_fits(), "c.npy": npy_bytes(galaxy()), "c.png": png_bytes(galaxy(), ("g", "r", "z"))}
    for name, data in seeds.items():
        for _ in range(8):
            b = bytearray(data)
            where = rng.integers(0, min(len(b), 3000), size=6)  # headers are where parsers branch
            for i in where:
                b[i] = int(rng.integers(0, 256))
            r = client.post(URL, files={"file": (name, bytes(b))}, data={"k": "2"})
            assert r.status_code == 200 or (400 <= r.status_code < 500 and set(r.json()) == {"error", "detail"}), \
                (name, r.status_code, r.text)


def test_bytes_decide_the_format_when_the_name_says_nothing(client: TestClient) -> None:
    r = client.post(URL, files={"file": ("upload", io.BytesIO(npy_bytes(galaxy())).getvalue())}, data={"k": "1"})
    assert r.status_code == 200 and r.json()["query"]["format"] == "npy"


# ---- how many uploads decode at once


@pytest.mark.parametrize("slots", [1, 2])
def test_at_most_max_concurrent_decodes_uploads_decode_at_once(tiny_artifacts: Path, monkeypatch: pytest.MonkeyPatch,
                                                               slots: int) -> None:
    """Five uploads sent together: never more than `max_concurrent_decodes` decode at once (each
    decode is slowed to 0.2 s so that they would overlap), and every one is answered."""
    app = create_app(ServiceSettings(artifacts=tiny_artifacts, watch_interval_s=0, max_concurrent_decodes=slots))
    running, peak, lock = 0, 0, threading.Lock()
    real = search._search_upload

    def slow_decode(*args: object) -> object:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.2)
            return real(*args)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(search, "_search_upload", slow_decode)
    data = npy_bytes(galaxy())

    async def send_five() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            return await asyncio.gather(*(c.post(URL, files={"file": ("c.npy", data)}, data={"k": "2"})
                                          for _ in range(5)))

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # the main thread may hold Playwright's loop
        responses = pool.submit(asyncio.run, send_five()).result()
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    assert peak == slots
