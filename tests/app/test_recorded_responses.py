"""The API's answers on a fixed published version, compared with answers recorded before (issue #16):
a refactoring that changes what any route answers fails here, naming the request and the field.

The version is committed (tests/data/recorded_version/, PROVENANCE.md says how it was made), so the
answers do not depend on training's nondeterminism. It is served on FAISS only: the committed
version has no Milvus collection, and tests/app's other modules check that both engines answer
alike. Its survey pixels are not committed (11 MB), so the cutout images are not recorded (their
errors, which come before any pixel is read, are).

Re-record after an intended change of behaviour, and review the diff of the JSON file:

    SKYSIFT_RECORD=1 .venv/bin/pytest tests/app/test_recorded_responses.py
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import ServiceSettings

DATA = Path(__file__).resolve().parents[1] / "data"
VERSION = DATA / "recorded_version" / "artifacts"
RECORDED = DATA / "recorded_responses.json"
RECORD = os.environ.get("SKYSIFT_RECORD") == "1"

# Floats are recorded to 7 significant digits and compared within a relative 1e-5 or an absolute
# 4e-7, not to the letter: a distance is 1 - cosine similarity in float32, summed in an order that
# FAISS's and BLAS's SIMD kernels pick by CPU, so its last bits (6e-8 a step near cosine 1) and any
# fixed rounding of them can differ between machines (two steps, 1.2e-7, seen between two of this
# project's machines). A distance of this version is ~2e-3, so a change in its fourth digit shows.
SIGNIFICANT = 7
REL_TOL, ABS_TOL = 1e-5, 4e-7
# Headers that belong to an answer; X-Request-ID, date and content-length (a float's width) do not.
KEPT_HEADERS = ("content-type", "x-total-count", "x-skysift-version", "allow", "etag", "cache-control",
                "content-disposition", "retry-after", "www-authenticate")

A, B, LENS = "sim-0000042", "sim-0000107", "sim-0000022"
UNKNOWN = "sim-9999999"
V1 = "/api/v1"


def upload_npy() -> bytes:
    """A (3, 64, 64) float32 cutout: an elliptical Gaussian on seeded sky noise, in nanomaggies."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:64, :64] - 31.5
    blob = np.exp(-0.5 * ((x / 4.0) ** 2 + (y / 2.5) ** 2))
    cube = np.stack([(i + 1) * 2.0 * blob + rng.normal(0, 0.01, blob.shape) for i in range(3)]).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, cube)
    return buf.getvalue()


# (name, method, path, keyword arguments of TestClient.request); votes run in this order (ids 1, 2).
REQUESTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("healthz", "GET", "/healthz", {}),
    ("readyz", "GET", "/readyz", {}),
    ("version", "GET", f"{V1}/version", {}),
    ("object", "GET", f"{V1}/objects/{A}", {}),
    ("object unknown", "GET", f"{V1}/objects/{UNKNOWN}", {}),
    ("similar default k", "GET", f"{V1}/objects/{A}/similar", {}),
    ("similar k", "GET", f"{V1}/objects/{A}/similar?k=5", {}),
    ("similar z window", "GET", f"{V1}/objects/{A}/similar?k=6&z_min=0.1&z_max=0.3", {}),
    ("similar mag", "GET", f"{V1}/objects/{B}/similar?k=5&mag_max=18.5", {}),
    ("similar region", "GET", f"{V1}/objects/{A}/similar?k=5&ra=155&dec=2.5&radius=2", {}),
    ("similar csv", "GET", f"{V1}/objects/{A}/similar?k=4&format=csv", {}),
    ("similar votable", "GET", f"{V1}/objects/{A}/similar?k=3&z_max=0.3&format=votable", {}),
    ("similar unknown", "GET", f"{V1}/objects/{UNKNOWN}/similar", {}),
    ("similar k 0", "GET", f"{V1}/objects/{A}/similar?k=0", {}),
    ("similar k too large", "GET", f"{V1}/objects/{A}/similar?k=100000", {}),
    ("similar k not a number", "GET", f"{V1}/objects/{A}/similar?k=many", {}),
    ("similar region incomplete", "GET", f"{V1}/objects/{A}/similar?ra=155&dec=2.5", {}),
    ("similar z inverted", "GET", f"{V1}/objects/{A}/similar?z_min=0.5&z_max=0.1", {}),
    ("position degrees", "GET", f"{V1}/search/position?ra=150.739664&dec=2.546733&k=5", {}),
    ("position sexagesimal", "GET", f"{V1}/search/position?ra=10:02:57.52&dec=%2B02:32:48.2&k=3", {}),
    ("position filtered csv", "GET", f"{V1}/search/position?ra=150.739664&dec=2.546733&k=4&z_max=0.3&format=csv",
     {}),
    ("position no object", "GET", f"{V1}/search/position?ra=10&dec=-50", {}),
    ("position bad ra", "GET", f"{V1}/search/position?ra=abc&dec=2.5", {}),
    ("position dec out of range", "GET", f"{V1}/search/position?ra=150&dec=95", {}),
    ("cone", "GET", f"{V1}/conesearch?RA=155&DEC=2.5&SR=0.6", {}),
    ("cone verb 1", "GET", f"{V1}/conesearch?RA=155&DEC=2.5&SR=0.6&VERB=1", {}),
    ("cone verb 3 page", "GET", f"{V1}/conesearch?RA=155&DEC=2.5&SR=1&VERB=3&MAXREC=2&OFFSET=1", {}),
    ("cone no SR", "GET", f"{V1}/conesearch?RA=155&DEC=2.5", {}),
    ("examples", "POST", f"{V1}/search/examples", {"json": {"positive": [LENS, "sim-0000034"], "k": 5}}),
    ("examples negative", "POST", f"{V1}/search/examples",
     {"json": {"positive": [A, B], "negative": ["sim-0000003"], "k": 4, "z_max": 0.4}}),
    ("examples votable", "POST", f"{V1}/search/examples?format=votable", {"json": {"positive": [A], "k": 3}}),
    ("examples unknown", "POST", f"{V1}/search/examples", {"json": {"positive": [A, UNKNOWN]}}),
    ("examples both", "POST", f"{V1}/search/examples", {"json": {"positive": [A], "negative": [A]}}),
    ("examples extra key", "POST", f"{V1}/search/examples", {"json": {"positive": [A], "kk": 3}}),
    ("upload npy", "POST", f"{V1}/search/cutout",
     {"files": {"file": ("blob.npy", upload_npy())}, "data": {"k": "3", "pixel_scale_arcsec": "0.262"}}),
    ("upload not multipart", "POST", f"{V1}/search/cutout", {"content": b"abc"}),
    ("anomalies", "GET", f"{V1}/rankings/anomalies?limit=5", {}),
    ("anomalies page 2", "GET", f"{V1}/rankings/anomalies?limit=5&offset=5", {}),
    ("anomalies filtered csv", "GET", f"{V1}/rankings/anomalies?limit=3&z_max=0.2&mag_max=19&format=csv", {}),
    ("anomalies region", "GET", f"{V1}/rankings/anomalies?limit=4&ra=155&dec=2.5&radius=1.5", {}),
    ("anomalies past end", "GET", f"{V1}/rankings/anomalies?limit=5&offset=1000", {}),
    ("anomalies limit 0", "GET", f"{V1}/rankings/anomalies?limit=0", {}),
    ("artifacts", "GET", f"{V1}/rankings/artifacts?limit=5", {}),
    ("combined votable", "GET", f"{V1}/rankings/combined?limit=3&format=votable", {}),
    ("lenses", "GET", f"{V1}/rankings/lenses?limit=5", {}),
    ("lenses include known", "GET", f"{V1}/rankings/lenses?limit=8&offset=2&include_known=true", {}),
    ("map", "GET", f"{V1}/map", {}),
    ("map points", "GET", f"{V1}/map/points.bin", {}),
    ("map point", "GET", f"{V1}/map/points/7", {}),
    ("map point unknown", "GET", f"{V1}/map/points/240", {}),
    ("vote", "POST", f"{V1}/votes", {"json": {"object_id": B, "label": "lens", "voter": "rec", "note": "arc"}}),
    ("vote unknown object", "POST", f"{V1}/votes", {"json": {"object_id": UNKNOWN, "label": "lens"}}),
    ("votes", "GET", f"{V1}/votes", {}),
    ("lenses learned", "GET", f"{V1}/rankings/lenses?limit=4&learn=true", {}),
    ("lenses hide voted", "GET", f"{V1}/rankings/lenses?limit=4&hide_voted=true", {}),
    ("vote delete other voter", "DELETE", f"{V1}/votes/1?voter=someone", {}),
    ("vote delete", "DELETE", f"{V1}/votes/1?voter=rec", {}),
    ("cutout unknown", "GET", f"{V1}/cutouts/{UNKNOWN}.png", {}),
    ("cutout size too large", "GET", f"{V1}/cutouts/{A}.png?size=100000", {}),
    ("no such route", "GET", f"{V1}/nope", {}),
    ("method not allowed", "POST", f"{V1}/objects/{A}", {}),
    ("reload without token", "POST", f"{V1}/admin/reload", {}),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("recorded")
    shutil.copytree(VERSION, root / "artifacts", symlinks=True)  # served from a copy: the tree stays as committed
    settings = ServiceSettings(artifacts=root / "artifacts", votes_db=root / "votes.sqlite", watch_interval_s=0,
                               backend="faiss", default_k=12)
    with TestClient(create_app(settings)) as c:
        yield c


def number(text: str) -> Any:
    """A CSV cell or XML text as the number it spells, else the text."""
    for kind in (int, float):
        try:
            return normal(kind(text))
        except ValueError:
            pass
    return text


def normal(value: Any) -> Any:
    """JSON-able value with floats to SIGNIFICANT digits (NaN and infinities as text) and a vote's time of
    recording masked (the version's own `created` is fixed: kept)."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT}g}") if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        vote = "voter" in value
        return {k: "<time>" if vote and k == "created" else normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normal(v) for v in value]
    raise TypeError(f"unexpected {type(value).__name__} in an answer")


def xml_tree(element: ET.Element) -> list[Any]:
    """[tag, {attribute: value}, text, children], numbers as numbers."""
    text = (element.text or "").strip()
    return [element.tag, {k: number(v) for k, v in sorted(element.attrib.items())}, number(text) if text else None,
            [xml_tree(child) for child in element]]


def answer(response: Any) -> dict[str, Any]:
    """What a response says, in a form that compares: status, the kept headers, and the body parsed
    (JSON; CSV as rows; XML as a tree; other bytes as their sha256 and length)."""
    media = response.headers.get("content-type", "").split(";")[0]
    headers = {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}
    body: Any
    if not response.content:
        body = None
    elif media == "application/json":
        body = normal(response.json())
    elif media == "text/csv":
        body = [[number(cell) for cell in row] for row in csv.reader(io.StringIO(response.text))]
    elif media == "text/xml":
        body = xml_tree(ET.fromstring(response.content))
    else:
        body = {"sha256": hashlib.sha256(response.content).hexdigest(), "bytes": len(response.content)}
    return {"status": response.status_code, "headers": headers, "body": body}


def differences(got: Any, want: Any, where: str = "") -> Iterator[str]:
    """Where `got` differs from `want`: exact, except floats within REL_TOL/ABS_TOL."""
    if isinstance(want, float) and isinstance(got, float | int) and not isinstance(got, bool):
        if not math.isclose(got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            yield f"{where}: {got!r} != recorded {want!r}"
    elif isinstance(want, dict) and isinstance(got, dict):
        if list(got) != list(want):
            yield f"{where}: keys {list(got)} != recorded {list(want)}"
        for key in want.keys() & got.keys():
            yield from differences(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            yield f"{where}: {len(got)} items != recorded {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=False)):
            yield from differences(g, w, f"{where}[{i}]")
    elif type(got) is not type(want) or got != want:
        yield f"{where}: {got!r} != recorded {want!r}"


def test_request_names_are_unique() -> None:
    assert len({name for name, *_ in REQUESTS}) == len(REQUESTS)


def test_answers_match_the_recording(client: TestClient) -> None:
    answers = {name: answer(client.request(method, path, **kwargs)) for name, method, path, kwargs in REQUESTS}
    if RECORD:
        RECORDED.write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n")
    recorded = json.loads(RECORDED.read_text())
    assert list(answers) == list(recorded), "the requests changed: re-record (module docstring)"
    problems = [f"{name} ({method} {path}){d}" for name, method, path, _ in REQUESTS
                for d in differences(answers[name], recorded[name])]
    assert not problems, f"{len(problems)} differences from {RECORDED.name}:\n" + "\n".join(problems[:40])


def test_the_comparison_sees_a_changed_answer() -> None:
    """The comparison is not vacuous: a distance off in its fourth digit, a reordered neighbour or a
    changed status each count, float noise in the seventh does not."""
    recorded = json.loads(RECORDED.read_text())["similar k"]
    changed = json.loads(json.dumps(recorded))
    d = changed["body"]["neighbours"][1]["distance"]
    changed["body"]["neighbours"][1]["distance"] = d * (1 + 1e-3)
    assert list(differences(changed, recorded))
    noisy = json.loads(json.dumps(recorded))
    noisy["body"]["neighbours"][1]["distance"] = d * (1 + 1e-7)
    assert not list(differences(noisy, recorded))
    swapped = json.loads(json.dumps(recorded))
    n = swapped["body"]["neighbours"]
    n[1], n[2] = n[2], n[1]
    assert list(differences(swapped, recorded))
    assert list(differences({**recorded, "status": 500}, recorded))
